"""Checks shared by the routes that take a JSON object as their body (log streams, viewer
tokens, retention): the ``invalid-body`` problems that name the field at fault."""

from __future__ import annotations

from collections.abc import Set
from typing import Any

from auditlog.errors import FieldError, InvalidBody


def bad_field(field: str, message: str) -> InvalidBody:
    """The problem of one field: ``"<field>: <message>"``, the field named in ``errors``."""
    return InvalidBody(f"{field}: {message}", (FieldError(field, message),))


def json_object(body: Any, allowed: Set[str], what: str) -> dict[str, Any]:
    """``body`` if it is a JSON object of no fields but ``allowed``; ``InvalidBody`` naming
    each unknown field ("not a field of <what>") otherwise."""
    if not isinstance(body, dict):
        raise bad_field("body", "expected a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidBody(
            "unknown field" + ("s " if len(unknown) > 1 else " ") + ", ".join(map(repr, unknown)),
            tuple(FieldError(name, f"not a field of {what}") for name in unknown),
        )
    return body

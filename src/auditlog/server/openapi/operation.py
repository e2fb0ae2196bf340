"""``Operation``: what the OpenAPI document says about one route, written beside its handler.

A handler module gives each ``Route`` its ``doc``; the shared pieces it refers to (component
schemas, problem responses, headers, the §3 query parameters) live in the sibling modules and
are named by reference (``schema_ref``, ``ref``), so the document holds each of them once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: A JSON object of the document.
JSON = dict[str, Any]


def ref(kind: str, name: str) -> JSON:
    """A reference to ``components.<kind>.<name>`` (``schemas``, ``responses``, ``headers``)."""
    return {"$ref": f"#/components/{kind}/{name}"}


def schema_ref(name: str) -> JSON:
    """A reference to the component schema ``name``."""
    return ref("schemas", name)


def json_content(schema: JSON) -> JSON:
    """The ``content`` of a body or answer that is JSON of ``schema``."""
    return {"application/json": {"schema": schema}}


@dataclass(frozen=True, slots=True)
class Operation:
    """What the document says about one route, beyond method, pattern and scope.

    ``responses`` are the answers that are not errors, by status; ``errors`` are the problem
    statuses the route can give (each a shared response in ``components.responses``; 401 and
    429 are added for a route that needs a credential). ``schemas`` are component schemas
    that only this route's module uses, added to ``components.schemas`` when the route is
    described; a name may be given by several routes only with the same schema.
    """

    operation_id: str
    summary: str
    description: str
    tag: str
    responses: dict[str, JSON]
    errors: tuple[int, ...] = ()
    parameters: tuple[JSON, ...] = ()
    request_body: JSON | None = None
    schemas: dict[str, JSON] = field(default_factory=dict)

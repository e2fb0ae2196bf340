"""Filters of a query (API.md §3) as the URL's parameters.

``events(type="user.login", actor="bob", **{"data.amount[lt]": 150})``: each keyword is a
parameter; a list or tuple repeats it (an OR of equalities); ``True``/``False``/``None`` are
the JSON literals; a datetime is an RFC 3339 time. Python names cannot hold dots or
brackets, so paths come in through ``**{...}`` or ``filters=[(name, value), ...]``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from auditlog_client.envelope import time_value

Params = list[tuple[str, str]]


def text(value: Any) -> str:
    """One parameter value as the query syntax reads it."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, dt.datetime):
        return str(time_value(value))
    return str(value)


def params(
    filters: Mapping[str, Any] | None = None, pairs: Iterable[tuple[str, Any]] = ()
) -> Params:
    """The query string's pairs of ``filters`` (keywords) and ``pairs`` (in order)."""
    found: Params = [(name, text(value)) for name, value in pairs]
    for name, value in (filters or {}).items():
        if isinstance(value, list | tuple | set | frozenset):
            found.extend((name, text(v)) for v in value)
        else:
            found.append((name, text(value)))
    return found

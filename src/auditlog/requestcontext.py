"""What is known of the request being served, for the records and log lines it causes.

The server sets a ``RequestContext`` at the start of each request (``CURRENT``, a context
variable, so each request's task sees its own and tasks it starts inherit it) and fills it in
as it learns more: the route once matched, the credential once authenticated. The service
reads it where a record or a log line should say which request caused it (the self-audit
records carry its ``request_id``); code running outside a request sees ``None``.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(slots=True)
class RequestContext:
    """One request: its id, the client's address (after trusted proxies), and what the
    server learnt of it so far."""

    request_id: str
    client: str
    method: str = ""
    #: The pattern of the matched route (``/v1/events/{id}``), or ``unmatched``.
    route: str = "unmatched"
    #: The credential's public id (an API key's id, a login token's ``jti``), once known.
    credential_id: str | None = None


CURRENT: ContextVar[RequestContext | None] = ContextVar("auditlog_request", default=None)


def current() -> RequestContext | None:
    """The request being served by the running task, if any."""
    return CURRENT.get()

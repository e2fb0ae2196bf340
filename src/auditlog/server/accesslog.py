"""The access log: one line per answered request (``access_log``), on ``auditlog.access``.

The line names the route by its pattern (``/v1/events/{id}``), never the raw path or query
string, which may carry what a client should not have put there (a viewer token in
``/ui/?token=...``); the credential by its public id (an API key's id, a login token's
``jti``), never the token. The same fields go to a JSON log line as fields of their own (see
``auditlog.logformat``): ``status`` and ``duration_ms`` from the record, the rest from the
request's context.
"""

from __future__ import annotations

import logging

from auditlog.requestcontext import RequestContext

log = logging.getLogger("auditlog.access")


def access_line(context: RequestContext, status: int, seconds: float) -> None:
    """Log one answered request: client, method, route, status, duration, ids."""
    duration_ms = round(seconds * 1000, 3)
    log.info(
        "%s %s %s %d %.1f ms request_id=%s credential=%s",
        context.client,
        context.method,
        context.route,
        status,
        duration_ms,
        context.request_id,
        context.credential_id or "-",
        extra={"status": status, "duration_ms": duration_ms},
    )

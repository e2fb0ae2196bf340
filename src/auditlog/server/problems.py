"""Errors to RFC 9457 problem documents: the one place where that translation happens.

Every error answer is ``application/problem+json`` with ``type``, ``title``, ``status`` and
``detail``, plus ``errors`` (``[{"index"?, "field", "message"}]``) where there is more than one
thing to say. ``type`` names the kind of problem: ``PROBLEM_BASE`` + a name per status.
"""

from __future__ import annotations

import logging

import orjson

from auditlog.errors import (
    AuditlogError,
    MethodNotAllowed,
    RateLimited,
    RequestError,
    Unauthorized,
    Unavailable,
)
from auditlog.integrity import IntegrityError
from auditlog.server.asgi import Response

log = logging.getLogger("auditlog.server")

# An identifier per kind of problem, not a link: nothing is served at these URIs.
PROBLEM_BASE = "urn:auditlog:problem:"
PROBLEM_TYPES = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "invalid-event",
    429: "rate-limited",
    431: "request-header-fields-too-large",
    500: "internal-error",
    503: "unavailable",
}
CONTENT_TYPE = "application/problem+json"


def problem(
    status: int,
    title: str,
    detail: str,
    errors: list[dict[str, object]] | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
    problem_type: str | None = None,
) -> Response:
    """A problem+json response; ``problem_type`` names its kind where the status does not."""
    doc: dict[str, object] = {
        "type": PROBLEM_BASE + (problem_type or PROBLEM_TYPES.get(status, "error")),
        "title": title,
        "status": status,
        "detail": detail,
    }
    if errors:
        doc["errors"] = errors
    return Response(status, orjson.dumps(doc), CONTENT_TYPE, headers)


def from_exception(exc: BaseException) -> Response:
    """The answer for any exception a handler raised. Unexpected ones are logged and are 500."""
    if isinstance(exc, RequestError):
        headers: list[tuple[bytes, bytes]] = []
        if isinstance(exc, Unauthorized):
            headers.append((b"www-authenticate", b'Bearer realm="auditlog"'))
        elif isinstance(exc, MethodNotAllowed):
            headers.append((b"allow", ", ".join(exc.allow).encode()))
        elif isinstance(exc, RateLimited):
            headers.append((b"retry-after", str(exc.retry_after).encode()))
        errors = [e.as_dict() for e in exc.errors] or None
        return problem(exc.status, exc.title, exc.detail, errors, headers, exc.problem_type)
    if isinstance(exc, Unavailable):
        headers = [(b"retry-after", str(exc.retry_after).encode())]
        return problem(exc.status, exc.title, exc.detail, None, headers)
    if isinstance(exc, IntegrityError):
        # The stored tree or checkpoints are not what was signed: no client did that, and
        # retrying will not help. The operator must look (auditlog verify).
        log.error("integrity failure: %s", exc)
        return problem(
            500,
            "Internal Server Error",
            "the log's stored tree is damaged; the operator has been told (auditlog verify)",
        )
    if isinstance(exc, AuditlogError):
        log.error("unexpected auditlog error: %s", exc)
    else:
        log.exception("unhandled error", exc_info=exc)
    return problem(500, "Internal Server Error", "the server failed; the error has been logged")

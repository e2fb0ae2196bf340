"""The problem answers (RFC 9457) every operation refers to by status, and their headers.

An operation lists the statuses it can give (``Operation.errors``); the document refers each
to the one shared response here, whose body is the ``Problem`` schema.
"""

from __future__ import annotations

from auditlog.server.openapi.operation import JSON, ref, schema_ref

PROBLEM_JSON = "application/problem+json"

PROBLEM_SCHEMA: JSON = {
    "type": "object",
    "description": "An RFC 9457 problem document.",
    "properties": {
        "type": {
            "type": "string",
            "format": "uri",
            "description": "A stable URI per kind of problem.",
        },
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {
            "type": "string",
            "description": "What is wrong, naming the bad value or parameter.",
        },
        "errors": {
            "type": "array",
            "description": "Every problem found, where there is more than one thing to say.",
            "items": {
                "type": "object",
                "properties": {
                    "index": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "The event's position in a batch.",
                    },
                    "field": {"type": "string"},
                    "message": {"type": "string"},
                },
                "required": ["field", "message"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["type", "title", "status", "detail"],
}

#: The header every answer carries.
REQUEST_ID = "X-Request-ID"

HEADERS: dict[str, JSON] = {
    "Location": {
        "description": "The path of the stored event (when one event was sent).",
        "schema": {"type": "string"},
    },
    "RetryAfter": {
        "description": "Seconds to wait before retrying.",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
    },
    "WWWAuthenticate": {
        "description": "The scheme to authenticate with: `Bearer`.",
        "required": True,
        "schema": {"type": "string"},
    },
    "Allow": {
        "description": "The methods the path accepts.",
        "required": True,
        "schema": {"type": "string"},
    },
    "RequestId": {
        "description": "The request's id: the `X-Request-ID` it sent when that is 1-128 visible "
        "ASCII characters, else one the server made (32 hex digits). The server's log lines "
        "and the self-audit records of the request carry it too.",
        "required": True,
        "schema": {"type": "string", "minLength": 1, "maxLength": 128},
    },
    "CacheControl": {
        "description": "`no-store`: an answer holding a token must not be cached.",
        "required": True,
        "schema": {"type": "string"},
    },
}


def _problem(description: str, headers: dict[str, str] | None = None) -> JSON:
    out: JSON = {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": schema_ref("Problem")}},
    }
    named = {**(headers or {}), REQUEST_ID: "RequestId"}
    out["headers"] = {name: ref("headers", header) for name, header in named.items()}
    return out


#: The shared problem answers, by status; operations refer to them by status.
PROBLEMS: dict[int, tuple[str, JSON]] = {
    400: ("BadRequest", _problem("The request or one of its parameters cannot be parsed.")),
    401: (
        "Unauthorized",
        _problem(
            "Missing, malformed, expired, revoked or forged credential.",
            {"WWW-Authenticate": "WWWAuthenticate"},
        ),
    ),
    403: ("Forbidden", _problem("The credential is valid but lacks the route's scope.")),
    404: (
        "NotFound",
        _problem(
            "No such event (in the caller's tenant), or a tree size beyond the latest checkpoint."
        ),
    ),
    405: (
        "MethodNotAllowed",
        _problem("The path exists but not with this method.", {"Allow": "Allow"}),
    ),
    409: (
        "Conflict",
        _problem("An event's id is already held by the tenant with different content."),
    ),
    413: (
        "PayloadTooLarge",
        _problem("The body, or an event in it, is larger than the configured limit."),
    ),
    415: ("UnsupportedMediaType", _problem("The Content-Type is not one this route reads.")),
    422: (
        "InvalidEvent",
        _problem(
            "Valid JSON that is not a valid event or batch; `errors` names every problem "
            "(with its `index` in a batch)."
        ),
    ),
    429: (
        "RateLimited",
        _problem(
            "Too many failed logins for this username or from this address, or the credential "
            "is over its write or read rate; retry after `Retry-After` seconds.",
            {"Retry-After": "RetryAfter"},
        ),
    ),
    503: (
        "Unavailable",
        _problem(
            "The service cannot keep up, storage is unreachable, or it is shutting down. "
            "Nothing of the request was stored; retry after `Retry-After` seconds.",
            {"Retry-After": "RetryAfter"},
        ),
    ),
}

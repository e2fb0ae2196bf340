"""The error hierarchy of auditlog.

Every failure a caller can see is one of these classes; the HTTP layer turns them into
RFC 9457 problem documents in exactly one place (``auditlog.server.problems``), and each
storage backend turns its driver's exceptions into ``StorageError`` subclasses inside itself.

::

    AuditlogError
    ├── RequestError                 a client's request cannot be served as sent (4xx)
    │   ├── BadRequest               400 unparsable request or parameter
    │   ├── Unauthorized             401 missing, malformed, expired, revoked or forged token
    │   ├── Forbidden                403 valid credential without the scope
    │   ├── NotFound                 404
    │   ├── MethodNotAllowed         405 (carries the allowed methods)
    │   ├── Conflict                 409 an id the tenant holds with other content
    │   ├── PayloadTooLarge          413
    │   ├── UnsupportedMediaType     415
    │   ├── InvalidEvent             422 valid JSON that is not a valid event or batch
    │   ├── InvalidBody              422 valid JSON that is not what the route takes (a stream)
    │   └── RateLimited              429 (carries Retry-After)
    ├── Unavailable                  503, the request may be retried later (carries Retry-After)
    │   ├── Overloaded               the ingest queue is full
    │   └── StorageError             storage failed or is unreachable
    │       └── StorageFull          the disk or database is full
    ├── IntegrityError               (``auditlog.integrity``) what should prove the log does not:
    │   │                            a proof, checkpoint, note, signature or key; from storage,
    │   │                            a damaged tree (500 on a route, never signed over)
    │   ├── ProofError
    │   ├── CheckpointError
    │   ├── NoteError
    │   ├── SignatureError
    │   └── KeyFormatError
    └── ConfigError                  a setting has an invalid value (start-up only)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldError:
    """One thing wrong with a request: which field (and batch index) and why."""

    field: str
    message: str
    index: int | None = None

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {}
        if self.index is not None:
            out["index"] = self.index
        out["field"] = self.field
        out["message"] = self.message
        return out


class AuditlogError(Exception):
    """Base of every error auditlog raises on purpose."""


class RequestError(AuditlogError):
    """The request cannot be served as sent. ``detail`` is safe to show the client."""

    status = 400
    title = "Bad Request"
    #: The problem's ``type`` name, where it is not the one of its status.
    problem_type: str | None = None

    def __init__(self, detail: str, errors: tuple[FieldError, ...] = ()) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors


class BadRequest(RequestError):
    status = 400
    title = "Bad Request"


class Unauthorized(RequestError):
    status = 401
    title = "Unauthorized"


class Forbidden(RequestError):
    status = 403
    title = "Forbidden"


class NotFound(RequestError):
    status = 404
    title = "Not Found"


class MethodNotAllowed(RequestError):
    status = 405
    title = "Method Not Allowed"

    def __init__(self, detail: str, allow: tuple[str, ...]) -> None:
        super().__init__(detail)
        self.allow = allow


class Conflict(RequestError):
    status = 409
    title = "Conflict"


class PayloadTooLarge(RequestError):
    status = 413
    title = "Payload Too Large"


class UnsupportedMediaType(RequestError):
    status = 415
    title = "Unsupported Media Type"


class InvalidEvent(RequestError):
    status = 422
    title = "Unprocessable Content"


class InvalidBody(RequestError):
    """Valid JSON that is not what the route takes (a log stream's definition, say)."""

    status = 422
    title = "Unprocessable Content"
    problem_type = "invalid-body"


class RateLimited(RequestError):
    status = 429
    title = "Too Many Requests"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class Unavailable(AuditlogError):
    """The service cannot serve the request now; the client may retry after ``retry_after`` s."""

    status = 503
    title = "Service Unavailable"

    def __init__(self, detail: str, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after


class Overloaded(Unavailable):
    """The ingest queue is full: more is arriving than storage can commit."""


class StorageError(Unavailable):
    """Storage failed or cannot be reached. Nothing of the failed operation was stored."""


class StorageFull(StorageError):
    """The disk or the database is full; reads keep working, writes fail until space returns."""


class ConfigError(AuditlogError):
    """A setting has an invalid value."""

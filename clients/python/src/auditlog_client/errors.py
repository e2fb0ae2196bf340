"""The errors this client raises and reports, as a tree::

    AuditlogError                    anything this client raises
    ├── APIError                     the service answered with an error (RFC 9457 problem details)
    │   ├── ConflictError            409: an id the log holds with other content; never retried
    │   ├── NotFoundError            404
    │   └── RetryableError           429 or 5xx: retried with backoff until the attempts run out
    ├── TransportError               the service could not be reached or the connection broke
    ├── QueueFullError               ``log`` on a full queue, when the caller asked to be told
    ├── ClosedError                  ``log`` after ``close``
    └── VerificationError            a receipt that does not prove what it claims

``APIError`` carries the problem document as the service sent it (``problem``), its
``status``, ``title``, ``detail`` and ``errors``, so a caller can act on a 422's fields.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class AuditlogError(Exception):
    """Base of every error this client raises."""


class APIError(AuditlogError):
    """An error answer of the service (``application/problem+json``, RFC 9457)."""

    def __init__(self, status: int, problem: Mapping[str, Any] | None = None) -> None:
        self.status = status
        self.problem: dict[str, Any] = dict(problem or {})
        self.title: str = str(self.problem.get("title") or f"HTTP {status}")
        self.detail: str = str(self.problem.get("detail") or "")
        errors = self.problem.get("errors")
        self.errors: list[dict[str, Any]] = (
            [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []
        )
        super().__init__(f"{status} {self.title}" + (f": {self.detail}" if self.detail else ""))

    @property
    def indexes(self) -> Sequence[int]:
        """The batch indexes the problem names (in ``errors``), in order, without repeats."""
        seen: list[int] = []
        for error in self.errors:
            index = error.get("index")
            if isinstance(index, int) and index not in seen:
                seen.append(index)
        return seen


class ConflictError(APIError):
    """409: the log holds an event with this id and other content. Never retried."""


class NotFoundError(APIError):
    """404: no such event (or route)."""


class RetryableError(APIError):
    """429, 503 or another 5xx: the service may take it later (``retry_after`` seconds)."""

    def __init__(
        self,
        status: int,
        problem: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(status, problem)
        self.retry_after = retry_after


class TransportError(AuditlogError):
    """The service could not be reached, or the connection broke before an answer."""


class QueueFullError(AuditlogError):
    """The queue was full and the event was not taken."""


class ClosedError(AuditlogError):
    """The client is closed."""


class VerificationError(AuditlogError):
    """A receipt, proof or signed checkpoint that does not verify."""

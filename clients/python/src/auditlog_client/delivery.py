"""Sending one batch until the service has taken or refused every event of it.

A batch goes as one NDJSON request (API.md §2), atomic on the service's side. What comes back
decides what happens to each event:

- ``200``/``201``: every event is stored (a replay of an earlier attempt answers ``200``).
- a connection error, ``429``, ``5xx``: the same batch again after a backoff, never sooner
  than ``Retry-After``; the ids make the resend idempotent.
- ``409``, ``422``, ``413`` naming events by ``index``: those events are refused (reported,
  never retried); the rest of the batch is sent again at once. ``413`` without an index (the
  body as a whole too large) splits the batch in two.
- any other ``4xx`` (``401``, ``403``, ``400``...): every event of the batch is refused with
  that problem; the same request would get the same answer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import httpx

from auditlog_client.answers import error_of
from auditlog_client.errors import APIError, AuditlogError, RetryableError, TransportError
from auditlog_client.retry import Backoff

PATH = "/v1/events"
NDJSON = {"Content-Type": "application/x-ndjson"}

T = TypeVar("T")


def body_of(lines: Sequence[bytes]) -> bytes:
    """An NDJSON body of encoded events."""
    return b"\n".join(lines) + b"\n"


@dataclass(slots=True)
class Outcome(Generic[T]):
    """What became of a batch's items: acknowledged, refused (with why), or still unsent
    when the sender was told to stop waiting."""

    acked: list[T] = field(default_factory=list)
    refused: list[tuple[T, AuditlogError]] = field(default_factory=list)
    unsent: list[T] = field(default_factory=list)
    retried: int = 0  # events sent again


class Deliverer(Generic[T]):
    """Sends batches of items (each with its encoded event) through one HTTP client.

    ``sleep(seconds)`` waits and answers whether to go on (False: stop, leave the rest
    unsent); tests and ``close`` make it return early.
    """

    def __init__(
        self,
        http: Callable[[], httpx.Client],
        line: Callable[[T], bytes],
        backoff: Backoff,
        sleep: Callable[[float], bool],
    ) -> None:
        self._http = http
        self._line = line
        self._backoff = backoff
        self._sleep = sleep

    def deliver(self, items: Sequence[T]) -> Outcome[T]:
        outcome: Outcome[T] = Outcome()
        chunks: list[list[T]] = [list(items)]
        attempts = 0
        while chunks:
            pending = chunks[0]
            if not pending:
                chunks.pop(0)
                continue
            attempts += 1
            try:
                response = self._http().post(
                    PATH, content=body_of([self._line(i) for i in pending]), headers=NDJSON
                )
            except httpx.TransportError as exc:
                error: AuditlogError = TransportError(f"{type(exc).__name__}: {exc}")
                retry_after = None
            else:
                if response.status_code < 300:
                    outcome.acked.extend(pending)
                    chunks.pop(0)
                    self._backoff.reset()
                    attempts = 0
                    continue
                api_error = error_of(response)
                if not isinstance(api_error, RetryableError):
                    chunks[0:1] = self._refuse(pending, api_error, outcome)
                    attempts = 0
                    continue
                error, retry_after = api_error, api_error.retry_after
            if self._backoff.policy.gives_up(attempts):
                for chunk in chunks:
                    outcome.refused.extend((i, error) for i in chunk)
                return outcome
            if not self._sleep(self._backoff.next_delay(retry_after)):
                for chunk in chunks:
                    outcome.unsent.extend(chunk)
                return outcome
            outcome.retried += len(pending)
        return outcome

    def _refuse(self, pending: list[T], error: APIError, outcome: Outcome[T]) -> list[list[T]]:
        """The chunks left to send once the events ``error`` names are refused."""
        named = [i for i in error.indexes if 0 <= i < len(pending)]
        if error.status in (409, 413, 422) and named:
            for i in named:
                outcome.refused.append((pending[i], error))
            return [[item for i, item in enumerate(pending) if i not in set(named)]]
        if error.status in (413, 422) and len(pending) > 1:
            half = len(pending) // 2
            return [pending[:half], pending[half:]]
        outcome.refused.extend((i, error) for i in pending)
        return []

"""When to try again, and after how long: exponential backoff with jitter, ``Retry-After``
honoured, and which answers are worth another attempt.

Retried: a connection that could not be made or broke (the request may or may not have been
stored: the event ids make the resend safe), ``429`` and every ``5xx`` (``503`` above all).
Not retried: every other ``4xx``, which the same request would get again.

The delay before attempt *n* (counting from 1 for the first retry) is drawn uniformly
between half and all of ``min(initial * multiplier ** (n - 1), maximum)`` ("equal jitter":
spread out, so many producers that failed together do not come back together, yet never
much shorter than the schedule), and is never shorter than the server's ``Retry-After``
(itself capped at ``retry_after_max``, so a wrong header cannot stall a producer for a day).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import random
from dataclasses import dataclass, field

#: Status codes that mean "not now": the same request may succeed later.
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def retryable_status(status: int) -> bool:
    """Whether an answer with this status is worth retrying unchanged."""
    return status in RETRYABLE_STATUSES or 500 <= status <= 599


def parse_retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (RFC 9110 §10.2.3): a number of seconds
    or an HTTP date; ``None`` when absent or unreadable. Never negative."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        seconds = (when - (now or dt.datetime.now(dt.UTC))).total_seconds()
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN, infinities
        return None
    return max(0.0, seconds)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a failed request is retried.

    ``max_attempts`` counts every attempt, the first included; ``None`` retries for as long
    as it takes (the background sender's default: it never gives up on an event it holds).
    """

    initial: float = 0.5
    multiplier: float = 2.0
    maximum: float = 30.0
    max_attempts: int | None = None
    retry_after_max: float = 300.0

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial or self.multiplier < 1:
            raise ValueError("backoff needs 0 < initial <= maximum and multiplier >= 1")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def ceiling(self, retry: int) -> float:
        """The longest delay before retry number ``retry`` (1 for the first retry)."""
        exponent = min(retry - 1, 64)  # no overflow however long it has been failing
        return float(min(self.initial * self.multiplier**exponent, self.maximum))

    def delay(
        self, retry: int, retry_after: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait before retry number ``retry``: jittered, at least ``retry_after``."""
        ceiling = self.ceiling(retry)
        drawn = (rng or _RANDOM).uniform(ceiling / 2, ceiling)
        if retry_after is not None:
            drawn = max(drawn, min(retry_after, self.retry_after_max))
        return drawn

    def gives_up(self, attempts: int) -> bool:
        """Whether ``attempts`` made so far are all this policy allows."""
        return self.max_attempts is not None and attempts >= self.max_attempts


_RANDOM = random.Random()


@dataclass(slots=True)
class Backoff:
    """The state of one run of retries under a policy: how many failed in a row."""

    policy: RetryPolicy
    failures: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def next_delay(self, retry_after: float | None = None) -> float:
        """Count one more failure and return the delay before the next attempt."""
        self.failures += 1
        return self.policy.delay(self.failures, retry_after, self.rng)

    def reset(self) -> None:
        self.failures = 0

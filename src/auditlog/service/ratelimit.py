"""Rate limits on failed logins: token buckets per username and per client address.

Each key (a username, or a client address) has a bucket of ``capacity`` tokens that refills
by one token every ``refill_seconds``. A login attempt takes one token from the bucket of its
username AND one from the bucket of its address before the password is checked, and gives
both back when the password was right; so only failures spend tokens, and concurrent
attempts cannot overtake the limit while their hashes are being checked. An attempt that
finds either bucket empty is refused at once with ``RateLimited`` (429) and a ``Retry-After``
of the seconds until that bucket holds a token again, whatever the password.

Unknown usernames have buckets like any other, so the limit says nothing about which users
exist. Limiting by username lets anybody lock a user out for a while by guessing wrong; the
per-address limit bounds how fast one client can do that, and the user's lock-out ends by
itself. Buckets live in the process's memory: each server process limits on its own.

Memory is bounded: a full bucket is the same as no bucket, so full ones are dropped when the
table grows past ``max_keys``, and the least recently used ones after that.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from auditlog.errors import RateLimited

Clock = Callable[[], float]
#: Keys longer than this are cut: no valid username is this long, and memory stays bounded.
MAX_KEY = 256


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """Token buckets by key, on a monotonic clock (injectable for tests)."""

    def __init__(
        self,
        capacity: int,
        refill_seconds: float,
        clock: Clock = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        if capacity < 1 or refill_seconds <= 0:
            raise ValueError("a bucket needs a capacity of at least 1 and a positive refill")
        self.capacity = capacity
        self.refill_seconds = refill_seconds
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def _level(self, bucket: _Bucket, now: float) -> float:
        refilled = (now - bucket.updated) / self.refill_seconds
        return min(float(self.capacity), bucket.tokens + refilled)

    def tokens(self, key: str) -> float:
        """The tokens the bucket of ``key`` holds now."""
        bucket = self._buckets.get(key[:MAX_KEY])
        return float(self.capacity) if bucket is None else self._level(bucket, self._clock())

    def wait(self, key: str) -> float:
        """Seconds until the bucket of ``key`` holds a whole token (0 if it does now)."""
        missing = 1.0 - self.tokens(key)
        return max(0.0, missing * self.refill_seconds)

    def take(self, key: str) -> None:
        """Take one token from the bucket of ``key`` (callers check ``wait`` first)."""
        key = key[:MAX_KEY]
        now = self._clock()
        bucket = self._buckets.get(key)
        level = float(self.capacity) if bucket is None else self._level(bucket, now)
        self._buckets[key] = _Bucket(max(0.0, level - 1.0), now)
        self._buckets.move_to_end(key)
        if len(self._buckets) > self._max_keys:
            self._prune(now)

    def give_back(self, key: str) -> None:
        """Return one token taken from the bucket of ``key``."""
        key = key[:MAX_KEY]
        bucket = self._buckets.get(key)
        if bucket is None:
            return
        now = self._clock()
        level = min(float(self.capacity), self._level(bucket, now) + 1.0)
        if level >= self.capacity:
            del self._buckets[key]
        else:
            self._buckets[key] = _Bucket(level, now)

    def _prune(self, now: float) -> None:
        for key in [k for k, b in self._buckets.items() if self._level(b, now) >= self.capacity]:
            del self._buckets[key]
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)


@dataclass(frozen=True, slots=True)
class Attempt:
    """A login attempt that holds a token of its username's and its address's buckets."""

    username: str
    address: str


class LoginLimiter:
    """Failed-login limits per username and per client address."""

    def __init__(self, per_user: TokenBuckets, per_address: TokenBuckets) -> None:
        self.per_user = per_user
        self.per_address = per_address

    def begin(self, username: str, address: str) -> Attempt:
        """Take a token for an attempt, or ``RateLimited`` if either bucket is empty."""
        wait = max(self.per_user.wait(username), self.per_address.wait(address))
        if wait > 0:
            raise RateLimited("too many failed logins; try again later", max(1, math.ceil(wait)))
        self.per_user.take(username)
        self.per_address.take(address)
        return Attempt(username, address)

    def succeeded(self, attempt: Attempt) -> None:
        """The password was right: the attempt costs nothing."""
        self.per_user.give_back(attempt.username)
        self.per_address.give_back(attempt.address)


class RequestLimiter:
    """Per-credential request rates: a token bucket for writes and one for reads.

    Every authenticated request takes a token from its credential's bucket of its kind (a
    route needing ``events:write`` is a write, every other one a read); an empty bucket is
    ``RateLimited`` (429) with the seconds until it holds a token again. A rate of 0 turns
    the limit off.
    """

    def __init__(self, writes: TokenBuckets | None, reads: TokenBuckets | None) -> None:
        self.writes = writes
        self.reads = reads

    @classmethod
    def from_rates(
        cls, write_rate: float, write_burst: int, read_rate: float, read_burst: int
    ) -> RequestLimiter:
        """Buckets of ``burst`` tokens refilled at ``rate`` per second (0: no limit)."""

        def buckets(rate: float, burst: int) -> TokenBuckets | None:
            return TokenBuckets(max(1, burst), 1.0 / rate) if rate > 0 else None

        return cls(buckets(write_rate, write_burst), buckets(read_rate, read_burst))

    def check(self, credential_id: str, kind: str) -> None:
        """Take a token for one ``kind`` ("write" or "read") request, or ``RateLimited``."""
        buckets = self.writes if kind == "write" else self.reads
        if buckets is None:
            return
        wait = buckets.wait(credential_id)
        if wait > 0:
            raise RateLimited(
                f"this credential is over its {kind} rate; retry later", max(1, math.ceil(wait))
            )
        buckets.take(credential_id)

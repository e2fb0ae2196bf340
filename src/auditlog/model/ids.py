"""Identifiers: ULIDs for events without an id, and the rule for producer-given ids."""

from __future__ import annotations

import os
import random
import re
import threading
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Two Crockford characters per 10 bits, three per 15 bits: a ULID (130 bits, the first two
# always 0) is one pair and eight triples looked up.
_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]
_TRIPLES = [a + b + c for a in _CROCKFORD for b in _CROCKFORD for c in _CROCKFORD]
_M = (1 << 15) - 1
EVENT_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}", re.ASCII)
EVENT_ID_EXPECTED = "1-128 characters of A-Z a-z 0-9 . _ : -"


class _Monotonic:
    """ULIDs that increase strictly within a process, even within one millisecond.

    The random part comes from a generator seeded from the OS once per process (ULIDs need to
    be unique, not unpredictable); within a millisecond it is incremented, so two ids made in
    the same process never collide and sort in the order they were made.
    """

    def __init__(self) -> None:
        self._random = random.Random(os.urandom(32))
        self._last_ms = -1
        self._last_rand = 0
        self._lock = threading.Lock()

    def next(self, now_ms: int | None) -> str:
        ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        with self._lock:
            if ms <= self._last_ms and self._last_rand < (1 << 80) - 1:
                ms = self._last_ms
                rand = self._last_rand + 1
            else:
                rand = self._random.getrandbits(80)
            self._last_ms, self._last_rand = ms, rand
        v = (ms << 80) | rand
        t = _TRIPLES
        return "".join(
            (
                _PAIRS[v >> 120],
                t[(v >> 105) & _M],
                t[(v >> 90) & _M],
                t[(v >> 75) & _M],
                t[(v >> 60) & _M],
                t[(v >> 45) & _M],
                t[(v >> 30) & _M],
                t[(v >> 15) & _M],
                t[v & _M],
            )
        )


_generator = _Monotonic()


def ulid(now_ms: int | None = None) -> str:
    """A new ULID: 48 bits of milliseconds then 80 random bits, 26 Crockford base32 chars.

    ULIDs sort by creation time (to the millisecond), which keeps the id index append-friendly.
    """
    return _generator.next(now_ms)


def is_event_id(value: str) -> bool:
    """Whether ``value`` is an acceptable event id."""
    return EVENT_ID.fullmatch(value) is not None

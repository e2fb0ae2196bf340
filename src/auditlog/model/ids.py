"""Identifiers: ULIDs for events without an id, and the rule for producer-given ids."""

from __future__ import annotations

import os
import re
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
EVENT_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}", re.ASCII)
EVENT_ID_EXPECTED = "1-128 characters of A-Z a-z 0-9 . _ : -"


def ulid(now_ms: int | None = None) -> str:
    """A new ULID: 48 bits of milliseconds then 80 random bits, 26 Crockford base32 chars.

    ULIDs sort by creation time (to the millisecond), which keeps the id index append-friendly.
    """
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def is_event_id(value: str) -> bool:
    """Whether ``value`` is an acceptable event id."""
    return EVENT_ID.fullmatch(value) is not None

"""Retention policies and legal holds as values, and the durations they are written in.

A tenant's retention (API.md §14) is how long its events are kept after they were received:
a duration, or none (kept for ever, the default for a tenant without a policy). A legal hold
on a tenant stops every pruning of its log while it is set, whatever its retention says.

Durations are a whole number and one unit, ``s``, ``m``, ``h`` or ``d`` (``400d``, ``12h``,
``30m``, ``45s``), or the word ``none``; they are kept as seconds.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
_DURATION = re.compile(r"([0-9]{1,12})([smhd])", re.ASCII)
#: The longest retention: 100 years of days.
MAX_SECONDS = 36_500 * 86_400
DURATION_EXPECTED = "a whole number and a unit (s, m, h or d), as 400d, 12h, 30m or 45s, or none"


def parse_duration(text: str) -> int | None:
    """``400d`` to seconds; ``none`` to ``None``; ``ValueError`` saying what is expected."""
    if text == "none":
        return None
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ValueError(f"duration {text!r} is not {DURATION_EXPECTED}")
    seconds = int(match[1]) * UNITS[match[2]]
    if seconds <= 0:
        raise ValueError(f"duration {text!r} is not longer than nothing; use none to keep all")
    if seconds > MAX_SECONDS:
        raise ValueError(f"duration {text!r} is longer than 36500d")
    return seconds


def format_duration(seconds: int | None) -> str:
    """Seconds in the largest unit that divides them exactly (``34560000`` is ``400d``);
    ``None`` is ``none``. ``parse_duration`` reads it back to the same value."""
    if seconds is None:
        return "none"
    for unit in ("d", "h", "m"):
        if seconds % UNITS[unit] == 0:
            return f"{seconds // UNITS[unit]}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True, slots=True)
class Retention:
    """A tenant's retention policy as stored: ``keep_seconds`` ``None`` keeps everything."""

    tenant: str
    keep_seconds: int | None
    updated_us: int
    #: Who set it: an operator (``cli:<user>``) or a credential's principal.
    updated_by: str

    @property
    def keep(self) -> str:
        return format_duration(self.keep_seconds)


@dataclass(frozen=True, slots=True)
class Hold:
    """A legal hold on a tenant, while it is set: why, by whom and since when."""

    tenant: str
    reason: str
    set_by: str
    set_us: int


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def check_reason(reason: str) -> str:
    """A hold's reason, or ``ValueError``: 1-1000 characters, no control characters."""
    if not reason.strip() or len(reason) > 1000 or _CONTROL.search(reason):
        raise ValueError("a reason is 1-1000 characters without control characters")
    return reason


@dataclass(frozen=True, slots=True)
class ArchiveRecord:
    """An archive of a tenant's log that ``auditlog archive`` wrote and checked: it holds
    the events with seq ``first_seq`` to ``end_seq - 1`` and a signed checkpoint of size
    ``checkpoint_size`` that covers them. ``sha256`` (hex) names the file's exact bytes,
    ``location`` is where it was written. Pruning removes only what archives cover."""

    tenant: str
    first_seq: int
    end_seq: int
    sha256: str
    location: str
    checkpoint_size: int
    created_us: int
    created_by: str


def id_hash(event_id: str) -> int:
    """The 64-bit signed hash by which a pruned event's id is remembered: the first 8 bytes
    of SHA-256 of its UTF-8, big-endian. Enough to tell "pruned" from "never stored" (a
    chance collision is 1 in 2^64 per lookup and pruned id), and it keeps no id text."""
    return int.from_bytes(hashlib.sha256(event_id.encode()).digest()[:8], "big", signed=True)

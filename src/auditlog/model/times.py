"""Times: RFC 3339 strings in UTC with microseconds, or Unix seconds, to integer microseconds.

Internally a time is an ``int`` of microseconds since the Unix epoch (UTC). Externally it is
always written as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``.
"""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Years 0001-9999, the range every RFC 3339 string and Python datetime can hold.
MIN_US = int((datetime(1, 1, 1, tzinfo=UTC) - _EPOCH).total_seconds()) * 1_000_000
MAX_US = (
    int((datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC) - _EPOCH).total_seconds()) * 1_000_000
    + 999_999
)

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})",
    re.ASCII,
)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?", re.ASCII)

#: The times ``parse_rfc3339`` and ``parse_time_param`` read, as regular expressions that
#: JSON Schema (ECMA 262) and Python read alike, for documents: a calendar date they cannot
#: check (February 30) and the years' bounds after an offset are still refused when parsed.
RFC3339_PATTERN = (
    r"(?!0000)[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])[Tt]"
    r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:(?:[0-5][0-9]|60)(?:\.[0-9]{1,9})?"
    r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
UNIX_SECONDS_PATTERN = r"-?[0-9]+(?:\.[0-9]+)?"
#: The Unix seconds of the first instant of the years 0001-9999, and of the first after them.
MIN_SECONDS = MIN_US // 1_000_000
END_SECONDS = MAX_US // 1_000_000 + 1

EXPECTED = "an RFC 3339 time such as 2026-11-27T02:27:53.123456Z, or Unix seconds"


class TimeFormatError(ValueError):
    """The value is not a time we accept; the message says what was expected."""


# Memo of the last whole second formatted: most times of a burst share their second. A tuple
# swapped in one assignment, so a reader in another thread always sees a matching pair.
_last_second: tuple[int, str] = (0, "1970-01-01T00:00:00")


def format_us(us: int) -> str:
    """Microseconds since the epoch as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    global _last_second
    second, micro = divmod(us, 1_000_000)
    memo_second, prefix = _last_second
    if memo_second != second:
        dt = _EPOCH + timedelta(seconds=second)
        prefix = (
            f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:"
            f"{dt.second:02d}"
        )
        _last_second = (second, prefix)
    return f"{prefix}.{micro:06d}Z"


def parse_rfc3339(text: str) -> int:
    """An RFC 3339 date-time with a ``Z`` or numeric offset, to microseconds.

    Fractions finer than a microsecond are truncated.
    """
    m = _RFC3339.fullmatch(text)
    if m is None:
        raise TimeFormatError(f"{text!r} is not {EXPECTED}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    frac = m.group(7) or ""
    micro = int((frac + "000000")[:6])
    if second == 60:  # a leap second is held at the last representable instant of its minute
        second, micro = 59, 999_999
    try:
        dt = datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)
    except ValueError:
        raise TimeFormatError(f"{text!r} is not a valid calendar time") from None
    offset = m.group(8)
    if offset not in ("Z", "z"):
        sign = 1 if offset[0] == "+" else -1
        oh, om = int(offset[1:3]), int(offset[4:6])
        if oh > 23 or om > 59:
            raise TimeFormatError(f"{text!r} has an invalid UTC offset")
        try:
            dt -= sign * timedelta(hours=oh, minutes=om)
        except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is in the year 0
            raise TimeFormatError(f"{text!r} is outside the years 0001-9999") from None
    us = (dt - _EPOCH) // timedelta(microseconds=1)
    if not MIN_US <= us <= MAX_US:
        raise TimeFormatError(f"{text!r} is outside the years 0001-9999")
    return us


def from_unix_seconds(seconds: float | int) -> int:
    """Unix seconds (integer or fraction) to microseconds."""
    if isinstance(seconds, float) and not math.isfinite(seconds):
        raise TimeFormatError(f"{seconds!r} is not {EXPECTED}")
    if not MIN_US <= seconds * 1_000_000 <= MAX_US:
        # Before round(): past about 1.8e302 seconds the product is a float infinity, which
        # round() cannot turn into an integer (OverflowError).
        raise TimeFormatError(f"{seconds!r} is outside the years 0001-9999")
    us = round(seconds * 1_000_000) if isinstance(seconds, float) else seconds * 1_000_000
    if not MIN_US <= us <= MAX_US:
        raise TimeFormatError(f"{seconds!r} is outside the years 0001-9999")
    return int(us)


def parse_time_value(value: object) -> int:
    """A time from a JSON value: an RFC 3339 string or a number of Unix seconds."""
    if isinstance(value, bool):
        raise TimeFormatError(f"{value!r} is not {EXPECTED}")
    if isinstance(value, int | float):
        return from_unix_seconds(value)
    if isinstance(value, str):
        return parse_rfc3339(value)
    raise TimeFormatError(f"a {type(value).__name__} is not {EXPECTED}")


def parse_time_param(text: str) -> int:
    """A time from a query parameter: RFC 3339, or Unix seconds written as a number."""
    if _NUMBER.fullmatch(text):
        whole, _, frac = text.partition(".")
        if len(whole.lstrip("-").lstrip("0")) > 18:  # and int() refuses very long digit strings
            raise TimeFormatError(f"{text[:40]!r}... is outside the years 0001-9999")
        if frac:
            # Exact decimal arithmetic: no float rounding for a parameter.
            sign = -1 if whole.startswith("-") else 1
            us = int(whole) * 1_000_000 + sign * int((frac + "000000")[:6])
        else:
            us = int(whole) * 1_000_000
        if not MIN_US <= us <= MAX_US:
            raise TimeFormatError(f"{text!r} is outside the years 0001-9999")
        return us
    return parse_rfc3339(text)


def now_us() -> int:
    """The current time in microseconds since the epoch."""
    return time.time_ns() // 1000

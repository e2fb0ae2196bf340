"""An event as the client sends it (API.md §1): the envelope built by ``log``, its id made
here before it is queued, its time taken when ``log`` is called, and its bytes.

Every event gets its id from ``new_id`` unless the caller gives one: a ULID (48 bits of
milliseconds, 80 random bits, 26 Crockford base32 characters) that increases strictly within a
process. Because the id is fixed before the event is queued, every resend of it (after a
timeout, a 503, a restart of the producer with a spool) is the same event to the service,
which stores it once and answers a replay with the original (API.md §2).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import threading
import time
from collections.abc import Mapping
from typing import Any

Party = str | Mapping[str, str]
TimeLike = dt.datetime | str | int | float

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# A ULID is 130 bits written 10 at a time: 13 lookups of two characters each.
_PAIRS = tuple(a + b for a in _CROCKFORD for b in _CROCKFORD)
_SHIFTS = tuple(range(120, -1, -10))
_RANDOM_BITS = 80
_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
OUTCOMES = ("success", "failure", "unknown")


class _UlidSource:
    """ULIDs strictly increasing within the process, even within one millisecond: the random
    part of the previous id plus one. A forked child starts a random part of its own, so it
    never repeats an id its parent makes in the same millisecond.

    An id is its first 24 characters (the millisecond, then the random part but its last ten
    bits), kept while they do not change, and two characters for those ten bits: most ids
    cost one lookup and one concatenation.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._lock = threading.Lock()
        self._ms = 0
        self._random = 0
        self._head = ""

    def new(self) -> str:
        now_ms = time.time_ns() // 1_000_000
        with self._lock:
            if now_ms > self._ms:
                self._ms = now_ms
                self._random = int.from_bytes(os.urandom(10), "big") >> 1  # room to count up
                self._head = ""
            else:
                self._random += 1
                if self._random >> _RANDOM_BITS:  # 2^79 ids in one millisecond: borrow the next
                    self._ms += 1
                    self._random = 0
                    self._head = ""
                elif not self._random & 1023:
                    self._head = ""
            random = self._random
            if not self._head:
                value = (self._ms << _RANDOM_BITS) | random
                self._head = "".join([_PAIRS[(value >> s) & 1023] for s in _SHIFTS[:-1]])
            return self._head + _PAIRS[random & 1023]


_ULIDS = _UlidSource()
os.register_at_fork(after_in_child=_ULIDS.reset)


def new_id() -> str:
    """A new ULID, greater than every ULID this process made before."""
    return _ULIDS.new()


_second_cache: tuple[int, str] = (-1, "")


def format_time(ns: int) -> str:
    """``ns`` nanoseconds since the epoch as the API writes times: RFC 3339, UTC, six digits."""
    global _second_cache
    seconds, rest = divmod(ns, 1_000_000_000)
    cached_second, prefix = _second_cache
    if cached_second != seconds:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _second_cache = (seconds, prefix)
    return f"{prefix}.{rest // 1000:06d}Z"


def time_value(value: TimeLike) -> str | int | float:
    """A time the API accepts: a datetime as RFC 3339 (a naive one is taken as UTC); an RFC
    3339 string or Unix seconds as given."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TypeError(f"time must be a datetime, an RFC 3339 string or Unix seconds: {value!r}")
    return value


def _party(value: Party, what: str) -> str | Mapping[str, str]:
    if type(value) is str or type(value) is dict or isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{what} must be a string or a mapping with an 'id': {value!r}")


def build(
    type: str,
    *,
    actor: Party | None = None,
    subject: Party | None = None,
    outcome: str | None = None,
    data: Mapping[str, Any] | None = None,
    id: str | None = None,
    time: TimeLike | None = None,
    source: str | None = None,
) -> dict[str, Any]:
    """The event to send: its id, made here when not given, and then its time, now when not
    given; the other fields only when given, so the service fills in its defaults.

    An event whose id the caller gives gets no time unless given one either: the caller's id
    says "this is the event", so logging it again (a job run twice) must be a replay, which
    a second time of its own would turn into a conflict (the service fills in the time it
    receives the event, and compares it only when sent).

    Raises ``ValueError`` or ``TypeError`` at once for what the service would refuse for sure
    (a bad id, an empty type, an unknown outcome), so it fails in the caller, not later.
    """
    if not isinstance(type, str) or not 1 <= len(type) <= 200:
        raise ValueError(f"type must be a string of 1-200 characters: {type!r}")
    event: dict[str, Any] = {"id": id, "type": type}
    if id is None:
        event["id"] = new_id()
        if time is None:
            time = format_time(_now_ns())
    elif not isinstance(id, str) or not _ID.fullmatch(id):
        raise ValueError(f"id must be 1-128 characters of A-Z a-z 0-9 . _ : -: {id!r}")
    if time is not None:
        event["time"] = time_value(time)
    if actor is not None:
        event["actor"] = _party(actor, "actor")
    if subject is not None:
        event["subject"] = _party(subject, "subject")
    if source is not None:
        event["source"] = source
    if outcome is not None:
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}: {outcome!r}")
        event["outcome"] = outcome
    if data is not None:
        if data.__class__ is not dict:
            if not isinstance(data, Mapping):
                raise TypeError(f"data must be a mapping: {data!r}")
            data = dict(data)
        event["data"] = data
    return event


_now_ns = time.time_ns


def _unencodable(value: object) -> object:
    raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")


_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
# The C encoder of the json module made once, not at every call as JSONEncoder.encode does:
# half the cost of encoding a small event. No check for circular values (a RecursionError,
# turned into ValueError below); NaN and infinities refused, as the API refuses them.
_make_c_encoder = getattr(json.encoder, "c_make_encoder", None)
_c_encoder = (
    None
    if _make_c_encoder is None
    else _make_c_encoder(
        None, _unencodable, json.encoder.encode_basestring, None, ":", ",", False, False, False
    )
)


def encode(event: Mapping[str, Any]) -> bytes:
    """The event's JSON, compact, UTF-8: one line of an NDJSON batch.

    Raises ``TypeError``/``ValueError`` for a value JSON cannot hold (a set, NaN, a value
    that contains itself...).
    """
    if _c_encoder is None:
        return _encoder.encode(event).encode("utf-8")
    try:
        return "".join(_c_encoder(event, 0)).encode("utf-8")
    except RecursionError:
        raise ValueError("the event holds a value that contains itself") from None


def event_id(line: bytes) -> str:
    """The id of an encoded event (it always has one: ``build`` makes it)."""
    value = json.loads(line)
    return str(value["id"])

"""An event as the rows the PostgreSQL store keeps: its ``events`` row and its index rows.

``body`` keeps the stored bytes exactly; every other column is derived from the event so that
queries can find it (``querysql``). The ``events`` row is written with the commit; the
``event_search`` row (``data``, ``words``, ``nested``), the ``event_numbers`` rows and the
``path_flags`` later, by the search indexer, from the stored body. PostgreSQL text and
``jsonb`` cannot hold the character NUL, which JSON allows: in the derived columns it is
replaced by U+FFFD, and query values that contain NUL are checked outside SQL, so a replaced
character never hides a match.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from psycopg.types.json import Jsonb

from auditlog.model.event import NewEvent
from auditlog.model.text import event_words
from auditlog.storage import numbers
from auditlog.storage.numbers import EventNumbers

#: The columns of ``events`` a COPY fills, in order.
COLUMNS = (
    "tenant_id",
    "seq",
    "received_us",
    "id",
    "type",
    "time_us",
    "actor",
    "subject",
    "source",
    "outcome",
    "body",
)
#: The PostgreSQL types of ``COLUMNS``, for binary COPY.
TYPES = ("int4", "int8", "int8", "text", "text", "int8", "text", "text", "text", "text", "bytea")

#: The columns of ``event_search``, in order, and their types.
SEARCH_COLUMNS = ("tenant_id", "seq", "received_us", "data", "words", "nested")
SEARCH_TYPES = ("int4", "int8", "int8", "jsonb", "text", "text[]")

_REPLACEMENT = "\ufffd"


def _clean(value: Any) -> Any:
    """``value`` with NUL replaced in every string and object key."""
    if isinstance(value, str):
        return value.replace("\x00", _REPLACEMENT)
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text.replace("\x00", _REPLACEMENT) if "\x00" in text else text


def _dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def envelope(event: NewEvent) -> list[Any]:
    """The columns of an event's ``events`` row from ``id`` to ``outcome``."""
    content = event.content
    actor = content.get("actor") or {}
    subject = content.get("subject") or {}
    return [
        event.id,
        _text(event.type),
        event.time_us,
        _text(actor.get("id")),
        _text(subject.get("id")),
        _text(content.get("source")),
        _text(content.get("outcome")),
    ]


def event_row(
    tenant_id: int, seq: int, received_us: int, event: NewEvent, body: bytes
) -> tuple[object, ...]:
    """The ``events`` row of one event, in the order of ``COLUMNS``, for COPY."""
    return (tenant_id, seq, received_us, *envelope(event), body)


#: The columns of ``event_numbers``, in order, and their types.
NUMBER_COLUMNS = ("tenant_id", "path", "v", "seq", "received_us")
NUMBER_TYPES = ("int4", "int8", "float8", "int8", "int8")


@dataclass(slots=True)
class IndexRows:
    """What the search indexer writes for one stored event."""

    search: tuple[object, ...]
    #: rows of ``event_numbers``, in the order of ``NUMBER_COLUMNS``
    numbers: list[tuple[object, ...]]
    #: what the event holds at each path, for ``path_flags`` (``numbers.flags_of``)
    held: EventNumbers


def index_rows(tenant_id: int, seq: int, received_us: int, body: bytes) -> IndexRows:
    """The search row, number rows and path flags of a stored event."""
    stored = orjson.loads(body)
    held = numbers.event_numbers(stored)
    # As doubles, distinct integers past 2^53 may meet: one row each.
    values = {(pid, float(n)) for pid, n in held.numbers}
    return IndexRows(
        search_row(tenant_id, seq, received_us, body, stored),
        [(tenant_id, pid, v, seq, received_us) for pid, v in values],
        held,
    )


def search_row(
    tenant_id: int, seq: int, received_us: int, body: bytes, stored: dict[str, Any]
) -> tuple[object, ...]:
    """The ``event_search`` row of a stored event (``body``, parsed as ``stored``), in the
    order of ``SEARCH_COLUMNS``."""
    data = stored.get("data", {})
    if b"\\u0000" in body:
        data = _clean(data)
    # In the compact stored JSON, an array begins directly inside an array only after "[" or
    # ",", so most events need no walk.
    nested = sorted(nested_paths(data)) or None if b"[[" in body or b",[" in body else None
    words = " ".join(event_words(stored))
    return (tenant_id, seq, received_us, Jsonb(data, dumps=_dumps), words, nested)


def nested_paths(value: Any, path: str = "", out: set[str] | None = None) -> set[str]:
    """The paths in ``value`` (keys joined by dots; array elements share their array's path)
    where an array holds an array directly."""
    found = set() if out is None else out
    if isinstance(value, dict):
        for key, item in value.items():
            nested_paths(item, f"{path}.{key}" if path else str(key), found)
    elif isinstance(value, list):
        if any(isinstance(item, list) for item in value):
            found.add(path)
        for item in value:
            nested_paths(item, path, found)
    return found


_SEQ_ZERO = b'"seq":0,'


def split_body(body: bytes) -> tuple[bytes, bytes]:
    """A stored body made with seq 0, as the bytes before and after its seq's digits.

    Keys are sorted, so the event's own ``seq`` is the last member spelled ``"seq":0,``:
    only ``source``, ``subject``, ``tenant``, ``time`` and ``type`` follow it, and none of
    them can hold that text outside a JSON string.
    """
    at = body.rfind(_SEQ_ZERO)
    if at < 0:
        raise ValueError("a stored body without its seq")
    cut = at + len(_SEQ_ZERO) - 2
    return body[:cut], body[cut + 1 :]

"""An event as the row the PostgreSQL store copies into ``events``.

``body`` keeps the stored bytes exactly; the other columns are derived from the event so that
queries can find it (``querysql``). PostgreSQL text and ``jsonb`` cannot hold the character
NUL, which JSON allows: in the derived columns it is replaced by U+FFFD, and query values that
contain NUL are checked outside SQL, so a replaced character never hides a match.
"""

from __future__ import annotations

from typing import Any

import orjson
from psycopg.types.json import Jsonb

from auditlog.model.event import NewEvent
from auditlog.model.text import event_words

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
    "data",
    "words",
    "nested",
    "body",
)
#: The PostgreSQL types of ``COLUMNS``, for binary COPY.
TYPES = (
    "int4",
    "int8",
    "int8",
    "text",
    "text",
    "int8",
    "text",
    "text",
    "text",
    "text",
    "jsonb",
    "text",
    "bool",
    "bytea",
)

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


def derived(event: NewEvent, body: bytes) -> list[Any]:
    """The columns derived from an event, from ``id`` to ``nested`` in ``COLUMNS`` order.

    ``data`` is given as a JSON-ready value (NUL replaced); ``body`` only needs the event's
    fields, whatever its seq.
    """
    content = event.content
    actor = content.get("actor") or {}
    subject = content.get("subject") or {}
    data = content.get("data", {})
    if b"\\u0000" in body:
        data = _clean(data)
    # In the compact stored JSON, an array begins directly inside an array only after "[" or
    # ",": a string holding these characters makes a harmless false positive.
    nested = b"[[" in body or b",[" in body
    return [
        event.id,
        _text(event.type),
        event.time_us,
        _text(actor.get("id")),
        _text(subject.get("id")),
        _text(content.get("source")),
        _text(content.get("outcome")),
        data,
        " ".join(event_words(content)),
        nested,
    ]


def event_row(
    tenant_id: int, seq: int, received_us: int, event: NewEvent, body: bytes
) -> tuple[object, ...]:
    """The row of one event, in the order of ``COLUMNS``, for COPY."""
    columns = derived(event, body)
    columns[7] = Jsonb(columns[7], dumps=_dumps)
    return (tenant_id, seq, received_us, *columns, body)


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

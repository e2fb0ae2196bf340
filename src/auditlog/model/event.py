"""The audit event of API.md §1: validation of what producers send, and the stored form.

A producer sends an envelope (``id``, ``type``, ``time``, ``actor``, ``subject``, ``source``,
``outcome``) plus free-form ``data``. Validation turns that JSON value into a ``NewEvent``: the
normalised content that storage gives a ``seq`` and commits, after which the stored event is
``content`` plus ``tenant``, ``seq`` and ``received_at``, serialised by ``canonical_bytes``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from msgspec import UNSET

from auditlog.errors import FieldError
from auditlog.model import ids, times
from auditlog.model.canonical import canonical_bytes
from auditlog.model.eventinput import (
    CONTROL,
    MAX_DATA_DEPTH,
    MAX_TEXT,
    OUTCOMES,
    EventInput,
    party,
)

#: Fields a producer may send, in the order the API lists them.
ENVELOPE_FIELDS = ("id", "type", "time", "actor", "subject", "source", "outcome", "data")
#: Fields only the server sets.
SERVER_FIELDS = ("tenant", "seq", "received_at")
PARTY_FIELDS = ("id", "type", "name")
#: Room the server-set fields take in the stored event, beyond the producer's content.
_SERVER_FIELD_ALLOWANCE = 160


@dataclass(frozen=True, slots=True)
class Limits:
    """Size limits on what producers send (see docs/configuration.md)."""

    max_event_bytes: int = 64 * 1024
    max_batch_events: int = 10_000
    max_data_depth: int = MAX_DATA_DEPTH


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is writing: the defaults for ``actor`` and ``source`` come from here."""

    id: str
    name: str


@dataclass(slots=True)
class NewEvent:
    """A validated event, ready to be given a ``seq``; never changed once made.

    (Not a frozen dataclass: making one costs four times as much, once per event written.)

    ``content`` holds every envelope field and ``data``, normalised (times in the canonical
    string form, ``actor``/``subject`` as objects, defaults filled in). ``given`` names the
    fields the producer sent, which is what an idempotent retry is compared on.
    """

    id: str
    type: str
    time_us: int
    content: dict[str, Any]
    given: frozenset[str]
    floats: bool
    size: int
    #: The stored bytes, made at validation for the tenant named here, cut around the
    #: value of ``received_at`` and ``seq``: (tenant, bytes before, bytes after).
    template: tuple[str, bytes, bytes] | None = None


class EventInvalid(ValueError):
    """The value is not a valid event; ``errors`` says every reason found."""

    def __init__(self, errors: Sequence[FieldError], too_large: bool = False) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = tuple(errors)
        self.too_large = too_large


_CONTROL = re.compile(f"[{CONTROL}]")  # Unicode category Cc


def _has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None


def _check_text(value: Any, field: str, errors: list[FieldError], max_len: int = MAX_TEXT) -> None:
    if type(value) is str and 0 < len(value) <= max_len and _CONTROL.search(value) is None:
        return  # the common case, decided in one line
    if not isinstance(value, str):
        errors.append(FieldError(field, f"expected a string of 1-{max_len} characters"))
    elif not 1 <= len(value) <= max_len:
        errors.append(
            FieldError(field, f"length {len(value)} is out of range 1-{max_len} characters")
        )
    else:
        _no_control(value, field, errors)


def _party(value: Any, field: str, errors: list[FieldError]) -> dict[str, str] | None:
    """``actor`` or ``subject``: an object with a string id, or a string short for one."""
    if isinstance(value, str):
        value = {"id": value}
    if not isinstance(value, dict):
        errors.append(
            FieldError(field, 'expected an object {"id", "type"?, "name"?} or a string id')
        )
        return None
    before = len(errors)
    for key in value:
        if key not in PARTY_FIELDS:
            errors.append(FieldError(f"{field}.{key}", "unknown field; expected id, type, name"))
    if "id" not in value:
        errors.append(FieldError(f"{field}.id", "is required"))
    for key in PARTY_FIELDS:
        if key in value:
            _check_text(value[key], f"{field}.{key}", errors)
    return value if len(errors) == before else None


class _TooDeep(Exception):
    pass


def _scan(container: dict[str, Any] | list[Any], room: int) -> bool:
    """Whether a float occurs inside; ``_TooDeep`` past ``room`` more levels of nesting."""
    floats = False
    for item in container.values() if isinstance(container, dict) else container:
        kind = type(item)
        if kind is float:
            floats = True
        elif kind is dict or kind is list:
            if room <= 1:
                raise _TooDeep
            if _scan(item, room - 1):
                floats = True
    return floats


def _depth_and_floats(value: dict[str, Any], limit: int) -> tuple[bool, bool]:
    """(whether nesting stays within ``limit`` containers, whether a float occurs)."""
    try:
        return True, _scan(value, limit)
    except _TooDeep:
        return False, False


def validate_event(
    raw: Any, principal: Principal, limits: Limits, now_us: int, tenant: str | None = None
) -> NewEvent:
    """Validate one event as sent by a producer; raise ``EventInvalid`` naming every problem.

    With ``tenant``, the event's stored bytes for that tenant are made now, but for its
    ``received_at`` and ``seq`` (``stored_bytes`` fills them in at commit)."""
    if not isinstance(raw, dict):
        raise EventInvalid([FieldError("(event)", "expected a JSON object")])
    errors: list[FieldError] = []
    for key in raw:
        if key in SERVER_FIELDS:
            errors.append(FieldError(key, "is set by the server and must not be sent"))
        elif key not in ENVELOPE_FIELDS:
            errors.append(FieldError(key, "unknown field; put event-specific fields in data"))

    content: dict[str, Any] = {}
    event_id = raw.get("id")
    if "id" not in raw:
        event_id = ids.ulid(now_us // 1000)
    elif not isinstance(event_id, str) or not ids.is_event_id(event_id):
        errors.append(FieldError("id", f"expected {ids.EVENT_ID_EXPECTED}"))
    content["id"] = event_id

    if "type" not in raw:
        errors.append(FieldError("type", "is required"))
    else:
        _check_text(raw["type"], "type", errors)
    content["type"] = raw.get("type")

    time_us = now_us
    if "time" in raw:
        try:
            time_us = times.parse_time_value(raw["time"])
        except times.TimeFormatError as exc:
            errors.append(FieldError("time", str(exc)))
    content["time"] = times.format_us(time_us)

    if "actor" in raw:
        content["actor"] = _party(raw["actor"], "actor", errors)
    else:
        content["actor"] = {"id": principal.id, "type": "credential"}
    if "subject" in raw:
        content["subject"] = _party(raw["subject"], "subject", errors)

    if "source" in raw:
        _check_text(raw["source"], "source", errors)
        content["source"] = raw["source"]
    else:
        content["source"] = principal.name

    if "outcome" in raw:
        if raw["outcome"] not in OUTCOMES:
            errors.append(FieldError("outcome", "expected one of success, failure, unknown"))
        content["outcome"] = raw["outcome"]

    floats = False
    data = raw.get("data", {})
    if not isinstance(data, dict):
        errors.append(FieldError("data", "expected a JSON object"))
    else:
        floats = _check_depth(data, limits, errors)
    content["data"] = data
    if errors:
        raise EventInvalid(errors)
    given = frozenset(k for k in raw if k in ENVELOPE_FIELDS)
    assert isinstance(event_id, str)
    return _finished(event_id, time_us, content, given, floats, limits, tenant)


def from_input(
    event: EventInput, principal: Principal, limits: Limits, now_us: int, tenant: str | None = None
) -> NewEvent:
    """``validate_event`` for an event ``eventinput`` decoded, and so already checked there
    but for control characters in text, and for what a type cannot say (a time out of range,
    data nested too deep, an event too large).

    The same ``NewEvent`` as ``validate_event`` gives for the same event sent as JSON, or the
    same ``EventInvalid``, with the same errors in the same order.
    """
    errors: list[FieldError] = []
    given = set()
    content: dict[str, Any] = {}
    actor = None if event.actor is UNSET else party(event.actor)
    subject = None if event.subject is UNSET else party(event.subject)
    source = None if event.source is UNSET else event.source
    # One search over every text field; each is looked at alone only if it finds something.
    texts = [event.type, source or ""]
    for p in (actor, subject):
        if p is not None:
            texts.extend(p.values())
    controls = _CONTROL.search("".join(texts)) is not None
    if event.id is UNSET:
        event_id = ids.ulid(now_us // 1000)
    else:
        event_id = event.id
        given.add("id")
    content["id"] = event_id
    content["type"] = event.type
    given.add("type")
    if controls:
        _no_control(event.type, "type", errors)
    time_us = now_us
    if event.time is not UNSET:
        given.add("time")
        try:
            time_us = times.parse_time_value(event.time)
        except times.TimeFormatError as exc:
            errors.append(FieldError("time", str(exc)))
    content["time"] = times.format_us(time_us)
    if actor is None:
        content["actor"] = {"id": principal.id, "type": "credential"}
    else:
        content["actor"] = actor
        given.add("actor")
    if subject is not None:
        content["subject"] = subject
        given.add("subject")
    if controls:
        for name, p in (("actor", actor), ("subject", subject)):
            for key, value in (p or {}).items():
                _no_control(value, f"{name}.{key}", errors)
    if source is None:
        content["source"] = principal.name
    else:
        content["source"] = source
        given.add("source")
        if controls:
            _no_control(source, "source", errors)
    if event.outcome is not UNSET:
        content["outcome"] = event.outcome
        given.add("outcome")
    data: dict[str, Any] = {} if event.data is UNSET else event.data
    if event.data is not UNSET:
        given.add("data")
    floats = _check_depth(data, limits, errors)
    content["data"] = data
    if errors:
        raise EventInvalid(errors)
    return _finished(event_id, time_us, content, frozenset(given), floats, limits, tenant)


def _no_control(value: str, field: str, errors: list[FieldError]) -> None:
    if _has_control(value):
        errors.append(FieldError(field, "must not contain control characters"))


def _check_depth(data: dict[str, Any], limits: Limits, errors: list[FieldError]) -> bool:
    """Whether ``data`` holds a float; an error in ``errors`` if it is nested too deep."""
    shallow, floats = _depth_and_floats(data, limits.max_data_depth)
    if not shallow:
        errors.append(FieldError("data", f"nesting is deeper than {limits.max_data_depth} levels"))
    return floats


def _finished(
    event_id: str,
    time_us: int,
    content: dict[str, Any],
    given: frozenset[str],
    floats: bool,
    limits: Limits,
    tenant: str | None,
) -> NewEvent:
    """The last check of a valid event (its size) and the ``NewEvent``.

    The size is that of ``orjson.dumps(content)`` (key order does not change it) plus
    ``_SERVER_FIELD_ALLOWANCE``; with a tenant and no float, it is read off the stored bytes,
    which are the same serialisation with the server's fields added."""
    template = None
    if tenant is None:
        size = len(orjson.dumps(content)) + _SERVER_FIELD_ALLOWANCE
    else:
        stored = dict(content)
        stored["tenant"] = tenant
        stored["seq"] = 0
        stored["received_at"] = ""
        body = canonical_bytes(stored, floats=floats)
        at = body.rfind(_FILLED_IN)
        template = (tenant, body[: at + _HEAD], body[at + len(_FILLED_IN) - 1 :])
        if floats:
            size = len(orjson.dumps(content)) + _SERVER_FIELD_ALLOWANCE
        else:
            size = len(body) - _ADDED - len(orjson.dumps(tenant)) + _SERVER_FIELD_ALLOWANCE
    if size > limits.max_event_bytes:
        raise EventInvalid(
            [
                FieldError(
                    "(event)",
                    f"the stored event would be about {size} bytes, more than the limit of "
                    f"{limits.max_event_bytes}",
                )
            ],
            too_large=True,
        )
    return NewEvent(
        id=event_id,
        type=content["type"],
        time_us=time_us,
        content=content,
        given=given,
        floats=floats,
        size=size,
        template=template,
    )


# What the server's fields are in a template: the last occurrence is the top level's, since
# only source, subject, tenant, time and type follow it and none can hold it outside a string.
_FILLED_IN = b'"received_at":"","seq":0,'
_HEAD = len(b'"received_at":"')
#: What the server's fields add to the serialised content, but for the tenant's JSON string.
_ADDED = len(b'"received_at":"",' + b'"seq":0,' + b'"tenant":' + b",")


def stored_bytes(event: NewEvent, tenant: str, seq: int, received_at: str) -> bytes:
    """The stored event's canonical bytes: the content plus the server-set fields.

    ``received_at`` is the commit time, already formatted (one per group commit).
    """
    template = event.template
    if template is not None and template[0] == tenant:
        head, tail = template[1], template[2]
        return b'%s%s","seq":%d%s' % (head, received_at.encode(), seq, tail)
    stored = dict(event.content)
    stored["tenant"] = tenant
    stored["seq"] = seq
    stored["received_at"] = received_at
    return canonical_bytes(stored, floats=event.floats)


_DEFAULTED = frozenset({"id", "time", "actor", "source"})


def json_equal(a: Any, b: Any) -> bool:
    """Equality of two JSON values as JSON means it.

    Numbers are equal when their values are (``1`` and ``1.0``), but a boolean is never a
    number, and objects compare by their members whatever their order.
    """
    if type(a) is bool or type(b) is bool:
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(json_equal(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def same_content(event: NewEvent, stored: dict[str, Any]) -> bool:
    """Whether a retry carries the content of the event already stored under its id.

    Fields the retry sends are compared with the stored ones as JSON values (``json_equal``:
    ``120`` equals ``120.0``, ``1`` differs from ``true``, key order does not matter). Fields
    the server fills in when absent (``time``,
    ``actor``, ``source``) are not compared when the retry omits them; ``subject`` and
    ``outcome`` omitted must be absent from the stored event too, and ``data`` omitted is ``{}``.
    """
    for field in ENVELOPE_FIELDS:
        if field in event.given or field == "data":
            if field not in stored:
                return False
            if not json_equal(stored[field], event.content[field]):
                return False
        elif field not in _DEFAULTED and field in stored:
            return False
    return True

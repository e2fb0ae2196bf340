"""Request bodies of ``POST /v1/events``: one event, a JSON array, or NDJSON, to JSON values."""

from __future__ import annotations

import json
from typing import Any

import orjson

from auditlog.errors import BadRequest, FieldError, InvalidEvent, PayloadTooLarge
from auditlog.model import eventinput
from auditlog.model.event import (
    EventInvalid,
    Limits,
    NewEvent,
    Principal,
    from_input,
    validate_event,
)

MAX_REPORTED_ERRORS = 100


# orjson reads integers from -2**63 to 2**64 - 1 exactly and larger ones as floats, which
# would change what the producer sent. Such literals have at least 19 digits. Looking for 19
# digits in a row with bytes.translate and a substring search is about ten times faster than
# a regular expression, which matters on a 16 MiB batch.
_DIGITS_ONLY = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_LONG_DIGITS = b"0" * 19
MIN_INT = -(2**63)
MAX_INT = 2**64 - 1


def _exact_int(text: str) -> int:
    value = int(text)
    if not MIN_INT <= value <= MAX_INT:
        raise _IntegerTooLarge(text)
    return value


class _IntegerTooLarge(ValueError):
    pass


def _loads(data: bytes, where: str) -> Any:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"{where} is not valid JSON: {exc}") from None
    if _LONG_DIGITS in data.translate(_DIGITS_ONLY):  # rare: read the integer literals again
        try:
            json.loads(data, parse_int=_exact_int)
        except _IntegerTooLarge as exc:
            raise InvalidEvent(
                f"{where} holds the integer {str(exc)[:40]}, beyond the range "
                f"{MIN_INT} to {MAX_INT}; send larger numbers as strings",
                (FieldError("(body)", "integer out of range"),),
            ) from None
    return value


def read_events(
    body: bytes, ndjson: bool, principal: Principal, limits: Limits, now_us: int, tenant: str
) -> tuple[tuple[NewEvent, ...], bool]:
    """The validated events of a ``POST /v1/events`` body and whether it is a batch:
    ``validate_batch(*parse_body(body, ndjson), ...)``, most often in one pass.

    A body is first decoded into ``eventinput`` types, which checks most of each event on
    the way. A body refused there, for whatever reason, is read again the plain way, which
    names every problem; so both ways give the same events, and the same errors.
    """
    if _LONG_DIGITS not in body.translate(_DIGITS_ONLY):  # else: see _loads
        try:
            decoded, batch = _decoded(body, ndjson)
            if not batch or 1 <= len(decoded) <= limits.max_batch_events:
                return tuple(
                    from_input(e, principal, limits, now_us, tenant) for e in decoded
                ), batch
        except (*eventinput.Refused, EventInvalid):
            pass
    values, batch = parse_body(body, ndjson)
    return validate_batch(values, batch, principal, limits, now_us, tenant), batch


def _decoded(body: bytes, ndjson: bool) -> tuple[list[eventinput.EventInput], bool]:
    if ndjson:
        one = eventinput.ONE.decode
        return [one(line) for line in body.split(b"\n") if line.strip()], True
    value = eventinput.ONE_OR_MANY.decode(body)
    if isinstance(value, list):
        return value, True
    return [value], False


def parse_body(body: bytes, ndjson: bool) -> tuple[list[Any], bool]:
    """The events a body carries and whether it is a batch (array or NDJSON)."""
    if ndjson:
        values: list[Any] = []
        for number, line in enumerate(body.split(b"\n"), start=1):
            if line.strip():
                values.append(_loads(line, f"line {number} of the NDJSON body"))
        return values, True
    value = _loads(body, "the request body")
    if isinstance(value, list):
        return value, True
    return [value], False


def validate_batch(
    values: list[Any],
    batch: bool,
    principal: Principal,
    limits: Limits,
    now_us: int,
    tenant: str | None = None,
) -> tuple[NewEvent, ...]:
    """Validate every event; ``InvalidEvent`` (422) or ``PayloadTooLarge`` (413) lists each problem.

    Errors carry the event's index within a batch.
    """
    if batch and not 1 <= len(values) <= limits.max_batch_events:
        raise InvalidEvent(
            f"a batch holds 1-{limits.max_batch_events} events, this one has {len(values)}"
        )
    events: list[NewEvent] = []
    errors: list[FieldError] = []
    too_large = False
    other_problems = False
    for index, value in enumerate(values):
        try:
            events.append(validate_event(value, principal, limits, now_us, tenant))
        except EventInvalid as exc:
            too_large = too_large or exc.too_large
            other_problems = other_problems or not exc.too_large
            for err in exc.errors:
                if len(errors) < MAX_REPORTED_ERRORS:
                    errors.append(FieldError(err.field, err.message, index if batch else None))
    if errors:
        first = errors[0]
        where = f"event {first.index}: " if first.index is not None else ""
        detail = f"{where}{first.field}: {first.message}"
        if len(errors) > 1:
            detail += f" (and {len(errors) - 1} more problems)"
        if too_large and not other_problems:
            raise PayloadTooLarge(detail, tuple(errors))
        raise InvalidEvent(detail, tuple(errors))
    return tuple(events)

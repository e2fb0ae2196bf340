"""Request bodies of POST /v1/events: one event, a JSON array, or NDJSON."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from auditlog.errors import BadRequest, InvalidEvent, PayloadTooLarge
from auditlog.model.batch import MAX_REPORTED_ERRORS, parse_body, validate_batch
from auditlog.model.event import Limits, NewEvent, Principal
from auditlog.model.times import parse_rfc3339

PRINCIPAL = Principal("key:abc", "test")
NOW = parse_rfc3339("2026-11-27T02:27:53Z")


def check(
    values: list[Any], batch: bool = True, limits: Limits | None = None
) -> tuple[NewEvent, ...]:
    return validate_batch(values, batch, PRINCIPAL, limits or Limits(), NOW)


# -- parse_body -----------------------------------------------------------------------------


def test_object_body_is_one_event() -> None:
    assert parse_body(b'{"type": "x"}', ndjson=False) == ([{"type": "x"}], False)


def test_array_body_is_a_batch() -> None:
    assert parse_body(b'[{"type": "a"}, {"type": "b"}]', ndjson=False) == (
        [{"type": "a"}, {"type": "b"}],
        True,
    )
    assert parse_body(b"[]", ndjson=False) == ([], True)


def test_scalar_body_is_one_value_to_be_refused_later() -> None:
    values, batch = parse_body(b'"x"', ndjson=False)
    assert (values, batch) == (["x"], False)
    with pytest.raises(InvalidEvent):
        check(values, batch)


@pytest.mark.parametrize(
    "body", [b"", b"{", b'{"type": "x"} {"type": "y"}', b"\xff", b"nope", b"[1,]"]
)
def test_bad_json_body(body: bytes) -> None:
    with pytest.raises(BadRequest) as info:
        parse_body(body, ndjson=False)
    assert "request body" in info.value.detail


def test_ndjson_lines_are_a_batch() -> None:
    body = b'{"type": "a"}\n{"type": "b"}\n{"type": "c"}'
    assert parse_body(body, ndjson=True) == ([{"type": "a"}, {"type": "b"}, {"type": "c"}], True)


def test_ndjson_skips_blank_lines_and_takes_crlf() -> None:
    body = b'\n{"type": "a"}\r\n   \n\t\r\n{"type": "b"}\n\n'
    assert parse_body(body, ndjson=True) == ([{"type": "a"}, {"type": "b"}], True)


def test_ndjson_single_line_is_still_a_batch() -> None:
    assert parse_body(b'{"type": "a"}\n', ndjson=True) == ([{"type": "a"}], True)


def test_empty_ndjson_is_an_empty_batch() -> None:
    values, batch = parse_body(b"\n\n", ndjson=True)
    assert (values, batch) == ([], True)
    with pytest.raises(InvalidEvent):
        check(values, batch)


def test_ndjson_bad_line_is_reported_by_number() -> None:
    body = b'{"type": "a"}\n\n{"type": "b"\n{"type": "c"}'
    with pytest.raises(BadRequest) as info:
        parse_body(body, ndjson=True)
    assert "line 3" in info.value.detail


def test_ndjson_line_holding_an_array_is_one_bad_value() -> None:
    values, batch = parse_body(b'[{"type": "a"}]\n{"type": "b"}', ndjson=True)
    assert values == [[{"type": "a"}], {"type": "b"}]
    with pytest.raises(InvalidEvent) as info:
        check(values, batch)
    assert [e.index for e in info.value.errors] == [0]


# -- validate_batch -------------------------------------------------------------------------


def test_valid_batch_in_order() -> None:
    events = check([{"type": "a", "id": "1"}, {"type": "b"}, {"type": "c", "id": "3"}])
    assert [e.type for e in events] == ["a", "b", "c"]
    assert events[0].id == "1"
    assert events[2].id == "3"


def test_single_event_errors_have_no_index() -> None:
    with pytest.raises(InvalidEvent) as info:
        check([{"type": "", "extra": 1}], batch=False)
    assert info.value.status == 422
    assert {(e.index, e.field) for e in info.value.errors} == {(None, "type"), (None, "extra")}
    assert info.value.detail.startswith("type: ") or info.value.detail.startswith("extra: ")


def test_batch_errors_carry_indexes() -> None:
    values = [{"type": "ok"}, {"type": ""}, {"type": "ok"}, {"outcome": "meh", "type": "x"}]
    with pytest.raises(InvalidEvent) as info:
        check(values)
    assert [(e.index, e.field) for e in info.value.errors] == [(1, "type"), (3, "outcome")]
    assert info.value.detail.startswith("event 1: type: ")
    assert "1 more" in info.value.detail
    assert [e.as_dict()["index"] for e in info.value.errors] == [1, 3]


def test_batch_size_limits() -> None:
    limits = Limits(max_batch_events=3)
    assert len(check([{"type": "x"}] * 3, limits=limits)) == 3
    with pytest.raises(InvalidEvent) as info:
        check([{"type": "x"}] * 4, limits=limits)
    assert "1-3" in info.value.detail
    assert "4" in info.value.detail


def test_empty_batch() -> None:
    with pytest.raises(InvalidEvent) as info:
        check([])
    assert "0" in info.value.detail


def test_default_batch_limit_is_10000() -> None:
    assert len(check([{"type": "x"}] * 10_000)) == 10_000
    with pytest.raises(InvalidEvent):
        check([{"type": "x"}] * 10_001)


def test_reported_errors_are_capped() -> None:
    with pytest.raises(InvalidEvent) as info:
        check([{"type": ""}] * (MAX_REPORTED_ERRORS + 50))
    assert len(info.value.errors) == MAX_REPORTED_ERRORS
    assert info.value.errors[0].index == 0


def test_too_large_event_is_413() -> None:
    limits = Limits(max_event_bytes=1000)
    big = {"type": "x", "data": {"s": "s" * 2000}}
    with pytest.raises(PayloadTooLarge) as info:
        check([{"type": "ok"}, big], limits=limits)
    assert info.value.status == 413
    assert [e.index for e in info.value.errors] == [1]
    with pytest.raises(PayloadTooLarge):
        check([big], batch=False, limits=limits)


@pytest.mark.parametrize("other", [{"type": ""}, {"type": "x", "time": "limit"}])
def test_too_large_with_other_problems_is_422(other: dict[str, Any]) -> None:
    limits = Limits(max_event_bytes=1000)
    big = {"type": "x", "data": {"s": "s" * 2000}}
    with pytest.raises(InvalidEvent) as info:
        check([big, other], limits=limits)
    assert {e.index for e in info.value.errors} == {0, 1}


def test_batch_body_round_trip() -> None:
    raw = [{"type": "a", "data": {"n": i}} for i in range(5)]
    values, batch = parse_body(orjson.dumps(raw), ndjson=False)
    events = check(values, batch)
    assert [e.content["data"]["n"] for e in events] == list(range(5))
    ndjson = b"\n".join(orjson.dumps(r) for r in raw)
    assert [e.content["data"] for e in check(*parse_body(ndjson, ndjson=True))] == [
        e.content["data"] for e in events
    ]


@pytest.mark.parametrize(
    "literal", ["99999999999999999999999", "-9223372036854775809", "18446744073709551616"]
)
def test_an_integer_beyond_64_bits_is_refused_rather_than_rounded(literal: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        parse_body(b'{"type": "t", "data": {"n": ' + literal.encode() + b"}}", False)
    assert literal[:19] in info.value.detail


def test_integers_at_the_edges_of_the_range_and_long_digit_strings_are_kept_exactly() -> None:
    body = b'{"data": {"a": 18446744073709551615, "b": -9223372036854775808, "s": "123456789012345678901234"}}'
    [value], _ = parse_body(body, False)
    assert value["data"] == {"a": 2**64 - 1, "b": -(2**63), "s": "123456789012345678901234"}

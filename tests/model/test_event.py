"""Event validation (API.md §1), the stored form and the idempotency comparison."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from auditlog.model.canonical import reference_canonical_bytes
from auditlog.model.event import (
    EventInvalid,
    Limits,
    NewEvent,
    Principal,
    json_equal,
    same_content,
    stored_bytes,
    validate_event,
)
from auditlog.model.ids import is_event_id
from auditlog.model.times import format_us, parse_rfc3339

PRINCIPAL = Principal("key:abc123", "billing-service")
NOW = parse_rfc3339("2026-11-27T02:27:53.123456Z")
LATER = NOW + 3_600_000_000


def valid(raw: Any, limits: Limits | None = None, now: int = NOW) -> NewEvent:
    return validate_event(raw, PRINCIPAL, limits or Limits(), now)


def problems(raw: Any, limits: Limits | None = None) -> dict[str, str]:
    """Field name -> message of every problem validation finds."""
    with pytest.raises(EventInvalid) as info:
        valid(raw, limits)
    assert info.value.errors, "EventInvalid must say what is wrong"
    return {e.field: e.message for e in info.value.errors}


def nested(depth: int, container: str = "object") -> Any:
    """A value of ``depth`` nested containers (1 is an empty one)."""
    value: Any = {} if container == "object" else []
    for _ in range(depth - 1):
        value = {"a": value} if container == "object" else [value]
    return value


def stored(event: NewEvent, seq: int = 0) -> dict[str, Any]:
    result: dict[str, Any] = orjson.loads(stored_bytes(event, "acme", seq, format_us(LATER)))
    return result


# -- defaults -------------------------------------------------------------------------------


def test_minimal_event_gets_every_default() -> None:
    event = valid({"type": "account.created"})
    assert event.content == {
        "id": event.id,
        "type": "account.created",
        "time": "2026-11-27T02:27:53.123456Z",
        "actor": {"id": "key:abc123", "type": "credential"},
        "source": "billing-service",
        "data": {},
    }
    assert event.type == "account.created"
    assert event.time_us == NOW
    assert event.given == frozenset({"type"})


def test_generated_id_is_a_ulid_not_before_the_receipt_time() -> None:
    event = valid({"type": "x"})
    assert len(event.id) == 26
    assert is_event_id(event.id)
    crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    ms = 0
    for ch in event.id[:10]:
        ms = ms * 32 + crockford.index(ch)
    assert ms >= NOW // 1000


def test_generated_ids_differ() -> None:
    assert len({valid({"type": "x"}).id for _ in range(100)}) == 100


def test_full_event_is_normalised() -> None:
    event = valid(
        {
            "id": "inv-42",
            "type": "invoice.billed",
            "time": "2026-11-27T03:00:00+01:00",
            "actor": "alice",
            "subject": {"id": "invoice-42", "type": "invoice", "name": "Invoice #42"},
            "source": "billing",
            "outcome": "success",
            "data": {"amount": 100, "currency": "EUR"},
        }
    )
    assert event.id == "inv-42"
    assert event.time_us == parse_rfc3339("2026-11-27T02:00:00Z")
    assert event.content == {
        "id": "inv-42",
        "type": "invoice.billed",
        "time": "2026-11-27T02:00:00.000000Z",
        "actor": {"id": "alice"},
        "subject": {"id": "invoice-42", "type": "invoice", "name": "Invoice #42"},
        "source": "billing",
        "outcome": "success",
        "data": {"amount": 100, "currency": "EUR"},
    }
    assert event.given == frozenset(
        {"id", "type", "time", "actor", "subject", "source", "outcome", "data"}
    )


def test_subject_string_is_short_for_an_id() -> None:
    assert valid({"type": "x", "subject": "acct-1"}).content["subject"] == {"id": "acct-1"}


@pytest.mark.parametrize(
    ("time", "expected"),
    [
        (1_700_000_000, "2023-11-14T22:13:20.000000Z"),
        (1_700_000_000.25, "2023-11-14T22:13:20.250000Z"),
        ("2023-11-14T22:13:20.25Z", "2023-11-14T22:13:20.250000Z"),
        ("2023-11-14T23:13:20.25+01:00", "2023-11-14T22:13:20.250000Z"),
        ("2016-12-31T23:59:60Z", "2016-12-31T23:59:59.999999Z"),
    ],
)
def test_time_forms(time: Any, expected: str) -> None:
    event = valid({"type": "x", "time": time})
    assert event.content["time"] == expected
    assert event.time_us == parse_rfc3339(expected)


def test_party_with_every_subfield() -> None:
    actor = {"id": "u-1", "type": "user", "name": "Ada Lovelace"}
    assert valid({"type": "x", "actor": actor}).content["actor"] == actor


def test_text_may_hold_spaces_and_any_letters() -> None:
    event = valid({"type": "création de compte", "source": "système 東京", "actor": "Zoë"})
    assert event.type == "création de compte"


def test_data_floats_are_noted() -> None:
    assert valid({"type": "x", "data": {"a": [1, {"b": 2.5}]}}).floats
    assert not valid({"type": "x", "data": {"a": [1, {"b": 2}]}}).floats


# -- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [[], "event", 1, None, True, [{"type": "x"}]])
def test_event_must_be_an_object(raw: Any) -> None:
    assert "(event)" in problems(raw)


def test_unknown_top_level_fields_are_refused_by_name() -> None:
    found = problems({"type": "x", "evnt_type": "y", "Data": {}, "user_id": 1})
    assert set(found) == {"evnt_type", "Data", "user_id"}
    assert "data" in found["evnt_type"]


@pytest.mark.parametrize("field", ["tenant", "seq", "received_at"])
def test_server_fields_are_refused(field: str) -> None:
    found = problems({"type": "x", field: "anything"})
    assert set(found) == {field}
    assert "server" in found[field]


@pytest.mark.parametrize(
    "value",
    ["", "x" * 129, "a b", "a/b", "é", "a\n", "a\x00", 5, None, True, ["a"], {"id": "a"}],
)
def test_bad_id(value: Any) -> None:
    found = problems({"type": "x", "id": value})
    assert set(found) == {"id"}
    assert "A-Z a-z 0-9 . _ : -" in found["id"]


def test_longest_id() -> None:
    assert valid({"type": "x", "id": "a" * 128}).id == "a" * 128


def test_type_is_required() -> None:
    assert problems({"data": {}}) == {"type": "is required"}


@pytest.mark.parametrize(
    "value",
    ["", "x" * 201, "a\x00b", "line\nbreak", "tab\t", "\x7f", "c1\x85control", 5, None, ["x"], {}],
)
def test_bad_type(value: Any) -> None:
    assert set(problems({"type": value})) == {"type"}


def test_type_length_bounds() -> None:
    assert valid({"type": "x"}).type == "x"
    assert valid({"type": "é" * 200}).type == "é" * 200


@pytest.mark.parametrize(
    "value",
    [
        "yesterday",
        "2026-02-30T00:00:00Z",
        "2026-11-27T02:27:53",
        "1700000000",
        "",
        True,
        None,
        [],
        {},
        float("nan"),
        10**15,
        "0001-01-01T00:00:00+01:00",
    ],
)
def test_bad_time(value: Any) -> None:
    found = problems({"type": "x", "time": value})
    assert set(found) == {"time"}


@pytest.mark.parametrize("party", ["actor", "subject"])
@pytest.mark.parametrize(
    ("value", "field"),
    [
        (5, ""),
        (None, ""),
        (["alice"], ""),
        (True, ""),
        ("", ".id"),
        ("x" * 201, ".id"),
        ("bad\ncontrol", ".id"),
        ({}, ".id"),
        ({"type": "user"}, ".id"),
        ({"id": 5}, ".id"),
        ({"id": None}, ".id"),
        ({"id": "u", "type": ""}, ".type"),
        ({"id": "u", "type": 1}, ".type"),
        ({"id": "u", "name": "n" * 201}, ".name"),
        ({"id": "u", "email": "a@b.c"}, ".email"),
    ],
)
def test_bad_party(party: str, value: Any, field: str) -> None:
    found = problems({"type": "x", party: value})
    assert party + field in found
    assert all(name.startswith(party) for name in found)


def test_unknown_party_subfield_message_lists_the_known_ones() -> None:
    found = problems({"type": "x", "actor": {"id": "u", "role": "admin"}})
    assert found["actor.role"] == "unknown field; expected id, type, name"


@pytest.mark.parametrize("value", ["", "s" * 201, 7, None, ["a"], {"name": "a"}])
def test_bad_source(value: Any) -> None:
    assert set(problems({"type": "x", "source": value})) == {"source"}


def test_source_length_bounds() -> None:
    assert valid({"type": "x", "source": "s" * 200}).content["source"] == "s" * 200


@pytest.mark.parametrize("value", ["success", "failure", "unknown"])
def test_outcomes(value: str) -> None:
    assert valid({"type": "x", "outcome": value}).content["outcome"] == value


@pytest.mark.parametrize("value", ["ok", "SUCCESS", "Success ", "", None, 1, True, ["success"]])
def test_bad_outcome(value: Any) -> None:
    found = problems({"type": "x", "outcome": value})
    assert set(found) == {"outcome"}
    assert "success, failure, unknown" in found["outcome"]


@pytest.mark.parametrize("value", [[], "x", 1, None, True, [{"a": 1}]])
def test_data_must_be_an_object(value: Any) -> None:
    assert set(problems({"type": "x", "data": value})) == {"data"}


@pytest.mark.parametrize("container", ["object", "array"])
def test_data_nesting_limit(container: str) -> None:
    # data itself is the first level: 32 levels in all are allowed, 33 are not.
    inner = nested(31, container)
    assert valid({"type": "x", "data": {"a": inner}}).content["data"] == {"a": inner}
    found = problems({"type": "x", "data": {"a": nested(32, container)}})
    assert set(found) == {"data"}
    assert "32" in found["data"]


def test_data_nesting_limit_is_configurable() -> None:
    limits = Limits(max_data_depth=3)
    valid({"type": "x", "data": {"a": [{"b": 1}]}}, limits)
    assert set(problems({"type": "x", "data": {"a": [{"b": {}}]}}, limits)) == {"data"}
    assert set(problems({"type": "x", "data": {"a": [[[]]]}}, limits)) == {"data"}


def test_every_problem_is_reported_at_once() -> None:
    found = problems(
        {"id": "bad id", "outcome": "ok", "actor": {"id": 1}, "data": [], "seq": 3, "extra": 1}
    )
    assert set(found) == {"id", "type", "outcome", "actor.id", "data", "seq", "extra"}


def test_error_message_lists_field_and_reason() -> None:
    with pytest.raises(EventInvalid) as info:
        valid({"type": ""})
    assert str(info.value).startswith("type: ")
    assert not info.value.too_large


# -- size -----------------------------------------------------------------------------------


def test_size_limit() -> None:
    limits = Limits(max_event_bytes=2000)
    small = valid({"type": "x", "data": {"note": "n" * 500}}, limits)
    assert small.size <= 2000
    with pytest.raises(EventInvalid) as info:
        valid({"type": "x", "data": {"note": "n" * 3000}}, limits)
    assert info.value.too_large
    assert [e.field for e in info.value.errors] == ["(event)"]
    assert "2000" in info.value.errors[0].message


def test_default_size_limit_is_64_kib() -> None:
    valid({"type": "x", "data": {"note": "n" * 60_000}})
    with pytest.raises(EventInvalid) as info:
        valid({"type": "x", "data": {"note": "n" * 66_000}})
    assert info.value.too_large


def test_size_counts_utf8_bytes() -> None:
    limits = Limits(max_event_bytes=2000)
    valid({"type": "x", "data": {"note": "a" * 900}}, limits)
    with pytest.raises(EventInvalid) as info:
        valid({"type": "x", "data": {"note": "€" * 900}}, limits)  # 3 bytes each
    assert info.value.too_large


def test_size_covers_the_stored_form() -> None:
    event = valid({"type": "x", "data": {"note": "n" * 1000, "f": 0.5}})
    assert (
        len(stored_bytes(event, "tenant-with-a-longish-name", 10**12, format_us(NOW))) <= event.size
    )


def test_invalid_event_is_not_reported_as_too_large() -> None:
    with pytest.raises(EventInvalid) as info:
        valid({"data": {"note": "n" * 70_000}})
    assert not info.value.too_large


# -- stored form ----------------------------------------------------------------------------


def test_stored_bytes_are_canonical_content_plus_server_fields() -> None:
    event = valid({"id": "e1", "type": "x", "subject": "s", "data": {"b": 1.5, "a": "ü"}})
    raw = stored_bytes(event, "acme", 7, format_us(LATER))
    value = orjson.loads(raw)
    assert value == {
        **event.content,
        "tenant": "acme",
        "seq": 7,
        "received_at": format_us(LATER),
    }
    assert raw == reference_canonical_bytes(value)


# -- same_content ---------------------------------------------------------------------------

FULL = {
    "id": "e1",
    "type": "invoice.billed",
    "time": "2026-11-27T02:00:00Z",
    "actor": {"id": "alice", "type": "user"},
    "subject": "inv-1",
    "source": "billing",
    "outcome": "success",
    "data": {"amount": 100, "lines": [{"sku": "a"}, {"sku": "b"}]},
}


def test_identical_retry_has_the_same_content() -> None:
    first = valid(FULL)
    assert same_content(valid(FULL, now=LATER), stored(first))


def test_retry_without_time_matches_whatever_time_was_stored() -> None:
    first = valid({"id": "e1", "type": "x"})
    retry = valid({"id": "e1", "type": "x"}, now=LATER)
    assert retry.content["time"] != first.content["time"]
    assert same_content(retry, stored(first))
    assert same_content(valid({k: v for k, v in FULL.items() if k != "time"}), stored(valid(FULL)))


@pytest.mark.parametrize("field", ["actor", "source"])
def test_retry_without_a_defaulted_field_is_not_compared_on_it(field: str) -> None:
    retry = valid({k: v for k, v in FULL.items() if k != field})
    assert same_content(retry, stored(valid(FULL)))


@pytest.mark.parametrize("field", ["subject", "outcome"])
def test_retry_without_an_optional_field_differs_from_one_that_has_it(field: str) -> None:
    retry = valid({k: v for k, v in FULL.items() if k != field})
    assert not same_content(retry, stored(valid(FULL)))
    # ...and the other way round.
    assert not same_content(valid(FULL), stored(retry))


def test_retry_without_data_means_empty_data() -> None:
    without = {k: v for k, v in FULL.items() if k != "data"}
    assert not same_content(valid(without), stored(valid(FULL)))
    assert same_content(valid(without), stored(valid({**without, "data": {}})))
    assert same_content(valid({**without, "data": {}}), stored(valid(without)))


def test_time_is_compared_as_a_time() -> None:
    seconds = parse_rfc3339("2026-11-27T02:00:00Z") // 1_000_000
    assert same_content(valid({**FULL, "time": seconds}), stored(valid(FULL)))
    assert same_content(
        valid({**FULL, "time": "2026-11-27T03:00:00.000+01:00"}), stored(valid(FULL))
    )
    assert not same_content(valid({**FULL, "time": seconds + 1}), stored(valid(FULL)))


def test_party_string_equals_its_object_form() -> None:
    assert same_content(valid({**FULL, "subject": {"id": "inv-1"}}), stored(valid(FULL)))


def test_data_is_compared_as_a_json_value() -> None:
    reordered = {"lines": [{"sku": "a"}, {"sku": "b"}], "amount": 100}
    assert same_content(valid({**FULL, "data": reordered}), stored(valid(FULL)))


@pytest.mark.parametrize(
    "change",
    [
        {"type": "invoice.paid"},
        {"time": "2026-11-27T02:00:00.000001Z"},
        {"actor": "alice"},
        {"actor": {"id": "alice", "type": "user", "name": "Alice"}},
        {"subject": "inv-2"},
        {"source": "billing2"},
        {"outcome": "failure"},
        {"data": {"amount": 101, "lines": [{"sku": "a"}, {"sku": "b"}]}},
        {"data": {"amount": 100, "lines": [{"sku": "b"}, {"sku": "a"}]}},
        {"data": {"amount": "100", "lines": [{"sku": "a"}, {"sku": "b"}]}},
        {"data": {"amount": 100, "lines": [{"sku": "a"}, {"sku": "b"}], "extra": None}},
    ],
)
def test_any_changed_field_differs(change: dict[str, Any]) -> None:
    assert not same_content(valid({**FULL, **change}), stored(valid(FULL)))


def test_one_and_true_differ() -> None:
    first = valid({"id": "e", "type": "x", "data": {"flag": 1}})
    assert not same_content(valid({"id": "e", "type": "x", "data": {"flag": True}}), stored(first))


def test_floats_survive_the_stored_form() -> None:
    raw = {"id": "e", "type": "x", "data": {"ratio": 0.1, "tiny": 1e-05, "whole": 2.0}}
    assert same_content(valid(raw), stored(valid(raw)))
    assert not same_content(
        valid({**raw, "data": {"ratio": 0.2, "tiny": 1e-05, "whole": 2.0}}), stored(valid(raw))
    )


def test_numbers_are_compared_by_value_as_json_values_are() -> None:
    first = valid({"id": "e", "type": "x", "data": {"amount": 120, "rates": [1, 2.5]}})
    retry = valid({"id": "e", "type": "x", "data": {"amount": 120.0, "rates": [1.0, 2.5]}})
    assert same_content(retry, stored(first))
    assert same_content(first, stored(retry))
    assert not same_content(
        valid({"id": "e", "type": "x", "data": {"amount": 120.5, "rates": [1, 2.5]}}), stored(first)
    )


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        (1, 1.0, True),
        (0, False, False),
        (1, True, False),
        (True, True, True),
        (None, None, True),
        (None, 0, False),
        ("1", 1, False),
        ({"a": 1, "b": [1, {"c": 2}]}, {"b": [1.0, {"c": 2.0}], "a": 1.0}, True),
        ({"a": 1}, {"a": 1, "b": None}, False),
        ([1, 2], [2, 1], False),
        ([1, 2], [1, 2, 3], False),
        ({}, [], False),
        (2**63, float(2**63), True),
        (2**53 + 1, float(2**53), False),
    ],
)
def test_json_equal(a: Any, b: Any, equal: bool) -> None:
    assert json_equal(a, b) is equal
    assert json_equal(b, a) is equal

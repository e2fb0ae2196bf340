"""The one-pass decode of events (``model.eventinput``) against the field-by-field validation.

``read_events`` decodes a body into ``EventInput`` types and falls back to ``parse_body`` +
``validate_batch`` when the decoder refuses it. Whatever the body, the two ways must end
alike: the same events, or the same error with the same messages. Hypothesis draws bodies
near every rule's edge (lengths 0, 1, 200, 201; control characters; wrong types; unknown and
server fields; times out of range; deep data; duplicate keys; batches and NDJSON).
"""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from auditlog.errors import RequestError
from auditlog.model import batch as batch_module
from auditlog.model import eventinput
from auditlog.model.batch import parse_body, read_events, validate_batch
from auditlog.model.event import Limits, NewEvent, Principal, stored_bytes, validate_event
from auditlog.model.times import parse_rfc3339

PRINCIPAL = Principal("key:abc123", "billing-service")
NOW = parse_rfc3339("2026-11-27T02:27:53.123456Z")
LIMITS = Limits(max_event_bytes=2_000, max_batch_events=5, max_data_depth=4)
TENANT = "acme"

texts = st.one_of(
    st.sampled_from(["", "a", "x" * 200, "x" * 201, "é" * 200, "😀" * 201, "a\n", "\n", "a\x7f"]),
    st.text(max_size=8),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=5),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=12,
)
parties = st.one_of(
    texts,
    st.fixed_dictionaries(
        {"id": st.one_of(texts, scalars)},
        optional={"type": texts, "name": texts, "role": texts},
    ),
    json_values,
)
ids = st.one_of(
    st.sampled_from(["a", "A-Z.a_z:0-9", "x" * 128, "x" * 129, "a\n", "a b", "", "ü"]),
    scalars,
)
times = st.one_of(
    st.sampled_from(
        [
            "2026-11-27T02:27:53Z",
            "2026-11-27T02:27:53.1234567+05:30",
            "0001-01-01T00:00:00Z",
            "10000-01-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "yesterday",
            1_700_000_000,
            1_700_000_000.25,
            -62_135_596_801,
            253_402_300_800,
            10**30,
        ]
    ),
    scalars,
)
FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "id": ids,
    "type": texts,
    "time": times,
    "actor": parties,
    "subject": parties,
    "source": texts,
    "outcome": st.one_of(st.sampled_from(["success", "failure", "unknown", "Success"]), scalars),
    "data": st.one_of(json_values, st.dictionaries(texts, json_values, max_size=4)),
    "seq": scalars,
    "extra": scalars,
}
good_texts = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=12
)
good_parties = st.one_of(
    good_texts,
    st.fixed_dictionaries({"id": good_texts}, optional={"type": good_texts, "name": good_texts}),
)
#: Events that are valid but for what the draws of ``FIELDS`` mixed in: most are accepted.
good_events = st.fixed_dictionaries(
    {"type": good_texts},
    optional={
        "id": st.sampled_from(["a", "inv-2026.1:x_y", "x" * 128]),
        "time": st.sampled_from(["2026-11-27T02:27:53.5+01:00", 1_700_000_000, 1.5e9]),
        "actor": good_parties,
        "subject": good_parties,
        "source": good_texts,
        "outcome": st.sampled_from(["success", "failure", "unknown"]),
        "data": st.dictionaries(good_texts, json_values, max_size=4),
    },
)
events = st.one_of(
    good_events,
    st.tuples(good_events, st.fixed_dictionaries({}, optional=FIELDS)).map(
        lambda pair: {**pair[0], **pair[1]}
    ),
    st.fixed_dictionaries(
        {"type": texts}, optional={k: v for k, v in FIELDS.items() if k != "type"}
    ),
    st.fixed_dictionaries({}, optional=FIELDS),
    json_values,
)


def outcome(
    attempt: Any,
) -> tuple[str, Any]:
    """What one way of reading a body ends in, comparable across the two ways."""
    try:
        found, batch = attempt()
    except RequestError as exc:
        return "refused", (type(exc).__name__, str(exc), exc.errors)
    return "read", (batch, [comparable(e) for e in found])


def comparable(event: NewEvent) -> tuple[Any, ...]:
    """A NewEvent without the id the server made (two reads make two different ULIDs)."""
    content = dict(event.content)
    made = "id" not in event.given
    if made:
        del content["id"]
    return (
        None if made else event.id,
        event.type,
        event.time_us,
        orjson.dumps(content, option=orjson.OPT_SORT_KEYS),
        event.given,
        event.floats,
        event.size,
        stored_bytes(event, TENANT, 7, "2026-11-27T02:27:54.000001Z").replace(
            b'"id":"%s"' % event.id.encode() if made else b"", b""
        ),
    )


def both_ways(body: bytes, ndjson: bool) -> tuple[tuple[str, Any], tuple[str, Any]]:
    def plain() -> tuple[tuple[NewEvent, ...], bool]:
        values, batch = parse_body(body, ndjson)
        return validate_batch(values, batch, PRINCIPAL, LIMITS, NOW, TENANT), batch

    fast = outcome(lambda: read_events(body, ndjson, PRINCIPAL, LIMITS, NOW, TENANT))
    return fast, outcome(plain)


def body_of(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(events)
def test_one_event_reads_alike_both_ways(event: Any) -> None:
    fast, plain = both_ways(body_of(event), ndjson=False)
    assert fast == plain


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(events, max_size=7), st.booleans())
def test_batches_and_ndjson_read_alike_both_ways(batch: list[Any], ndjson: bool) -> None:
    body = b"\n".join(body_of(e) for e in batch) + b"\n" if ndjson else body_of(batch)
    fast, plain = both_ways(body, ndjson)
    assert fast == plain


@pytest.mark.parametrize(
    "body",
    [
        b'{"type": "a", "type": "b"}',  # the last of two keys counts, both ways
        b'{"type": "a", "data": {"x": 1, "x": 2.5}}',
        b'{"type": "a", "data": {"n": 123456789012345678901}}',  # beyond 64 bits
        b'{"type": "a", "data": {"n": 1e400}}',
        b'{"type": "a\\ud800"}',
        b'{"type": "a\\n"}',
        b'{"type": "a", "id": "abc\\n"}',
        b'{"type": "a", "actor": "\\u0085"}',
        b'\xef\xbb\xbf{"type": "a"}',
        b'{"type": "a"} x',
        b"[]",
        b'"a"',
        b'[{"type": "a"}, 5]',
        b'{"type": "a", "time": true}',
        b'{"type": "a", "time": 1e300}',
        b'{"type": "a", "data": {"a": {"b": {"c": {"d": {}}}}}}',
        b'{"type": "a", "data": {"t": "' + b"x" * 2_000 + b'"}}',
    ],
)
def test_edge_bodies_read_alike_both_ways(body: bytes) -> None:
    for ndjson in (False, True):
        fast, plain = both_ways(body, ndjson)
        assert fast == plain


def test_a_valid_body_is_read_in_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """The plain way is not even asked for a valid batch: the fast way is really taken."""

    def refuse(*_: Any) -> Any:
        raise AssertionError("the plain way was taken")

    monkeypatch.setattr(batch_module, "parse_body", refuse)
    body = orjson.dumps(
        [
            {
                "id": "inv-1",
                "type": "invoice.billed",
                "time": "2026-11-27T02:27:53Z",
                "actor": {"id": "alice", "type": "user", "name": "Alice"},
                "subject": "inv-1",
                "source": "billing",
                "outcome": "success",
                "data": {"amount": 120.5, "lines": [{"sku": "a"}]},
            },
            {"type": "account.created"},
        ]
    )
    found, batch = read_events(body, False, PRINCIPAL, LIMITS, NOW, TENANT)
    assert batch
    assert [e.type for e in found] == ["invoice.billed", "account.created"]
    assert found[0].content["subject"] == {"id": "inv-1"}
    assert found[0].floats
    assert found[1].content["actor"] == {"id": "key:abc123", "type": "credential"}


# -- the stored bytes made at validation -------------------------------------------------


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    good_events,
    st.text(min_size=1, max_size=6),
    st.integers(0, 2**40),
    st.sampled_from(["2026-11-27T02:27:53.123456Z", "0001-01-01T00:00:00.000000Z"]),
)
def test_the_template_makes_the_stored_bytes_of_the_definition(
    event: dict[str, Any], tenant: str, seq: int, received_at: str
) -> None:
    """Bytes filled into the template made at validation are those of the definition
    (canonical JSON of the content plus the server's fields), floats and all; the size is
    the one measured without a template."""
    try:
        orjson.dumps(event)
    except TypeError:
        assume(False)  # integers beyond 64 bits: a body holding them is refused before this
    made = validate_event(event, PRINCIPAL, Limits(), NOW, tenant)
    plain = validate_event(event, PRINCIPAL, Limits(), NOW)
    assert made.template is not None
    assert plain.template is None
    stored = {**made.content, "tenant": tenant, "seq": seq, "received_at": received_at}
    definition = json.dumps(stored, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert stored_bytes(made, tenant, seq, received_at) == definition.encode()
    # Another tenant's bytes are never read off this one's template.
    other = {**stored, "tenant": tenant + "x"}
    assert (
        stored_bytes(made, tenant + "x", seq, received_at)
        == json.dumps(other, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    )
    plain.content["id"] = made.content["id"]
    assert made.size == len(orjson.dumps(made.content)) + 160


def test_a_data_field_that_spells_the_server_fields_does_not_move_the_cut() -> None:
    event = {"type": "a", "data": {"received_at": "", "seq": 0, "x": '"received_at":"","seq":0,'}}
    made = validate_event(event, PRINCIPAL, Limits(), NOW, "t")
    stored = orjson.loads(stored_bytes(made, "t", 12, "2026-11-27T02:27:53.123456Z"))
    assert stored["seq"] == 12
    assert stored["received_at"] == "2026-11-27T02:27:53.123456Z"
    assert stored["data"] == event["data"]


# -- the schema the OpenAPI document gives is the decoder's ------------------------------

SCHEMAS = eventinput.input_schemas("#/$defs/{name}")


def _ecma_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    """JSON Schema's ``pattern`` as ECMA 262 reads it: ``$`` is the end of the text only
    (Python's also matches before a final newline, which ``jsonschema`` inherits)."""
    if isinstance(instance, str) and not re.search(pattern.replace("$", r"\Z"), instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


EcmaValidator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator, {"pattern": _ecma_pattern}
)


def schema_accepts(value: Any) -> bool:
    schema = {**SCHEMAS["EventInput"], "$defs": SCHEMAS}
    return not list(EcmaValidator(schema).iter_errors(value))


def test_patterns_are_written_as_json_schema_writes_them() -> None:
    text = SCHEMAS["Party"]["properties"]["id"]
    assert text["pattern"] == "^[^\\x00-\\x1f\\x7f-\\x9f]*$"
    assert text["minLength"] == 1
    assert text["maxLength"] == 200
    assert SCHEMAS["EventInput"]["required"] == ["type"]
    assert SCHEMAS["EventInput"]["additionalProperties"] is False


def _beyond_64_bits(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_beyond_64_bits(v) for v in value.values())
    if isinstance(value, list):
        return any(_beyond_64_bits(v) for v in value)
    return type(value) is int and not -(2**63) <= value < 2**64


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(events)
def test_the_schema_allows_what_the_service_takes(event: Any) -> None:
    """Apart from the rules a schema cannot state (a real calendar date, integers within 64
    bits, the depth and size of ``data``), the document allows exactly the events the
    service takes."""
    assume(not isinstance(event, dict) or event.get("time") != "2026-02-30T00:00:00Z")
    assume(not _beyond_64_bits(event))
    try:
        read_events(body_of(event), False, PRINCIPAL, Limits(), NOW, TENANT)
    except RequestError:
        taken = False
    else:
        taken = True
    assert schema_accepts(event) == taken

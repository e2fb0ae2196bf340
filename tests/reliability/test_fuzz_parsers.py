"""Fuzzing the parsers a client reaches first, with Hypothesis: only clean 4xx errors.

Whatever bytes or strings arrive, the body parser and event validation (``parse_body``,
``validate_batch``, ``validate_event``) and the query parser (the query string through
``Request.query_params``, ``parse_query`` and ``cursor.apply``) either succeed or raise an
``auditlog.errors.RequestError`` (a 4xx with a message) — never any other exception, which
would be a 500. ``tests/model/test_query.py`` already feeds ``parse_query`` (name, value)
pairs; here the query string arrives as raw bytes, as a client sends it, cursor included.
"""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from auditlog.errors import FieldError, RequestError
from auditlog.model import cursor
from auditlog.model.batch import parse_body, validate_batch
from auditlog.model.event import ENVELOPE_FIELDS, EventInvalid, Limits, NewEvent, Principal
from auditlog.model.query import parse_query
from auditlog.model.times import parse_rfc3339
from auditlog.server.asgi import Request

PRINCIPAL = Principal("key:abc", "fuzz")
NOW = parse_rfc3339("2026-11-27T02:27:53Z")
#: Small limits, so that generated values reach them; and the defaults.
LIMITS = (Limits(max_event_bytes=1024, max_batch_events=4, max_data_depth=3), Limits())
ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

# -- values shaped like events ------------------------------------------------------------------

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(
        ["", "x" * 300, "a\x00b", "\u2028", "2026-11-27T02:27:53Z", "success", "bob", "9" * 40]
    ),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=8), inner, max_size=4),
    ),
    max_leaves=20,
)
FIELD_NAMES = st.one_of(st.sampled_from(sorted(ENVELOPE_FIELDS)), st.text(max_size=10))
EVENTS = st.one_of(
    st.dictionaries(FIELD_NAMES, JSON, max_size=8),
    st.fixed_dictionaries(
        {"type": st.one_of(st.text(max_size=20), JSON)},
        optional={
            "id": st.one_of(st.text(max_size=20), st.from_regex(ID, fullmatch=True), JSON),
            "time": st.one_of(
                st.text(max_size=30), st.floats(allow_nan=False), st.integers(), JSON
            ),
            "actor": JSON,
            "subject": JSON,
            "source": JSON,
            "outcome": st.one_of(st.sampled_from(["success", "failure", "unknown"]), JSON),
            "data": JSON,
        },
    ),
    JSON,
)


def dumps(value: Any) -> bytes:
    """JSON as a client may send it: integers of any size, non-ASCII unescaped."""
    return json.dumps(value, ensure_ascii=False).encode()


def assert_clean(exc: RequestError) -> None:
    """A 4xx with something to say, and every listed problem well formed."""
    assert 400 <= exc.status < 500
    assert exc.detail
    for error in exc.errors:
        assert isinstance(error, FieldError)
        assert isinstance(error.field, str)  # an unknown field may be named ""
        assert error.message


def assert_valid(event: NewEvent, limits: Limits) -> None:
    assert ID.fullmatch(event.id)
    assert event.size <= limits.max_event_bytes
    assert set(event.content) <= set(ENVELOPE_FIELDS)


def parse_and_validate(body: bytes, ndjson: bool, limits: Limits) -> None:
    try:
        values, batch = parse_body(body, ndjson)
        events = validate_batch(values, batch, PRINCIPAL, limits, NOW)
    except RequestError as exc:
        assert_clean(exc)
    else:
        for event in events:
            assert_valid(event, limits)


@given(st.binary(max_size=300), st.booleans(), st.sampled_from(LIMITS))
@example(b"[" * 10_000, False, LIMITS[1])
@example(b'{"type": "t", "data": {"n": 123456789012345678901234567890}}', False, LIMITS[1])
@example(b'{"type": "t"}\n\xff\n', True, LIMITS[1])
@example(b"\xef\xbb\xbf{}", False, LIMITS[1])
@example(b'{"type": "t", "time": 1.7976931348623157e302}', False, LIMITS[1])  # was a 500
def test_any_bytes_as_a_body_are_events_or_a_clean_4xx(
    body: bytes, ndjson: bool, limits: Limits
) -> None:
    parse_and_validate(body, ndjson, limits)


@given(st.lists(EVENTS, max_size=6), st.sampled_from(["object", "array", "ndjson"]))
def test_any_json_as_a_body_is_events_or_a_clean_4xx(values: list[Any], form: str) -> None:
    if form == "ndjson":
        body, ndjson = b"\n".join(dumps(v) for v in values), True
    else:
        body, ndjson = dumps(values if form == "array" else (values[0] if values else None)), False
    for limits in LIMITS:
        parse_and_validate(body, ndjson, limits)


@given(EVENTS, st.sampled_from(LIMITS))
def test_validate_event_gives_an_event_or_says_why_not(value: Any, limits: Limits) -> None:
    from auditlog.model.event import validate_event

    try:
        event = validate_event(value, PRINCIPAL, limits, NOW)
    except EventInvalid as exc:
        errors = exc.errors
    else:
        assert_valid(event, limits)
        return
    assert errors
    for error in errors:
        assert isinstance(error.field, str)
        assert error.message


# -- query strings ---------------------------------------------------------------------------

QUERY_PARTS = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        [
            "type", "actor", "data.a.b", "q", "limit", "order", "since", "until", "cursor",
            "data.x[gt]", "data.x[in]", "time[exists]", "%", "%zz", "%ff", "%C3%A9", "+", "&",
            "=", "[", "]", "1001", "asc", "2026-11-27T02:27:53Z", "eyJ4Ijox", "WzEsNSwieCJd",
        ]
    ),
)  # fmt: skip
QUERY_STRINGS = st.one_of(
    st.binary(max_size=120),
    st.lists(st.tuples(QUERY_PARTS, QUERY_PARTS), max_size=6).map(
        lambda pairs: "&".join(f"{n}={v}" for n, v in pairs).encode("utf-8", "surrogatepass")
    ),
)


async def _never_called() -> dict[str, Any]:
    raise AssertionError("the body is not read")


@given(QUERY_STRINGS)
@example(b"cursor=" + b"A" * 500)
@example(b"limit=" + b"9" * 5000)
@example(b"q=" + b"%E2%80%A8" * 50)
def test_any_query_string_is_a_query_or_a_clean_400(raw: bytes) -> None:
    request = Request({"type": "http", "query_string": raw, "headers": []}, _never_called)
    try:
        query, cursor_text = parse_query(request.query_params())
        if cursor_text is not None:
            cursor.apply(query, cursor_text)
    except RequestError as exc:
        problem = exc
    else:
        return
    assert_clean(problem)
    assert problem.status == 400

"""Canonical bytes: the fast path must give exactly the bytes of the definition."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditlog.model.canonical import canonical_bytes, has_float, reference_canonical_bytes

# Any Unicode scalar value: UTF-8 cannot hold lone surrogates, so neither can JSON text.
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
CONTROL_TEXT = st.text(st.characters(max_codepoint=0x9F, exclude_categories=["Cs"]), max_size=8)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
    | CONTROL_TEXT
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(TEXT | CONTROL_TEXT, inner, max_size=5)
    ),
    max_leaves=30,
)


@given(JSON)
def test_canonical_bytes_is_the_definition(value: Any) -> None:
    assert canonical_bytes(value) == reference_canonical_bytes(value)


@given(JSON)
def test_canonical_bytes_with_the_float_hint(value: Any) -> None:
    assert canonical_bytes(value, floats=has_float(value)) == reference_canonical_bytes(value)


@given(JSON)
def test_canonical_bytes_read_back_as_the_same_value(value: Any) -> None:
    raw = canonical_bytes(value)
    assert json.loads(raw) == value
    assert canonical_bytes(json.loads(raw)) == raw


def test_reference_is_the_api_definition() -> None:
    value = {"b": [1, {"é": "ü"}], "a": None}
    assert reference_canonical_bytes(value) == json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


def test_keys_are_sorted_at_every_level() -> None:
    value = {"b": 1, "a": {"d": [{"z": 1, "y": 2}], "c": None}, "B": True}
    assert canonical_bytes(value) == b'{"B":true,"a":{"c":null,"d":[{"y":2,"z":1}]},"b":1}'


def test_keys_sort_by_code_point() -> None:
    value = {"é": 1, "z": 2, "Z": 3, "😀": 4, "ﬀ": 5}
    assert canonical_bytes(value) == '{"Z":3,"z":2,"é":1,"ﬀ":5,"😀":4}'.encode()


def test_no_insignificant_whitespace() -> None:
    value = {"a": [1, 2, {"b": "x y"}], "c": {}}
    assert canonical_bytes(value) == b'{"a":[1,2,{"b":"x y"}],"c":{}}'


def test_non_ascii_is_not_escaped() -> None:
    assert canonical_bytes({"name": "Zürich 東京 😀"}) == '{"name":"Zürich 東京 😀"}'.encode()


def test_control_characters_and_quotes_are_escaped() -> None:
    assert canonical_bytes(['\x00\x1f\n\t"\\', "\x7f"]) == b'["\\u0000\\u001f\\n\\t\\"\\\\","\x7f"]'


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.0, b"1.0"),
        (0.00001, b"1e-05"),
        (1e16, b"1e+16"),
        (-0.0, b"-0.0"),
        (0.1, b"0.1"),
        ({"x": [1, 2.5]}, b'{"x":[1,2.5]}'),
    ],
)
def test_floats_are_written_as_python_json_writes_them(value: Any, expected: bytes) -> None:
    assert canonical_bytes(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.5, True),
        (1, False),
        (True, False),
        ("1.5", False),
        (None, False),
        ([1, [2, [3.0]]], True),
        ({"a": {"b": {"c": 0.5}}}, True),
        ({"a": {"b": {"c": 5}}}, False),
        ([], False),
    ],
)
def test_has_float(value: Any, expected: bool) -> None:
    assert has_float(value) is expected


def test_large_integers_stay_exact() -> None:
    value = {"max": 2**63 - 1, "min": -(2**63), "big": 2**53 + 1}
    assert canonical_bytes(value) == (
        b'{"big":9007199254740993,"max":9223372036854775807,"min":-9223372036854775808}'
    )

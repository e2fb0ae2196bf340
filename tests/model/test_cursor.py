"""Cursors: where the next page starts, bound to the query that made them."""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditlog.errors import BadRequest
from auditlog.model import cursor
from auditlog.model.query import Query, parse_query

SEQS = st.integers(min_value=0, max_value=2**63 - 1)


def query(*pairs: tuple[str, str]) -> Query:
    return parse_query(list(pairs))[0]


BASE = query(("type", "invoice.billed"), ("data.amount[gt]", "100"), ("q", "zur*"))


def forged(value: Any) -> str:
    """A cursor-shaped string carrying ``value``."""
    return base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("=")


def refused(q: Query, text: str) -> str:
    with pytest.raises(BadRequest) as info:
        cursor.apply(q, text)
    assert "'cursor'" in info.value.detail
    return info.value.detail


@given(SEQS)
def test_round_trip(seq: int) -> None:
    text = cursor.encode(BASE, seq)
    continued = cursor.apply(BASE, text)
    assert continued.after_seq == seq
    assert dataclasses.replace(continued, after_seq=None) == BASE


def test_cursor_is_url_safe_text() -> None:
    text = cursor.encode(BASE, 2**63 - 1)
    assert text.isascii()
    assert all(ch.isalnum() or ch in "-_" for ch in text)


def test_cursor_continues_from_a_continued_query() -> None:
    first = cursor.apply(BASE, cursor.encode(BASE, 50))
    second = cursor.apply(BASE, cursor.encode(first, 20))
    assert second.after_seq == 20


def test_limit_may_change_between_pages() -> None:
    text = cursor.encode(BASE, 7)
    other_limit = dataclasses.replace(BASE, limit=3)
    assert cursor.apply(other_limit, text).after_seq == 7


@pytest.mark.parametrize(
    "other",
    [
        query(),
        query(("type", "invoice.billed")),
        query(("type", "invoice.billed"), ("data.amount[gt]", "101"), ("q", "zur*")),
        query(("type", "invoice.billed"), ("data.amount[gte]", "100"), ("q", "zur*")),
        query(("type", "invoice.billed"), ("data.amount[gt]", "100"), ("q", "zur")),
        query(("type", "invoice.paid"), ("data.amount[gt]", "100"), ("q", "zur*")),
        dataclasses.replace(BASE, order="asc"),
        dataclasses.replace(BASE, since_us=0),
        dataclasses.replace(BASE, until_us=0),
    ],
)
def test_cursor_is_bound_to_its_query(other: Query) -> None:
    message = refused(other, cursor.encode(BASE, 5))
    assert "different query" in message


@pytest.mark.parametrize(
    "text",
    [
        "",
        "a",
        "abcde",
        "not a cursor",
        "!!!!",
        "====",
        "null",
        "W10",  # []
        "e30",  # {}
        "\x00",
        "\udc80",  # a lone surrogate
        "é" * 8,
    ],
)
def test_garbage_is_refused(text: str) -> None:
    refused(BASE, text)


@pytest.mark.parametrize(
    "value",
    [
        [1, 5],
        [1, 5, BASE.fingerprint(), "extra"],
        [2, 5, BASE.fingerprint()],
        [0, 5, BASE.fingerprint()],
        [1, -1, BASE.fingerprint()],
        [1, 5.0, BASE.fingerprint()],
        [1, "5", BASE.fingerprint()],
        [1, True, BASE.fingerprint()],
        [1, None, BASE.fingerprint()],
        [1, 2**63, BASE.fingerprint()],
        [1, 2**64 - 1, BASE.fingerprint()],
        [1, 5, None],
        [1, 5, 12345],
        {"version": 1, "seq": 5, "fingerprint": BASE.fingerprint()},
        "abc",
        5,
    ],
)
def test_forged_cursors_are_refused(value: Any) -> None:
    refused(BASE, forged(value))


def test_padding_is_optional() -> None:
    text = cursor.encode(BASE, 12345)
    padded = text + "=" * (-len(text) % 4)
    assert cursor.apply(BASE, padded).after_seq == 12345


def attempt(text: str) -> Query | str:
    """The continued query, or the message of the BadRequest."""
    try:
        return cursor.apply(BASE, text)
    except BadRequest as exc:
        return exc.detail


@given(st.text(max_size=80))
def test_arbitrary_text_is_a_cursor_or_bad_request(text: str) -> None:
    result = attempt(text)
    if isinstance(result, str):
        assert "'cursor'" in result
    else:
        assert result.after_seq is not None
        assert 0 <= result.after_seq < 2**63


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)


@given(st.one_of(JSON, st.tuples(st.integers(-2, 3), JSON, JSON).map(list)))
def test_arbitrary_json_is_a_cursor_or_bad_request(value: Any) -> None:
    try:
        text = forged(value)
    except TypeError:  # an integer orjson cannot write
        return
    result = attempt(text)
    assert isinstance(result, str) or result.after_seq == value[1]


@given(st.binary(max_size=60))
def test_arbitrary_bytes_are_a_cursor_or_bad_request(raw: bytes) -> None:
    result = attempt(base64.urlsafe_b64encode(raw).decode())
    assert not isinstance(result, str) or "'cursor'" in result

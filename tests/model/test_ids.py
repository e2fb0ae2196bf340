"""Event ids: generated ULIDs and the rule for producer-given ids."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditlog.model.ids import is_event_id, ulid

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-"


def ulid_ms(value: str) -> int:
    """The millisecond timestamp in the first 10 characters of a ULID."""
    ms = 0
    for ch in value[:10]:
        ms = ms * 32 + CROCKFORD.index(ch)
    return ms


def test_ulid_shape() -> None:
    value = ulid()
    assert len(value) == 26
    assert set(value) <= set(CROCKFORD)
    assert is_event_id(value)


@given(st.integers(min_value=0, max_value=2**48 - 1))
def test_ulid_carries_its_millisecond(ms: int) -> None:
    value = ulid(ms)
    assert len(value) == 26
    assert ulid_ms(value) == ms


@given(
    st.integers(min_value=0, max_value=2**48 - 2),
    st.integers(min_value=1, max_value=10**6),
)
def test_ulids_sort_by_time(ms: int, later: int) -> None:
    later_ms = min(ms + later, 2**48 - 1)
    assert ulid(ms) < ulid(later_ms)


def test_ulids_of_one_millisecond_differ() -> None:
    values = {ulid(1_700_000_000_000) for _ in range(1000)}
    assert len(values) == 1000


@pytest.mark.parametrize(
    "value",
    ["a", "A", "0", ".", "_", ":", "-", "order-42", "urn:x:y.z_1", ID_CHARS, "x" * 128],
)
def test_valid_event_ids(value: str) -> None:
    assert is_event_id(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "x" * 129,
        "a b",
        "a/b",
        "a\\b",
        "a\nb",
        "abc\n",
        "a\x00",
        "é",
        "ｘ",  # full-width x
        "a+b",
        "a#b",
        "a%20",
        "'; DROP TABLE events; --",
    ],
)
def test_invalid_event_ids(value: str) -> None:
    assert not is_event_id(value)


@given(st.text(max_size=140))
def test_event_id_rule(value: str) -> None:
    expected = 1 <= len(value) <= 128 and all(ch in ID_CHARS for ch in value)
    assert is_event_id(value) == expected

"""Event ids: generated ULIDs and the rule for producer-given ids."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditlog.model import ids as ids_module
from auditlog.model.ids import is_event_id, ulid

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-"


def ulid_ms(value: str) -> int:
    """The millisecond timestamp in the first 10 characters of a ULID."""
    ms = 0
    for ch in value[:10]:
        ms = ms * 32 + CROCKFORD.index(ch)
    return ms


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# Only times up to now are passed to ulid(): a generator that keeps its ids increasing may
# carry a later time forward to every id it makes afterwards.
PAST_MS = st.integers(min_value=0, max_value=1_700_000_000_000)


def test_ulid_shape() -> None:
    value = ulid()
    assert len(value) == 26
    assert set(value) <= set(CROCKFORD)
    assert value[0] in "01234567"  # 48 bits of time: the first character holds 3 of them
    assert is_event_id(value)


def test_ulid_carries_the_current_time() -> None:
    before = now_ms()
    assert ulid_ms(ulid()) >= before


@given(PAST_MS)
def test_ulid_carries_at_least_the_time_given(ms: int) -> None:
    value = ulid(ms)
    assert len(value) == 26
    assert ulid_ms(value) >= ms


@given(PAST_MS, st.integers(min_value=1, max_value=10**6))
def test_ulids_sort_by_time(ms: int, later: int) -> None:
    assert ulid(ms) < ulid(ms + later)


def test_ulids_of_one_millisecond_differ() -> None:
    values = [ulid(1_600_000_000_000) for _ in range(1000)]
    assert len(set(values)) == 1000


def test_ulids_made_one_after_another_increase() -> None:
    values = [ulid() for _ in range(1000)]
    assert values == sorted(values)
    assert len(set(values)) == 1000


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
        "\uff58",  # full-width x
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


class _Bits:
    """A stand-in for the generator's random source that gives chosen bits."""

    def __init__(self, value: int) -> None:
        self.value = value

    def getrandbits(self, n: int) -> int:
        assert n == 80
        return self.value


def reference_ulid(ms: int, rand: int) -> str:
    """The ULID spec's encoding written plainly: 128 bits, 26 Crockford digits, most first."""
    value = (ms << 80) | rand
    return "".join(CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(26)))


def test_the_spec_example_decodes_to_its_time() -> None:
    assert ulid_ms("01ARZ3NDEKTSV4RRFFQ69G5FAV") == 1469922850259
    assert reference_ulid(1469922850259, 0).startswith("01ARZ3NDEK")


@given(st.integers(0, 2**48 - 1), st.integers(0, 2**80 - 1))
def test_ulids_are_spelled_as_the_spec_spells_them(ms: int, rand: int) -> None:
    generator = ids_module._Monotonic()
    generator._random = _Bits(rand)  # type: ignore[assignment]
    assert generator.next(ms) == reference_ulid(ms, rand)

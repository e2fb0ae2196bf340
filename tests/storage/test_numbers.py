"""The numbers index: path ids and stored numbers, the fast walk against the plain one, and the
property that makes range lookups correct: a range built from a query's conditions finds every
event that the conditions match (``model.fields``), wherever the event holds no string at the
path."""

from __future__ import annotations

import math
import sys
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from auditlog.model.fields import Op, Path, Value, condition_matches, scalar_matches
from auditlog.model.query import Condition
from auditlog.storage.numbers import (
    EventNumbers,
    Number,
    event_numbers,
    flags_of,
    number_range,
    path_id,
    range_path,
    reference_event_numbers,
    stored,
)

LARGEST = sys.float_info.max
AMOUNT: Path = ("data", "amount")
RANGE_OPS: tuple[Op, ...] = ("gt", "gte", "lt", "lte")
HUGE = 10**400  # beyond the float range: float(HUGE) raises OverflowError


def cond(path: Path, op: Op, raw: str) -> Condition:
    return Condition(path, op, (Value.of(raw),))


def typed(numbers: set[tuple[int, Number]]) -> set[tuple[int, str, Number]]:
    """The numbers with their types, so that 1 and 1.0 (equal in a set) tell apart."""
    return {(pid, type(n).__name__, n) for pid, n in numbers}


# -- path ids and stored numbers ------------------------------------------------------------


def test_path_id_is_a_signed_64_bit_int_fixed_across_processes() -> None:
    pid = path_id(AMOUNT)
    assert type(pid) is int
    assert -(2**63) <= pid <= 2**63 - 1
    assert path_id(("data", "amount")) == pid
    # Ids are stored in the index: the same path must have the same id in every process and
    # version (not Python's salted hash), or an upgrade would lose every indexed number.
    assert pid == 828594658123950770


def test_path_ids_tell_nesting_from_dots_in_keys() -> None:
    nested = path_id(("data", "a", "b"))
    assert path_id(("data", "a.b")) != nested
    assert path_id(("data", "ab")) != nested
    assert path_id(("data", "a1:b")) != nested
    assert path_id(("data.a", "b")) != nested
    assert path_id(("data",)) != path_id(("data", ""))


@given(
    st.lists(st.text(max_size=4), min_size=1, max_size=4),
    st.lists(st.text(max_size=4), min_size=1, max_size=4),
)
def test_different_paths_have_different_ids(p: list[str], q: list[str]) -> None:
    if p != q:
        assert path_id(tuple(p)) != path_id(tuple(q))


@pytest.mark.parametrize("n", [0, 1, -1, 2**53 + 1, 2**63 - 1, -(2**63), 10**18 + 1])
def test_stored_keeps_64_bit_ints_exactly(n: int) -> None:
    kept = stored(n)
    assert type(kept) is int
    assert kept == n


@pytest.mark.parametrize("n", [2**63, -(2**63) - 1, 2**64 + 1, 10**30, -(10**300)])
def test_stored_turns_larger_ints_into_the_nearest_float(n: int) -> None:
    kept = stored(n)
    assert type(kept) is float
    assert kept == float(n)


@pytest.mark.parametrize(
    ("n", "expected"), [(HUGE, LARGEST), (-HUGE, -LARGEST), (2**1024, LARGEST)]
)
def test_stored_clamps_ints_beyond_the_float_range(n: int, expected: float) -> None:
    kept = stored(n)
    assert type(kept) is float
    assert kept == expected


@pytest.mark.parametrize("n", [0.0, -0.0, 0.1, -2.5, 1e300, LARGEST, -LARGEST, 5e-324, 2.0**70])
def test_stored_keeps_floats(n: float) -> None:
    kept = stored(n)
    assert type(kept) is float
    assert kept == n
    assert math.copysign(1.0, kept) == math.copysign(1.0, n)


any_number = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([2**53 + 1, 2**63 - 1, 2**63, -(2**63) - 1, HUGE, -HUGE]),
)


@given(any_number, any_number)
def test_stored_keeps_order(a: int | float, b: int | float) -> None:
    if a <= b:
        assert stored(a) <= stored(b)
    if a == b:
        assert stored(a) == stored(b)


# -- event_numbers ----------------------------------------------------------------------------

keys = st.sampled_from(
    ["id", "time", "seq", "tenant", "received_at", "type", "actor", "data", "a", "a.b", "1:a", ""]
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1, HUGE, -HUGE, 0, -0.0]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=4),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=20,
)
contents = st.dictionaries(keys, json_values, max_size=6)


@given(contents)
def test_event_numbers_match_the_reference_walk(content: dict[str, Any]) -> None:
    fast = event_numbers(content)
    plain = reference_event_numbers(content)
    assert typed(fast.numbers) == typed(plain.numbers)
    assert fast.string_paths == plain.string_paths
    assert flags_of([fast]) == flags_of([plain])


def test_event_numbers_of_a_known_event() -> None:
    content: dict[str, Any] = {
        "id": 7,
        "time": 1.5,
        "seq": 3,
        "tenant": "acme",
        "received_at": "2026-01-01T00:00:00Z",
        "type": "login",
        "data": {
            "ok": True,
            "off": False,
            "none": None,
            "amount": [1, [2.5, [3, True]], {"x": 4}],
            "name": "x",
            "big": HUGE,
        },
    }
    expected = EventNumbers(
        numbers={
            (path_id(AMOUNT), 1),
            (path_id(AMOUNT), 2.5),
            (path_id(AMOUNT), 3),
            (path_id(("data", "amount", "x")), 4),
            (path_id(("data", "big")), LARGEST),
        },
        string_paths={path_id(("type",)), path_id(("data", "name"))},
    )
    for walk in (event_numbers, reference_event_numbers):
        found = walk(content)
        assert typed(found.numbers) == typed(expected.numbers), walk.__name__
        assert found.string_paths == expected.string_paths, walk.__name__


def test_booleans_are_not_numbers() -> None:
    found = event_numbers({"data": {"a": True, "b": [False, True]}})
    assert found == EventNumbers(set(), set())
    assert flags_of([found]) == set()


def test_flags_mark_strings_and_several_numbers_at_a_path() -> None:
    content = {
        "type": "t",
        "data": {
            "amount": [1, 2],
            "one": 3,
            "nested": [[1], [[2.5]]],
            "objects": [{"n": 1}, {"n": 2}],
            "mixed": [1, "x"],
            "none": [None, True, 4],
        },
    }
    assert flags_of([event_numbers(content)]) == {
        (path_id(("type",)), "s"),
        (path_id(AMOUNT), "m"),
        (path_id(("data", "nested")), "m"),
        (path_id(("data", "objects", "n")), "m"),
        (path_id(("data", "mixed")), "s"),
    }


# -- range_path and number_range -----------------------------------------------------------


@pytest.mark.parametrize("single", [True, False])
def test_no_range_without_an_eligible_condition(single: bool) -> None:
    for conditions in (
        (),
        (cond(AMOUNT, "gt", "abc"), cond(AMOUNT, "lte", "1x")),
        tuple(cond(AMOUNT, op, "5") for op in ("eq", "ne", "in", "prefix")),
        (Condition(AMOUNT, "exists", (Value("true", None),)),),
    ):
        assert range_path(conditions) is None
        assert number_range(conditions, single) is None


def test_an_id_equality_leaves_the_numbers_index_out() -> None:
    # Its own index finds the one or few events an id equality can match.
    for op in ("eq", "in"):
        assert range_path((cond(("id",), op, "e1"), cond(AMOUNT, "gt", "5"))) is None
    assert range_path((cond(("id",), "ne", "e1"), cond(AMOUNT, "gt", "5"))) == AMOUNT


@pytest.mark.parametrize("single", [True, False])
@pytest.mark.parametrize("root", ["time", "seq", "id", "received_at", "tenant"])
def test_ranges_ignore_unindexed_roots(root: str, single: bool) -> None:
    assert range_path((cond((root,), "gt", "5"),)) is None
    assert number_range((cond((root,), "gt", "5"),), single) is None
    conditions = (cond((root,), "gt", "5"), cond(AMOUNT, "lt", "7"))
    assert range_path(conditions) == AMOUNT
    found = number_range(conditions, single)
    assert found is not None
    assert found.path == AMOUNT
    assert found.low == -math.inf
    assert 7 <= found.high < 8


def test_a_single_valued_range_merges_the_bounds_on_its_path() -> None:
    found = number_range((cond(AMOUNT, "gte", "10"), cond(AMOUNT, "lt", "20")), single=True)
    assert found is not None
    assert found.path == AMOUNT
    assert found.path_id == path_id(AMOUNT)
    assert 9 < found.low <= 10
    assert 20 <= found.high < 21


def test_a_single_valued_range_keeps_the_tightest_bound_on_each_side() -> None:
    conditions = (
        cond(AMOUNT, "gt", "5"),
        cond(AMOUNT, "lte", "30"),
        cond(AMOUNT, "gte", "10"),
        cond(AMOUNT, "lt", "20"),
        cond(AMOUNT, "gt", "1"),
        cond(AMOUNT, "lt", "25"),
    )
    found = number_range(conditions, single=True)
    assert found is not None
    assert 9 < found.low <= 10
    assert 20 <= found.high < 21


def test_a_multi_valued_range_is_bounded_by_its_first_condition_alone() -> None:
    # Where an event may hold several numbers at the path, each condition may hold through a
    # different one: only one bound is safe.
    found = number_range((cond(AMOUNT, "gte", "10"), cond(AMOUNT, "lt", "20")), single=False)
    assert found is not None
    assert found.path == AMOUNT
    assert 9 < found.low <= 10
    assert found.high == math.inf
    found = number_range((cond(AMOUNT, "lt", "20"), cond(AMOUNT, "gte", "10")), single=False)
    assert found is not None
    assert found.low == -math.inf
    assert 20 <= found.high < 21


@pytest.mark.parametrize("single", [True, False])
def test_a_range_is_open_on_a_side_without_a_bound(single: bool) -> None:
    above = number_range((cond(AMOUNT, "gt", "5"),), single)
    below = number_range((cond(AMOUNT, "lte", "-0.5"),), single)
    assert above is not None
    assert below is not None
    assert 4 < above.low <= 5
    assert above.high == math.inf
    assert below.low == -math.inf
    assert -0.5 <= below.high < 0


@pytest.mark.parametrize("single", [True, False])
def test_a_range_takes_the_first_eligible_path_only(single: bool) -> None:
    other: Path = ("data", "other")
    conditions = (
        cond(("time",), "gt", "1"),
        cond(other, "eq", "3"),
        cond(other, "gt", "abc"),
        cond(AMOUNT, "gt", "100"),
        cond(other, "lt", "1"),
        cond(AMOUNT, "lt", "abc"),
        cond(other, "gt", "1000"),
    )
    assert range_path(conditions) == AMOUNT
    found = number_range(conditions, single)
    assert found is not None
    assert found.path == AMOUNT
    assert found.path_id == path_id(AMOUNT)
    assert 99 < found.low <= 100
    assert found.high == math.inf


def test_range_bounds_are_outside_values_that_round() -> None:
    # float() rounds 2**53 + 3 up and 2**53 + 1 down (ties to even); the ints themselves, which
    # are stored exactly, must still be inside the bounds.
    up, down = 2**53 + 3, 2**53 + 1
    assert float(up) > up
    assert float(down) < down
    found = number_range((cond(AMOUNT, "gte", str(up)),), single=True)
    assert found is not None
    assert found.low <= up
    found = number_range((cond(AMOUNT, "lte", str(down)),), single=True)
    assert found is not None
    assert found.high >= down
    found = number_range((cond(AMOUNT, "gt", "0.1"), cond(AMOUNT, "lt", "0.1")), single=True)
    assert found is not None
    assert found.low <= 0.1 <= found.high


@pytest.mark.parametrize(
    ("op", "raw", "inside"),
    [
        ("gt", str(10**399), LARGEST),
        ("gte", str(-HUGE), -LARGEST),
        ("lt", str(-(10**399)), -LARGEST),
        ("lte", str(HUGE), LARGEST),
    ],
    ids=["gt 1e399", "gte -1e400", "lt -1e399", "lte 1e400"],
)
def test_a_bound_beyond_the_float_range_holds_the_clamped_numbers(
    op: Op, raw: str, inside: float
) -> None:
    found = number_range((cond(AMOUNT, op, raw),), single=True)
    assert found is not None
    assert found.low <= inside <= found.high


# -- the range finds every match ------------------------------------------------------------

#: Ints where storing or float() changes a number: 2**53 (float spacing 2), the int64 ends,
#: the largest float and where float() starts to overflow.
EDGES = [2**53, 2**63, -(2**63), int(LARGEST), 2**1024 - 2**970, 10**399]
number_raws = st.one_of(
    st.integers(min_value=-1000, max_value=1000).map(str),
    st.integers().map(str),
    # odd ints past 2**53 and within 64 bits: stored exactly, rounded by float() either way
    st.builds(
        lambda n, sign: str(sign * (n | 1)),
        st.integers(min_value=2**53, max_value=2**63 - 1),
        st.sampled_from([1, -1]),
    ),
    st.builds(
        lambda edge, sign, step: str(sign * edge + step),
        st.sampled_from(EDGES),
        st.sampled_from([1, -1]),
        st.integers(min_value=-3, max_value=3),
    ),
    st.integers(min_value=-(10**400), max_value=10**400).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(
        [
            *("1e3", "1E3", "-0", "0", "-0.0", "0.1", "-0.1", "007", "1.0", "1e-400", "5e-324"),
            *("1e308", "-1e308", repr(LARGEST), repr(-LARGEST), "9007199254740993.0"),
        ]
    ),
)
range_conditions = st.lists(
    st.builds(cond, st.just(AMOUNT), st.sampled_from(RANGE_OPS), number_raws),
    min_size=1,
    max_size=3,
).map(tuple)


def near(n: int | float) -> list[int | float]:
    """Numbers at and around a query number, as ints and as floats."""
    out: list[int | float] = [n]
    if isinstance(n, int):
        out += [n - 2, n - 1, n + 1, n + 2]
        try:
            f = float(n)
        except OverflowError:
            pass
        else:
            out += [f, math.nextafter(f, math.inf), math.nextafter(f, -math.inf)]
    else:
        out += [math.nextafter(n, math.inf), math.nextafter(n, -math.inf)]
        out += [int(n) - 1, int(n), int(n) + 1]
    return [x for x in out if not isinstance(x, float) or math.isfinite(x)]


@st.composite
def range_cases(draw: st.DrawFn) -> tuple[dict[str, Any], tuple[Condition, ...]]:
    """Range conditions on ``data.amount`` and an event with numbers near their bounds there."""
    conditions = draw(range_conditions)
    nearby = [x for c in conditions for x in near(c.values[0].number or 0)]
    leaf = st.one_of(
        st.sampled_from(nearby),
        st.sampled_from(nearby),
        any_number,
        st.sampled_from([2**53 + 1, 2**63, -(2**63) - 1, HUGE, -HUGE, LARGEST, -LARGEST]),
        st.none(),
        st.booleans(),
        st.just({"other": 1}),
    )
    amount = st.one_of(
        st.sampled_from(nearby),
        st.recursive(leaf, lambda inner: st.lists(inner, max_size=4), max_leaves=6),
    )
    data = st.one_of(
        st.fixed_dictionaries({"amount": amount}),
        # an array of objects: data.amount reaches the amount of each
        st.lists(st.fixed_dictionaries({"amount": amount}), max_size=3),
        st.fixed_dictionaries({"amount": amount, "note": st.text(max_size=2)}),
    )
    content = {"type": "t", "data": draw(data)}
    return content, conditions


@given(st.sampled_from(RANGE_OPS), number_raws, st.data())
def test_one_bound_holds_every_stored_number_it_admits(
    op: Op, raw: str, data: st.DataObject
) -> None:
    value = Value.of(raw)
    assert value.number is not None
    n = data.draw(st.sampled_from(near(value.number)) | any_number)
    if scalar_matches(op, n, value):
        for single in (True, False):
            found = number_range((Condition(AMOUNT, op, (value,)),), single)
            assert found is not None
            assert found.low <= stored(n) <= found.high


def finds(content: dict[str, Any], conditions: tuple[Condition, ...], single: bool) -> bool | None:
    """Whether the range of ``conditions`` finds ``content``, or None if it need not: the
    event holds a string at the path, or the conditions do not match it."""
    held = event_numbers(content)
    if path_id(AMOUNT) in held.string_paths:
        return None
    if not all(condition_matches(content, c.path, c.op, c.values) for c in conditions):
        return None
    assert range_path(conditions) == AMOUNT
    found = number_range(conditions, single)
    assert found is not None
    assert found.path == AMOUNT
    assert found.path_id == path_id(AMOUNT)
    return any(pid == found.path_id and found.low <= n <= found.high for pid, n in held.numbers)


@settings(max_examples=300)
@given(range_cases())
@example(({"data": {"amount": 2**53 + 1}}, (cond(AMOUNT, "gte", str(2**53 + 1)),)))
@example(({"data": {"amount": 2**53 + 1}}, (cond(AMOUNT, "lte", str(2**53 + 1)),)))
@example(({"data": {"amount": 2**53 + 3}}, (cond(AMOUNT, "gte", str(2**53 + 3)),)))
@example(({"data": {"amount": float(2**63)}}, (cond(AMOUNT, "gte", str(2**63 - 1)),)))
@example(({"data": {"amount": [2**63, 1.0]}}, (cond(AMOUNT, "gt", str(2**63 - 1)),)))
@example(({"data": {"amount": 2**63 - 1}}, (cond(AMOUNT, "lt", str(2**63)),)))
@example(({"data": {"amount": [2**63, 2**63 + 1]}}, (cond(AMOUNT, "gt", str(2**63)),)))
@example(({"data": {"amount": 1}}, (cond(AMOUNT, "gte", "1.0"), cond(AMOUNT, "lte", "1"))))
@example(({"data": {"amount": -0.0}}, (cond(AMOUNT, "gte", "0"), cond(AMOUNT, "lte", "-0"))))
@example(({"data": {"amount": 1000}}, (cond(AMOUNT, "gte", "1e3"), cond(AMOUNT, "lt", "1e4"))))
@example(({"data": {"amount": LARGEST}}, (cond(AMOUNT, "gte", "1e308"),)))
@example(({"data": {"amount": HUGE}}, (cond(AMOUNT, "gte", repr(LARGEST)),)))
@example(({"data": {"amount": HUGE}}, (cond(AMOUNT, "gt", str(10**399)),)))
@example(({"data": {"amount": HUGE}}, (cond(AMOUNT, "gte", str(HUGE)),)))
@example(({"data": {"amount": -HUGE}}, (cond(AMOUNT, "lt", str(-(10**399))),)))
@example(({"data": {"amount": -HUGE}}, (cond(AMOUNT, "lt", "-1e308"),)))
@example(({"data": [{"amount": 0.1}, {"amount": [[5]]}]}, (cond(AMOUNT, "gt", "0.1"),)))
@example(({"data": {"amount": [5, 100]}}, (cond(AMOUNT, "gt", "50"), cond(AMOUNT, "lt", "10"))))
@example(
    ({"data": [{"amount": 5}, {"amount": 9}]}, (cond(AMOUNT, "gt", "8"), cond(AMOUNT, "lt", "6")))
)
def test_a_range_finds_every_event_its_conditions_match(
    case: tuple[dict[str, Any], tuple[Condition, ...]],
) -> None:
    content, conditions = case
    # Where some event holds several numbers at the path the store asks for single=False;
    # where none does, for single=True. Either range must find this event when it must.
    assert finds(content, conditions, single=False) is not False
    if (path_id(AMOUNT), "m") not in flags_of([event_numbers(content)]):
        assert finds(content, conditions, single=True) is not False


def test_the_range_property_is_not_vacuous() -> None:
    # The property above must reach its assertion: an event with a string at the path, or one
    # the conditions do not match, would make it hold trivially.
    assert finds({"data": {"amount": [3, 50]}}, (cond(AMOUNT, "gt", "10"),), True) is True
    assert finds({"data": {"amount": [3, "x"]}}, (cond(AMOUNT, "gt", "10"),), True) is None
    assert finds({"data": {"amount": 3}}, (cond(AMOUNT, "gt", "10"),), True) is None


def test_conditions_held_by_different_array_elements_need_the_multi_valued_range() -> None:
    content = {"data": {"amount": [5, 100]}}
    conditions = (cond(AMOUNT, "gt", "50"), cond(AMOUNT, "lt", "10"))
    assert all(condition_matches(content, c.path, c.op, c.values) for c in conditions)
    assert (path_id(AMOUNT), "m") in flags_of([event_numbers(content)])
    assert finds(content, conditions, single=False) is True

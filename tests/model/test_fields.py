"""Field paths and what one condition means for one event (API.md §3, "Values")."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditlog.model.fields import (
    OPS,
    Op,
    Value,
    condition_matches,
    leaf_paths,
    nodes_at,
    read_number,
    scalar_matches,
    values_at,
)

V = Value.of


def holds(obj: Any, dotted: str, op: Op, *raws: str) -> bool:
    return condition_matches(obj, tuple(dotted.split(".")), op, tuple(V(r) for r in raws))


# -- reading query values -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "number"),
    [
        ("0", 0),
        ("100", 100),
        ("-5", -5),
        ("007", 7),
        ("1.5", 1.5),
        ("-0.25", -0.25),
        ("1e3", 1000.0),
        ("2.5E-1", 0.25),
        ("9223372036854775807", 2**63 - 1),
        ("123456789012345678901234567890", 123456789012345678901234567890),
    ],
)
def test_values_that_read_as_numbers(raw: str, number: float) -> None:
    found = read_number(raw)
    assert found == number
    assert type(found) is type(number)


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "-",
        "abc",
        "12abc",
        "1.",
        ".5",
        "+5",
        "--5",
        "1e",
        "0x10",
        "1_000",
        " 5",
        "5 ",
        "5\n",
        "\u0661\u0662",  # Arabic-Indic digits
        "-\u0661",
        "1\u0663",
        "\uff11",  # full-width 1
        "nan",
        "NaN",
        "inf",
        "-inf",
        "Infinity",
        "1e999",
        "true",
        "null",
    ],
)
def test_values_that_do_not_read_as_numbers(raw: str) -> None:
    assert read_number(raw) is None


@given(st.integers())
def test_integers_read_as_themselves(n: int) -> None:
    assert read_number(str(n)) == n


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_read_as_themselves(x: float) -> None:
    assert read_number(repr(x)) == x


@given(st.text(max_size=30))
def test_read_number_never_raises(raw: str) -> None:
    number = read_number(raw)
    assert number is None or isinstance(number, int | float)


# -- walking paths --------------------------------------------------------------------------

EVENT: dict[str, Any] = {
    "type": "order.placed",
    "actor": {"id": "alice", "type": "user"},
    "data": {
        "amount": 100,
        "location": {"city": "Seattle", "zip": "98101"},
        "items": [
            {"sku": "A-1", "qty": 2, "tags": ["red", "big"]},
            {"sku": "B-2", "qty": 1, "tags": []},
            {"sku": "C-3"},
        ],
        "matrix": [[1, 2], [3, [4]]],
        "deep": [[{"x": 1}], {"x": 2}, [[{"x": [3]}]]],
        "none": None,
        "empty": {},
        "flags": [True, False],
    },
}


@pytest.mark.parametrize(
    ("dotted", "nodes", "values"),
    [
        ("type", ["order.placed"], ["order.placed"]),
        ("actor.id", ["alice"], ["alice"]),
        ("data.amount", [100], [100]),
        (
            "data.location",
            [{"city": "Seattle", "zip": "98101"}],
            [{"city": "Seattle", "zip": "98101"}],
        ),
        ("data.location.city", ["Seattle"], ["Seattle"]),
        ("data.items.sku", ["A-1", "B-2", "C-3"], ["A-1", "B-2", "C-3"]),
        ("data.items.qty", [2, 1], [2, 1]),
        ("data.items.tags", [["red", "big"], []], ["red", "big"]),
        ("data.matrix", [[[1, 2], [3, [4]]]], [1, 2, 3, 4]),
        ("data.deep.x", [1, 2, [3]], [1, 2, 3]),
        ("data.none", [None], [None]),
        ("data.empty", [{}], [{}]),
        ("data.missing", [], []),
        ("data.amount.x", [], []),
        ("data.location.city.x", [], []),
        ("data.items.missing", [], []),
        ("subject", [], []),
    ],
)
def test_nodes_and_values_at(dotted: str, nodes: list[Any], values: list[Any]) -> None:
    path = tuple(dotted.split("."))
    assert nodes_at(EVENT, path) == nodes
    assert values_at(EVENT, path) == values


def test_paths_do_not_index_arrays() -> None:
    assert nodes_at({"a": ["x", "y"]}, ("a", "0")) == []


# -- one scalar against one value -----------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "field", "raw", "expected"),
    [
        # numbers compare as numbers when the value reads as one
        ("eq", 100, "100", True),
        ("eq", 100, "100.0", True),
        ("eq", 100, "1e2", True),
        ("eq", 100.5, "100.5", True),
        ("eq", 100, "0100", True),
        ("eq", 100, "101", False),
        ("eq", 100, "abc", False),
        ("lt", 100, "150", True),
        ("lt", 1000, "150", False),
        ("lt", 150, "150", False),
        ("lte", 150, "150", True),
        ("gt", 1000, "150", True),
        ("gt", 9, "10", False),
        ("gte", -1.5, "-1.5", True),
        ("gt", 2**63 - 1, "9223372036854775806", True),
        ("gt", 100, "abc", False),
        ("in", 3, "3", True),
        ("prefix", 100, "1", False),
        ("ne", 100, "100", False),
        # strings compare as strings, whatever the value looks like
        ("eq", "100", "100", True),
        ("eq", "100", "100.0", False),
        ("eq", "100", "1e2", False),
        ("gt", "100", "99", False),  # "100" < "99" as strings
        ("lt", "1000", "150", True),  # "1000" < "150" as strings
        ("lt", "abc", "abd", True),
        ("gte", "b", "b", True),
        ("lte", "b", "a", False),
        ("eq", "Seattle", "seattle", False),
        ("prefix", "Seattle", "Sea", True),
        ("prefix", "Seattle", "sea", False),
        ("prefix", "Seattle", "", True),
        ("prefix", "Sea", "Seattle", False),
        ("eq", "", "", True),
        ("eq", "true", "true", True),
        ("eq", "null", "null", True),
        ("gt", "é", "z", True),  # by code point
        # literals match the literals only, and only for equality
        ("eq", True, "true", True),
        ("eq", False, "false", True),
        ("eq", True, "false", False),
        ("eq", True, "1", False),
        ("eq", True, "True", False),
        ("gt", True, "false", False),
        ("gte", True, "true", False),
        ("prefix", True, "t", False),
        ("in", False, "false", True),
        ("eq", None, "null", True),
        ("eq", None, "", False),
        ("eq", None, "None", False),
        ("lte", None, "null", False),
        ("eq", 1, "true", False),
        ("eq", 0, "false", False),
        # objects never compare
        ("eq", {"a": 1}, '{"a":1}', False),
        ("eq", {}, "{}", False),
        ("prefix", {"a": 1}, "", False),
    ],
)
def test_scalar_matches(op: Op, field: Any, raw: str, expected: bool) -> None:
    assert scalar_matches(op, field, V(raw)) is expected


# -- whole conditions -----------------------------------------------------------------------


def test_amount_lt_150_holds_for_100_not_1000() -> None:
    assert holds({"data": {"amount": 100}}, "data.amount", "lt", "150")
    assert not holds({"data": {"amount": 1000}}, "data.amount", "lt", "150")


def test_numeric_string_field_compares_as_a_string() -> None:
    event = {"data": {"code": "100"}}
    assert holds(event, "data.code", "eq", "100")
    assert not holds(event, "data.code", "gt", "99")
    assert holds(event, "data.code", "lt", "99")


def test_array_matches_when_any_element_matches() -> None:
    assert holds(EVENT, "data.items.sku", "eq", "B-2")
    assert holds(EVENT, "data.items.qty", "gt", "1")
    assert not holds(EVENT, "data.items.qty", "gt", "2")
    assert holds(EVENT, "data.items.tags", "eq", "big")
    assert holds(EVENT, "data.matrix", "eq", "4")
    assert holds(EVENT, "data.deep.x", "eq", "3")
    assert holds(EVENT, "data.flags", "eq", "false")
    assert holds(EVENT, "data.items.sku", "prefix", "C")
    # gt on one element, lt on another: each condition is met by some element
    assert holds(EVENT, "data.items.qty", "gt", "1")
    assert holds(EVENT, "data.items.qty", "lt", "2")


def test_in_matches_any_listed_value() -> None:
    assert holds(EVENT, "data.amount", "in", "5", "100")
    assert holds(EVENT, "data.location.city", "in", "Boston", "Seattle")
    assert not holds(EVENT, "data.location.city", "in", "Boston", "Denver")
    assert holds(EVENT, "data.items.sku", "in", "X", "C-3")
    assert holds({"data": {"f": None}}, "data.f", "in", "x", "null")


@pytest.mark.parametrize(
    ("event", "raw", "expected"),
    [
        ({"data": {"city": "Boston"}}, "Seattle", True),
        ({"data": {"city": "Seattle"}}, "Seattle", False),
        ({"data": {}}, "Seattle", False),  # ne needs the field
        ({"data": {"city": None}}, "Seattle", True),
        ({"data": {"city": None}}, "null", False),
        ({"data": {"city": ["Boston", "Denver"]}}, "Seattle", True),
        ({"data": {"city": ["Boston", "Seattle"]}}, "Seattle", False),  # an element equals
        ({"data": {"city": []}}, "Seattle", True),
        ({"data": {"city": {"name": "Seattle"}}}, "Seattle", True),
        ({"data": {"city": 5}}, "5", False),
        ({"data": {"city": 5}}, "5.0", False),
        ({"data": {"city": 5}}, "Seattle", True),
        ({"data": {"city": "5"}}, "5", False),
        ({"data": {"city": True}}, "true", False),
        ({"data": {"city": True}}, "false", True),
        ({"data": [{"city": "Boston"}]}, "Boston", False),
    ],
)
def test_ne_holds_when_the_field_is_present_and_no_value_equals(
    event: dict[str, Any], raw: str, expected: bool
) -> None:
    assert holds(event, "data.city", "ne", raw) is expected


@pytest.mark.parametrize(
    ("event", "present"),
    [
        ({"data": {"city": "Seattle"}}, True),
        ({"data": {"city": None}}, True),
        ({"data": {"city": []}}, True),
        ({"data": {"city": {}}}, True),
        ({"data": {"city": False}}, True),
        ({"data": {"city": ""}}, True),
        ({"data": {"cities": "x"}}, False),
        ({"data": {}}, False),
        ({}, False),
        ({"data": "city"}, False),
        ({"data": [{"city": 1}]}, True),
        ({"data": [{"town": 1}]}, False),
    ],
)
def test_exists(event: dict[str, Any], present: bool) -> None:
    assert holds(event, "data.city", "exists", "true") is present
    assert holds(event, "data.city", "exists", "false") is not present


def test_exists_through_arrays_of_objects() -> None:
    assert holds(EVENT, "data.items.qty", "exists", "true")
    assert holds(EVENT, "data.items.missing", "exists", "false")


def test_prefix_is_for_strings() -> None:
    assert holds(EVENT, "data.location.city", "prefix", "Sea")
    assert not holds(EVENT, "data.location.city", "prefix", "sea")
    assert not holds(EVENT, "data.amount", "prefix", "10")
    assert holds(EVENT, "data.location.zip", "prefix", "981")


def test_a_missing_field_meets_no_comparison() -> None:
    for op in OPS:
        if op != "exists":
            assert not holds(EVENT, "data.nope", op, "1")


# -- leaf_paths agrees with condition_matches -----------------------------------------------

KEYS = st.text(max_size=6)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
    | st.sampled_from(["100", "1e3", "true", "null", "", "-0"])
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=25,
)
OBJECTS = st.dictionaries(KEYS, JSON, max_size=5)


def raw_form(scalar: Any) -> str | None:
    """The query text that must find ``scalar`` by equality, or None for floats."""
    if scalar is None:
        return "null"
    if isinstance(scalar, bool):
        return "true" if scalar else "false"
    if isinstance(scalar, int):
        return str(scalar)
    if isinstance(scalar, str):
        return scalar
    return None


@given(OBJECTS)
def test_every_leaf_path_exists_and_its_scalars_match_by_equality(obj: dict[str, Any]) -> None:
    for path, node in leaf_paths(obj):
        assert condition_matches(obj, path, "exists", (Value("true", None),))
        assert not condition_matches(obj, path, "exists", (Value("false", None),))
        raw = raw_form(node)
        if raw is not None and not isinstance(node, dict | list):
            assert condition_matches(obj, path, "eq", (V(raw),)), (path, node)
            assert condition_matches(obj, path, "in", (V("\x00other"), V(raw))), (path, node)


@given(OBJECTS)
def test_leaf_paths_reach_every_value_at_their_path(obj: dict[str, Any]) -> None:
    # The scalars leaf_paths gives for a path are exactly the scalars values_at finds there.
    by_path: dict[tuple[str, ...], list[Any]] = {}
    for path, node in leaf_paths(obj):
        if not isinstance(node, dict | list):
            by_path.setdefault(path, []).append(node)
    for path, scalars in by_path.items():
        found = [v for v in values_at(obj, path) if not isinstance(v, dict | list)]
        assert sorted(map(repr, found)) == sorted(map(repr, scalars))


def test_leaf_paths_example() -> None:
    obj = {"a": 1, "b": [{"c": "x"}, [2, {"c": None}]], "d": {}}
    expected = [
        (("a",), 1),
        (("b",), [{"c": "x"}, [2, {"c": None}]]),
        (("b", "c"), "x"),
        (("b",), 2),
        (("b", "c"), None),
        (("d",), {}),
    ]
    assert sorted(map(repr, leaf_paths(obj))) == sorted(map(repr, expected))

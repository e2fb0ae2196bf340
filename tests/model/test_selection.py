"""What exports, live streams and log streams read (``auditlog.model.selection``)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditlog.errors import BadRequest, InvalidBody
from auditlog.model.query import parse_query
from auditlog.model.selection import (
    MAX_SEQ,
    filter_object,
    filter_pairs,
    parse_filter,
    parse_selection,
    parse_seq,
)


def test_a_selection_is_the_query_in_ascending_order_with_its_own_parameters() -> None:
    query, own = parse_selection(
        [("type", "a"), ("format", "csv"), ("after_seq", "4"), ("before_seq", "9")],
        ("format", "after_seq", "before_seq"),
    )
    expected, _ = parse_query([("type", "a")])
    assert query.conditions == expected.conditions
    assert (query.order, query.after_seq, query.before_seq) == ("asc", 4, 9)
    assert own == {"format": "csv", "after_seq": "4", "before_seq": "9"}


@pytest.mark.parametrize("name", ["cursor", "limit", "order"])
def test_paging_parameters_are_refused_by_name(name: str) -> None:
    with pytest.raises(BadRequest, match=name):
        parse_selection([(name, "1")], ())


def test_an_own_parameter_given_twice_is_refused() -> None:
    with pytest.raises(BadRequest, match="format"):
        parse_selection([("format", "csv"), ("format", "ndjson")], ("format",))


def test_a_parameter_not_among_its_own_is_a_filter() -> None:
    with pytest.raises(BadRequest, match="format"):
        parse_selection([("format", "csv")], ())


@pytest.mark.parametrize("raw", ["-1", "1.0", "", " 1", "٣", "1e3", str(MAX_SEQ + 1), "9" * 30])
def test_bad_seqs(raw: str) -> None:
    with pytest.raises(BadRequest, match="after_seq"):
        parse_seq("after_seq", raw)


def test_good_seqs() -> None:
    assert parse_seq("s", "0") == 0
    assert parse_seq("s", "007") == 7
    assert parse_seq("s", str(MAX_SEQ)) == MAX_SEQ


def test_filter_objects_as_parameters() -> None:
    pairs = filter_pairs(
        {"type": ["a", "b"], "data.n[gt]": 100, "data.ok": True, "data.x": None, "q": "w"}
    )
    assert pairs == [
        ("type", "a"),
        ("type", "b"),
        ("data.n[gt]", "100"),
        ("data.ok", "true"),
        ("data.x", "null"),
        ("q", "w"),
    ]
    assert filter_pairs(None) == []
    assert filter_pairs({}) == []


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ("type=a", "filter"),
        (["type"], "filter"),
        ({"type": []}, "filter.type"),
        ({"type": {"a": 1}}, "filter.type"),
        ({"type": [["a"]]}, "filter.type"),
        ({"limit": 5}, "filter.limit"),
        ({"after_seq": 5}, "filter.after_seq"),
        ({"data.a[bogus]": 1}, "filter"),
        ({"nope": 1}, "filter"),
    ],
)
def test_bad_filters_are_422_naming_the_field(value: Any, field: str) -> None:
    with pytest.raises(InvalidBody) as caught:
        parse_filter(value)
    assert [e.field for e in caught.value.errors] == [field]


pair_lists = st.lists(
    st.tuples(st.sampled_from(["type", "actor", "data.a", "q"]), st.text(min_size=1)),
    max_size=6,
)


@given(pair_lists)
def test_filter_object_round_trips_parameters(pairs: list[tuple[str, str]]) -> None:
    back = filter_pairs(filter_object(pairs))
    # The object groups a parameter's values; their order within it is kept.
    assert sorted(back) == sorted(pairs)
    for name in {n for n, _ in pairs}:
        assert [v for n, v in back if n == name] == [v for n, v in pairs if n == name]

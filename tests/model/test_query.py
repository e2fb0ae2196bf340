"""Query parameters (API.md §3) to a query syntax tree, and every way they can be wrong."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditlog.errors import BadRequest
from auditlog.model.fields import OPS, Value
from auditlog.model.query import (
    DEFAULT_LIMIT,
    MAX_CONDITIONS,
    MAX_IN_VALUES,
    MAX_LIMIT,
    MAX_TEXT_WORDS,
    MAX_VALUE_CHARS,
    Condition,
    Query,
    TextTerm,
    parse_query,
)
from auditlog.model.times import format_us, parse_rfc3339

V = Value.of


def parse(*pairs: tuple[str, str]) -> Query:
    query, cursor = parse_query(list(pairs))
    assert cursor is None
    return query


def refused(*pairs: tuple[str, str]) -> str:
    """The message of the BadRequest the parameters cause."""
    with pytest.raises(BadRequest) as info:
        parse_query(list(pairs))
    assert info.value.status == 400
    return info.value.detail


def test_no_parameters_is_everything_newest_first() -> None:
    query = parse()
    assert query == Query()
    assert query.order == "desc"
    assert query.limit == DEFAULT_LIMIT == 100
    assert query.conditions == ()
    assert query.text == ()
    assert query.since_us is None
    assert query.until_us is None
    assert query.after_seq is None


@pytest.mark.parametrize("op", [op for op in OPS if op not in ("in", "exists", "eq")])
def test_every_single_valued_operator(op: str) -> None:
    query = parse((f"data.amount[{op}]", "150"))
    assert query.conditions == (Condition(("data", "amount"), op, (Value("150", 150),)),)  # type: ignore[arg-type]


def test_plain_parameter_is_equality() -> None:
    assert parse(("data.location.city", "Seattle")).conditions == (
        Condition(("data", "location", "city"), "eq", (Value("Seattle", None),)),
    )
    assert parse(("data.location.city[eq]", "Seattle")) == parse(("data.location.city", "Seattle"))


def test_in_takes_a_comma_separated_list() -> None:
    assert parse(("data.code[in]", "a,1,,true")).conditions == (
        Condition(("data", "code"), "in", (V("a"), V("1"), V(""), V("true"))),
    )


def test_single_in_value_is_equality() -> None:
    assert parse(("data.code[in]", "a")).conditions == (
        Condition(("data", "code"), "eq", (V("a"),)),
    )


@pytest.mark.parametrize("raw", ["true", "false"])
def test_exists(raw: str) -> None:
    (cond,) = parse(("data.x[exists]", raw)).conditions
    assert (cond.path, cond.op, [v.raw for v in cond.values]) == (("data", "x"), "exists", [raw])


@pytest.mark.parametrize("raw", ["", "yes", "1", "True", "TRUE", "true,false"])
def test_exists_takes_true_or_false(raw: str) -> None:
    assert "data.x[exists]" in refused(("data.x[exists]", raw))


def test_values_keep_their_number_reading() -> None:
    (cond,) = parse(("data.amount[lt]", "1.5e2")).conditions
    assert cond.values == (Value("1.5e2", 150.0),)
    (cond,) = parse(("data.amount[lt]", "abc")).conditions
    assert cond.values == (Value("abc", None),)


# -- repeated parameters --------------------------------------------------------------------


def test_repeated_equality_is_or() -> None:
    assert parse(("type", "a"), ("type", "b")).conditions == (
        Condition(("type",), "in", (V("a"), V("b"))),
    )


def test_equality_and_in_on_one_path_merge() -> None:
    query = parse(("data.x", "1"), ("data.x[eq]", "2"), ("data.x[in]", "3,1"), ("data.y", "z"))
    assert set(query.conditions) == {
        Condition(("data", "x"), "in", (V("1"), V("2"), V("3"))),
        Condition(("data", "y"), "eq", (V("z"),)),
    }


def test_repeated_same_value_is_one_equality() -> None:
    assert parse(("type", "a"), ("type", "a")).conditions == (
        Condition(("type",), "eq", (V("a"),)),
    )


@pytest.mark.parametrize("op", ["ne", "gt", "gte", "lt", "lte", "prefix"])
def test_other_repeated_operators_are_and(op: str) -> None:
    query = parse((f"data.x[{op}]", "1"), (f"data.x[{op}]", "2"))
    assert sorted(query.conditions, key=lambda c: c.values[0].raw) == [
        Condition(("data", "x"), op, (V("1"),)),  # type: ignore[arg-type]
        Condition(("data", "x"), op, (V("2"),)),  # type: ignore[arg-type]
    ]


def test_different_parameters_are_separate_conditions() -> None:
    query = parse(("type", "a"), ("source", "s"), ("data.n[gt]", "1"), ("data.n[lt]", "9"))
    assert len(query.conditions) == 4


# -- aliases and envelope paths -------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("actor", ("actor", "id")),
        ("subject", ("subject", "id")),
        ("actor.id", ("actor", "id")),
        ("actor.type", ("actor", "type")),
        ("actor.name", ("actor", "name")),
        ("subject.type", ("subject", "type")),
        ("type", ("type",)),
        ("source", ("source",)),
        ("outcome", ("outcome",)),
        ("id", ("id",)),
        ("tenant", ("tenant",)),
        ("seq", ("seq",)),
        ("data", ("data",)),
        ("data.a-b.c_d.0.E9", ("data", "a-b", "c_d", "0", "E9")),
    ],
)
def test_paths(name: str, path: tuple[str, ...]) -> None:
    (cond,) = parse((name, "x")).conditions
    assert cond.path == path


def test_actor_alias_in_brackets() -> None:
    (cond,) = parse(("actor[prefix]", "ali")).conditions
    assert (cond.path, cond.op) == (("actor", "id"), "prefix")


def test_actor_alias_and_explicit_id_are_one_path() -> None:
    assert parse(("actor", "a"), ("actor.id", "b")).conditions == (
        Condition(("actor", "id"), "in", (V("a"), V("b"))),
    )


# -- bad paths and operators ----------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "",
        ".",
        "data.",
        ".data",
        "data..x",
        "data.a b",
        "data.a\x00",
        "data\x00.a",
        "data.a\n",
        "data.a;DROP TABLE events",
        "data.a'--",
        'data.a"',
        "data.a)OR(1=1",
        "data.*",
        "data.a/b",
        "data.a%20",
        "data.café",
        "data.\uff41",  # full-width a
        "data.a\u200b",  # zero-width space
        "data.\u0430",  # Cyrillic a
        "\u0430ctor",  # Cyrillic a
        "d\u0430ta.x",  # Cyrillic a
        "data.x[eq",
        "data.x]",
        "data.x[eq][gt]",
        "data.x[]x",
        "data[eq].x",
        "[eq]",
    ],
)
def test_bad_paths_are_refused_naming_the_parameter(name: str) -> None:
    assert repr(name) in refused((name, "1"))


@pytest.mark.parametrize(
    "name",
    ["foo", "Data.x", "DATA", "events", "user_id", "event_type", "timeStart", "q.x", "limit[eq]"],
)
def test_unknown_roots_are_refused_naming_the_parameter(name: str) -> None:
    message = refused((name, "1"))
    assert repr(name) in message
    assert "unknown parameter" in message


@pytest.mark.parametrize(
    "name",
    ["type.x", "time.x", "source.a.b", "seq.x", "actor.id.x", "subject.type.x", "outcome.x"],
)
def test_paths_into_scalars_are_refused(name: str) -> None:
    assert repr(name) in refused((name, "1"))


@pytest.mark.parametrize("op", ["like", "EQ", "neq", "contains", "", "eq ", "gt;", "in,eq"])
def test_unknown_operators_are_refused(op: str) -> None:
    name = f"data.x[{op}]"
    message = refused((name, "1"))
    assert repr(name) in message
    assert "operator" in message


def test_too_many_in_values() -> None:
    parse(("data.x[in]", ",".join(map(str, range(MAX_IN_VALUES)))))
    assert "data.x[in]" in refused(("data.x[in]", ",".join(map(str, range(MAX_IN_VALUES + 1)))))


def test_too_long_value() -> None:
    parse(("data.x", "v" * MAX_VALUE_CHARS))
    assert "data.x" in refused(("data.x", "v" * (MAX_VALUE_CHARS + 1)))


def test_too_many_conditions() -> None:
    parse(*[(f"data.f{i}", "1") for i in range(MAX_CONDITIONS)])
    assert str(MAX_CONDITIONS) in refused(*[(f"data.f{i}", "1") for i in range(MAX_CONDITIONS + 1)])


# -- limit, order ---------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "limit"), [("1", 1), ("50", 50), ("1000", 1000), ("0100", 100)])
def test_limit(raw: str, limit: int) -> None:
    assert parse(("limit", raw)).limit == limit


@pytest.mark.parametrize(
    "raw",
    [
        "0",
        "1001",
        "5000",
        "-1",
        "+5",
        "",
        " 5",
        "5 ",
        "1.5",
        "1e2",
        "abc",
        "\u0661\u0660",
        "\uff11\uff10",
        "9" * 5000,  # longer than int() reads by default
        "0" * 5000,
    ],
)
def test_bad_limit_is_refused_naming_it(raw: str) -> None:
    assert "'limit'" in refused(("limit", raw))


def test_limit_message_says_the_range() -> None:
    assert refused(("limit", "5000")) == "parameter 'limit': 5000 is out of range 1-1000"
    assert str(MAX_LIMIT) in refused(("limit", "x"))


@pytest.mark.parametrize("name", ["limit", "order", "since", "until", "cursor"])
def test_single_valued_parameters_may_not_repeat(name: str) -> None:
    value = {"limit": "5", "order": "asc", "since": "0", "until": "0", "cursor": "c"}[name]
    assert repr(name) in refused((name, value), (name, value))


@pytest.mark.parametrize("raw", ["asc", "desc"])
def test_order(raw: str) -> None:
    assert parse(("order", raw)).order == raw


@pytest.mark.parametrize("raw", ["", "ASC", "up", "newest", "asc,desc", "seq"])
def test_bad_order(raw: str) -> None:
    assert "'order'" in refused(("order", raw))


# -- times ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["since", "until"])
def test_since_and_until(name: str) -> None:
    attr = f"{name}_us"
    assert getattr(parse((name, "1700000000")), attr) == 1_700_000_000_000_000
    assert getattr(parse((name, "1700000000.25")), attr) == 1_700_000_000_250_000
    assert getattr(parse((name, "2026-11-27T03:27:53.5+01:00")), attr) == parse_rfc3339(
        "2026-11-27T02:27:53.5Z"
    )


@pytest.mark.parametrize("name", ["since", "until"])
@pytest.mark.parametrize(
    "raw", ["", "yesterday", "2026-02-30T00:00:00Z", "2026-11-27", "1e9", "9" * 20, "9" * 5000]
)
def test_bad_since_and_until(name: str, raw: str) -> None:
    assert repr(name) in refused((name, raw))


@pytest.mark.parametrize("name", ["time", "received_at"])
@pytest.mark.parametrize("op", ["eq", "ne", "gt", "gte", "lt", "lte"])
def test_time_path_values_are_normalised(name: str, op: str) -> None:
    expected = (Value("2026-11-27T02:27:53.500000Z", None),)
    for raw in ["2026-11-27T03:27:53.5+01:00", "1795746473.5", "2026-11-27t02:27:53.500z"]:
        (cond,) = parse((f"{name}[{op}]", raw)).conditions
        assert cond.values == expected


def test_time_path_in_values_are_normalised() -> None:
    (cond,) = parse(("time[in]", "0,1970-01-01T00:00:01+00:00")).conditions
    assert [v.raw for v in cond.values] == [format_us(0), format_us(1_000_000)]


def test_time_path_exists() -> None:
    (cond,) = parse(("time[exists]", "true")).conditions
    assert cond.op == "exists"


@pytest.mark.parametrize("raw", ["yesterday", "2026-13-01T00:00:00Z", "", "abc"])
def test_bad_time_path_value_names_the_parameter(raw: str) -> None:
    assert "'time[gte]'" in refused(("time[gte]", raw))


# -- full text ------------------------------------------------------------------------------


def test_q_words_and_prefixes() -> None:
    assert parse(("q", "Invoice  Billed* zür*")).text == (
        TextTerm("invoice", False),
        TextTerm("billed", True),
        TextTerm("zur", True),
    )


def test_q_splits_punctuation_into_words() -> None:
    assert parse(("q", "account.created*")).text == (
        TextTerm("account", False),
        TextTerm("created", True),
    )


def test_q_words_are_deduplicated_and_repeated_q_is_and() -> None:
    assert parse(("q", "a A"), ("q", "b a")).text == (TextTerm("a", False), TextTerm("b", False))


@pytest.mark.parametrize("raw", ["", "   ", "*", "** *", "!!!", "- . ,"])
def test_q_without_words_is_refused(raw: str) -> None:
    assert "'q'" in refused(("q", raw))


def test_q_word_limit() -> None:
    parse(("q", " ".join(f"w{i}" for i in range(MAX_TEXT_WORDS))))
    assert "'q'" in refused(("q", " ".join(f"w{i}" for i in range(MAX_TEXT_WORDS + 1))))


def test_cursor_is_returned_as_text() -> None:
    query, cursor = parse_query([("cursor", "abc"), ("type", "x")])
    assert cursor == "abc"
    assert query.after_seq is None


# -- fingerprint ----------------------------------------------------------------------------


def test_fingerprint_ignores_parameter_order_and_limit() -> None:
    a = parse(("type", "x"), ("data.n[gt]", "1"), ("q", "w"), ("limit", "5"))
    b = parse(("q", "w"), ("data.n[gt]", "1"), ("type", "x"), ("limit", "50"))
    assert a.fingerprint() == b.fingerprint()


@pytest.mark.parametrize(
    "other",
    [
        [("type", "y")],
        [("type", "x"), ("order", "asc")],
        [("type", "x"), ("since", "0")],
        [("type", "x"), ("until", "0")],
        [("type", "x"), ("q", "w")],
        [("type", "x"), ("q", "w*")],
        [("type[ne]", "x")],
        [("source", "x")],
        [("type", "x"), ("type", "z")],
        [("data.n[gt]", "1"), ("type", "x")],
    ],
)
def test_fingerprint_changes_with_the_query(other: list[tuple[str, str]]) -> None:
    assert parse(("type", "x")).fingerprint() != parse(*other).fingerprint()


# -- properties -----------------------------------------------------------------------------

SEGMENT = st.text(st.sampled_from("ABCXYZabcxyz0189_-"), min_size=1, max_size=8)


@given(st.lists(SEGMENT, min_size=1, max_size=5))
def test_valid_data_paths_parse(segments: list[str]) -> None:
    (cond,) = parse((".".join(["data", *segments]), "v")).conditions
    assert cond.path == ("data", *segments)


NAMES = st.one_of(
    st.text(max_size=20),
    st.sampled_from(
        [
            "type",
            "actor",
            "subject",
            "data.a",
            "data.a.b",
            "time",
            "received_at",
            "seq",
            "q",
            "limit",
            "order",
            "since",
            "until",
            "cursor",
            "data.a[in]",
            "data.a[exists]",
            "time[gt]",
            "time[in]",
            "data.a[gt]",
        ]
    ),
    st.builds(
        lambda path, op: f"{path}[{op}]",
        st.sampled_from(["data.a", "time", "actor", "x", "data.", ""]),
        st.one_of(st.sampled_from(OPS), st.text(max_size=5)),
    ),
)
VALUES = st.one_of(
    st.text(max_size=20),
    st.sampled_from(
        ["", "true", "false", "1", "-1.5", "asc", "desc", "0", "1001", "2026-11-27T02:27:53Z"]
    ),
    st.from_regex(r"\A[0-9]{1,30}(\.[0-9]{1,10})?\Z"),
    st.just("9" * 5000),
)


@given(st.lists(st.tuples(NAMES, VALUES), max_size=8))
def test_parse_query_raises_nothing_but_bad_request(pairs: list[tuple[str, str]]) -> None:
    try:
        query, _ = parse_query(pairs)
    except BadRequest as exc:
        message = exc.detail
    else:
        assert 1 <= query.limit <= MAX_LIMIT
        assert len(query.conditions) <= MAX_CONDITIONS
        query.fingerprint()
        return
    assert message


def test_prefix_on_a_time_path_is_refused_with_the_alternative() -> None:
    message = refused(("time[prefix]", "2026-11"))
    assert "time[prefix]" in message
    assert "since/until" in message


@pytest.mark.parametrize("name", ["actor.foo", "subject.email", "actor.id.x"])
def test_actor_and_subject_have_only_id_type_and_name(name: str) -> None:
    assert name in refused((name, "x"))


def test_repeated_equalities_are_capped_like_in() -> None:
    pairs = [("type", f"t{i}") for i in range(MAX_IN_VALUES + 1)]
    assert "type" in refused(*pairs)
    assert len(parse(*pairs[:MAX_IN_VALUES]).conditions[0].values) == MAX_IN_VALUES


def test_the_word_limit_applies_to_all_q_parameters_together() -> None:
    half = " ".join(f"w{i}" for i in range(MAX_TEXT_WORDS // 2 + 1))
    other = " ".join(f"x{i}" for i in range(MAX_TEXT_WORDS // 2 + 1))
    assert "'q'" in refused(("q", half), ("q", other))


def test_the_fingerprint_ignores_the_order_of_repeated_values_and_parameters() -> None:
    a = parse(("type", "a"), ("type", "b"), ("q", "x y"), ("data.n[gt]", "1"))
    b = parse(("data.n[gt]", "1"), ("q", "y x"), ("type", "b"), ("type", "a"))
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != parse(("type", "a")).fingerprint()

"""The SQLite search-index tokens: the fast walk agrees with the plain one, and no key or value
can make two different (tenant, path, value) triples share a token."""

from __future__ import annotations

from typing import Any
from unittest import mock

from hypothesis import given
from hypothesis import strategies as st

from auditlog.model.fields import Value
from auditlog.storage import numbers
from auditlog.storage.sqlite import terms

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
keys = st.text(max_size=6)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=20,
)


@given(st.text(max_size=5), st.dictionaries(keys, values, max_size=5))
def test_event_terms_match_the_reference_walk(tenant: str, data: dict[str, Any]) -> None:
    content = {"type": "t", "actor": {"id": "a"}, "source": "s", "data": data}
    fast = sorted(terms.event_terms(tenant, content).split())
    assert fast == terms.reference_event_terms(tenant, content).split()


@given(st.text(max_size=5), st.dictionaries(keys, values, max_size=5), st.booleans())
def test_one_walk_gives_the_terms_and_the_numbers(
    tenant: str, data: dict[str, Any], big: bool
) -> None:
    content = {"type": "t", "actor": {"id": "a", "n": 2**70 if big else 7}, "data": data}
    doc, held = terms.event_terms_and_numbers(tenant, content)
    assert sorted(doc.split()) == sorted(terms.event_terms(tenant, content).split())
    reference = numbers.reference_event_numbers(content)
    assert held.numbers == reference.numbers
    assert held.string_paths == reference.string_paths


def test_separators_inside_keys_and_tenants_cannot_forge_a_path() -> None:
    nested = terms.value_tokens("acme", ("data", "a", "b"), Value.of("1"))
    for content in (
        {"data": {"a.b": 1}},
        {"data": {"a\x1eb": 1}},
        {"data": {"a\x1fb": 1}},
        {"data": {"a1:b": 1}},
        {"data": {"a=b": 1}},
    ):
        assert not set(nested) & set(terms.event_terms("acme", content).split()), content
    assert terms.value_tokens("a", ("data", "x"), Value.of("1")) != terms.value_tokens(
        "a4:data", ("x",), Value.of("1")
    )
    assert terms.exists_token("acme", ("data", "ab")) != terms.exists_token(
        "acme", ("data", "a", "b")
    )


@given(
    st.lists(st.text(max_size=4), min_size=1, max_size=4),
    st.lists(st.text(max_size=4), min_size=1, max_size=4),
)
def test_different_paths_have_different_exists_tokens(p: list[str], q: list[str]) -> None:
    if p != q:
        assert terms.exists_token("t", ("data", *p)) != terms.exists_token("t", ("data", *q))


words_text = st.text(alphabet=st.sampled_from("aZ09 _-.é\u00bdß\u0301\ue000"), max_size=80)


@given(words_text, st.lists(words_text, max_size=3), words_text)
def test_words_come_from_the_searchable_text_only(word: str, listed: list[str], long: str) -> None:
    content = {
        "type": word,
        "source": listed[0] if listed else "",
        "actor": {"id": word, "tags": listed, "more": {"name": long}, "n": 5},
        "subject": [{"id": long}],
        "outcome": long,
        "data": {"a": [word, 1.5, [long, {"b": 7}]], "t": True},
        "other": long,
    }
    assert sorted(terms.event_terms("t", content).split()) == sorted(
        terms.reference_event_terms("t", content).split()
    )


@given(st.lists(st.dictionaries(keys, values, max_size=5), min_size=1, max_size=8))
def test_the_walk_forgets_within_its_bounds_and_still_agrees(many: list[dict[str, Any]]) -> None:
    limits = mock.patch.multiple(terms, _WALK_LIMIT=6, _PATH_VALUES=2, _memory=terms._Memory())
    with limits:
        for tenant in ("acme", "other"):
            for data in many:
                content = {"type": "t", "data": data}
                fast = sorted(terms.event_terms(tenant, content).split())
                assert fast == terms.reference_event_terms(tenant, content).split()
                assert terms._memory.size <= 6


def test_long_words_are_cut_as_text_cuts_them() -> None:
    for word in ("x" * 100, "Ab" * 40, "é" * 70):
        content = {"type": "t", "data": {"note": f"{word} short {word.upper()}"}}
        doc = terms.event_terms("acme", content).split()
        assert sorted(doc) == terms.reference_event_terms("acme", content).split()
        assert max(len(token) for token in doc if token.startswith("w")) == 65

"""The byte-level shortcut of full-text matching (``matching.may_hold_text``).

A walk over events the index does not cover yet decodes each one to match it; an event whose
bytes cannot hold a term's word is ruled out without that. The shortcut may only rule out
events that ``text_matches`` rules out too: never a match lost.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditlog.model.canonical import canonical_bytes
from auditlog.model.matching import may_hold_text, text_matches, text_needles
from auditlog.model.query import TextTerm
from auditlog.model.text import event_words

# Letters that fold into ASCII or into more than one letter, combining marks, a
# compatibility form (U+FF21 FULLWIDTH A) and a fraction among ASCII letters, digits and the
# characters JSON escapes.
ALPHABET = st.sampled_from(
    [*'abcXYZ019 .-_"\\\n\t/', "é", "É", "ß", "ﬁ", "\uff21", "½", "\u0301", "İ", "ǅ"]
)
texts = st.text(alphabet=ALPHABET, max_size=12)
values = st.recursive(
    st.one_of(
        texts,
        st.integers(-(10**6), 10**6),
        st.floats(allow_nan=False, allow_infinity=False),
        st.booleans(),
        st.none(),
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
events = st.fixed_dictionaries(
    {"type": texts, "source": texts, "data": st.dictionaries(texts, values, max_size=4)},
    optional={"actor": st.fixed_dictionaries({"id": texts}, optional={"name": texts})},
)


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(events, st.lists(st.tuples(texts, st.booleans()), min_size=1, max_size=3), st.data())
def test_the_shortcut_never_rules_out_a_match(
    event: dict[str, Any], drawn: list[tuple[str, bool]], data: st.DataObject
) -> None:
    words = sorted(event_words(event))
    if words and data.draw(st.booleans()):
        # Words the event holds, and beginnings of them: the terms that should match.
        word = data.draw(st.sampled_from(words))
        drawn = [(word[: data.draw(st.integers(1, len(word)))], True), (word, False)]
    terms = tuple(TextTerm(word.lower(), prefix) for word, prefix in drawn if word)
    if not terms:
        return
    body = canonical_bytes(event)
    if text_matches(event_words(event), terms):
        assert may_hold_text(body, text_needles(terms))


def test_a_word_absent_from_an_ascii_event_rules_it_out() -> None:
    body = canonical_bytes({"type": "login.failed", "data": {"n": 1.5e-07, "who": "Bob"}})
    assert may_hold_text(body, text_needles((TextTerm("bob", False),)))
    assert may_hold_text(body, text_needles((TextTerm("fail", True),)))
    assert may_hold_text(body, text_needles((TextTerm("07", False),)))
    assert not may_hold_text(body, text_needles((TextTerm("alice", False),)))


def test_no_shortcut_where_folding_may_make_the_word() -> None:
    body = canonical_bytes({"type": "Café opened"})
    assert text_matches(event_words({"type": "Café opened"}), (TextTerm("cafe", False),))
    assert may_hold_text(body, text_needles((TextTerm("cafe", False),)))
    assert text_needles((TextTerm("café", False),)) is None

"""Full-text words: one tokenizer for events and queries, folding case and diacritics."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditlog.model.matching import text_matches
from auditlog.model.query import parse_text
from auditlog.model.text import event_words, words


def found(event_text: str, q: str) -> bool:
    """Whether ``q`` finds an event whose searchable text is ``event_text``."""
    return text_matches(set(words(event_text)), parse_text(q))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello, World!", ["hello", "world"]),
        ("account.created", ["account", "created"]),
        ("user_id=42;", ["user", "id", "42"]),
        ("  spaced\tout\nwords  ", ["spaced", "out", "words"]),
        ("", []),
        ("!!! ... ---", []),
        ("repeat repeat", ["repeat", "repeat"]),
        ("Café CAFE café CAFÉ", ["cafe", "cafe", "cafe", "cafe"]),
        ("Ångström naïve façade", ["angstrom", "naive", "facade"]),
        ("Straße STRASSE", ["strasse", "strasse"]),
        ("ﬁle", ["file"]),  # ligature
        ("\uff21\uff22\uff23\uff11\uff12\uff13", ["abc123"]),  # full-width
        ("Ελληνικά", ["ελληνικα"]),
        ("Москва", ["москва"]),
        ("東京タワー", ["東京タワー"]),
        ("e\u0301te\u0301", ["ete"]),  # combining accents
        ("I♥NY", ["i", "ny"]),
        ("😀smile😀", ["smile"]),
        ("v1.2.3", ["v1", "2", "3"]),
        # Compatibility forms that decompose to capitals still fold to lower case.
        ("\U0001d400\U0001d401\U0001d402 \u210c\u2102 \u03d2", ["abc", "hc", "\u03c5"]),
    ],
)
def test_words(text: str, expected: list[str]) -> None:
    assert list(words(text)) == expected


def test_styled_letters_are_found_by_plain_ones() -> None:
    assert found("\U0001d400\U0001d401\U0001d402 total", "abc")
    assert found("abc total", "\U0001d400\U0001d401\U0001d402")


def test_long_words_still_find_themselves() -> None:
    long = "x" * 100 + "y"
    assert found(f"before {long} after", long)
    assert found(f"before {long} after", "x" * 70 + "*")


@given(st.text(max_size=40))
def test_words_are_folded_and_stable(text: str) -> None:
    out = list(words(text))
    assert all(w for w in out)
    # Folding is idempotent: a word folds to itself, so query words and event words agree.
    for w in out:
        assert list(words(w)) == [w]


@given(st.text(st.characters(codec="ascii"), max_size=40))
def test_ascii_case_never_matters(text: str) -> None:
    assert list(words(text.upper())) == list(words(text.lower())) == list(words(text))


@pytest.mark.parametrize(
    ("event_text", "q", "expected"),
    [
        ("Invoice billed", "invoice", True),
        ("Invoice billed", "INVOICE BILLED", True),
        ("Invoice billed", "billed invoice", True),
        ("Invoice billed", "invoice paid", False),  # every word must occur
        ("Invoice billed", "inv", False),  # a word is whole
        ("Invoice billed", "inv*", True),
        ("Invoice billed", "INV*", True),
        ("Invoice billed", "inv* bil*", True),
        ("Invoice billed", "inv* pai*", False),
        ("Invoice billed", "invoice*", True),  # a word is a prefix of itself
        ("Invoice billed", "invoices*", False),
        ("Invoice billed", "voice*", False),  # prefix, not substring
        ("Café ouvert", "cafe", True),
        ("cafe ouvert", "CAFÉ", True),
        ("café ouvert", "caf*", True),
        ("Straße", "strasse", True),
        ("account.created", "account.created", True),  # the query splits into words too
        ("account.created", "created.account", True),
        ("account creation", "account.created", False),
        ("order 1234", "12*", True),
        ("order 1234", "123", False),
    ],
)
def test_text_matches(event_text: str, q: str, expected: bool) -> None:
    assert found(event_text, q) is expected


def test_event_words_cover_envelope_and_data_values() -> None:
    event: dict[str, Any] = {
        "id": "evt-unsearched",
        "type": "invoice.billed",
        "time": "2026-11-27T02:27:53.123456Z",
        "actor": {"id": "alice", "type": "user", "name": "Alice Liddell"},
        "subject": {"id": "inv-42", "type": "invoice"},
        "source": "billing",
        "outcome": "failure",
        "data": {
            "amount": 1250,
            "ratio": 0.5,
            "city": "Zürich",
            "lines": [{"sku": "Widget"}, ["nested", {"deep": "Treasure"}]],
            "keyname": True,
            "nothing": None,
        },
    }
    out = event_words(event)
    for word in [
        "invoice",
        "billed",
        "alice",
        "user",
        "liddell",
        "inv",
        "42",
        "billing",
        "failure",
        "1250",
        "zurich",
        "widget",
        "nested",
        "treasure",
    ]:
        assert word in out, word
    # Keys, literals and the server's time are not text.
    for word in ["amount", "lines", "sku", "keyname", "true", "none", "null", "2026"]:
        assert word not in out, word


def test_event_words_of_a_minimal_event() -> None:
    assert event_words({"type": "x", "source": "s", "data": {}}) == {"x", "s"}

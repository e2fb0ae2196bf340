"""Words for full-text search: one tokenizer shared by every backend and by queries.

A word is a maximal run of letters, digits and private-use characters (Unicode categories
L*, N*, Co), case-folded, with combining marks removed after compatibility decomposition, so
``Café``, ``CAFE`` and ``café`` are the same word. Everything else separates words.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Iterator
from typing import Any

MAX_WORD = 64  # longer runs are cut: nobody searches for them and they bloat the index


def _is_word_char(ch: str) -> bool:
    if ch.isascii():
        return ch.isalnum()
    cat = unicodedata.category(ch)
    return cat[0] in "LN" or cat == "Co" or cat[0] == "M"


def _fold(word: str) -> str:
    if word.isascii():
        return word.lower()
    decomposed = unicodedata.normalize("NFKD", word.casefold())
    kept = "".join(
        ch for ch in decomposed if _is_word_char(ch) and unicodedata.category(ch)[0] != "M"
    )
    return unicodedata.normalize("NFC", kept)


def words(text: str) -> Iterator[str]:
    """The normalised words of ``text``, in order, possibly repeated."""
    start = -1
    for i, ch in enumerate(text):
        if _is_word_char(ch):
            if start < 0:
                start = i
        elif start >= 0:
            folded = _fold(text[start:i])
            if folded:
                yield folded[:MAX_WORD]
            start = -1
    if start >= 0:
        folded = _fold(text[start:])
        if folded:
            yield folded[:MAX_WORD]


def _scalars(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int | float):
        yield repr(value)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _scalars(v)
    elif isinstance(value, list):
        for v in value:
            yield from _scalars(v)


def searchable_text(event: dict[str, Any]) -> Iterable[str]:
    """The strings of an event that full-text search looks in.

    ``type``, ``source``, ``outcome``, the ``id``, ``type`` and ``name`` of ``actor`` and
    ``subject``, and every string and number anywhere in ``data``.
    """
    yield event.get("type", "")
    yield event.get("source", "")
    yield event.get("outcome") or ""
    for party in ("actor", "subject"):
        p = event.get(party)
        if isinstance(p, dict):
            yield from (v for v in p.values() if isinstance(v, str))
    yield from _scalars(event.get("data", {}))


def event_words(event: dict[str, Any]) -> set[str]:
    """The distinct words of an event's searchable text."""
    out: set[str] = set()
    for text in searchable_text(event):
        out.update(words(text))
    return out

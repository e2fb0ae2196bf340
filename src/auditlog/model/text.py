"""Words for full-text search: one tokenizer shared by every backend and by queries.

A word is a maximal run of letters, digits, marks and private-use characters (Unicode
categories L*, N*, M*, Co), case-folded, with accents removed (compatibility decomposition,
then combining marks dropped), so ``Café``, ``CAFE`` and ``cafe`` are the same word.
Everything else separates words. Words are cut at ``MAX_WORD`` characters. ASCII text, the
common case, takes a regular-expression fast path with the same result.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from typing import Any

MAX_WORD = 64  # longer runs are cut: nobody searches for them and they bloat the index

_WORD = re.compile(r"[^\W_]+")


def _is_word_char(ch: str) -> bool:
    if ch.isascii():
        return ch.isalnum()
    category = unicodedata.category(ch)
    return category[0] in "LNM" or category == "Co"


def _fold(word: str) -> str:
    # Decompose before folding too: some compatibility forms decompose to capitals.
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", word).casefold())
    # Decomposition can also yield separators (a vulgar fraction has a fraction slash):
    # keep word characters only.
    kept = "".join(ch for ch in decomposed if _is_word_char(ch) and not unicodedata.combining(ch))
    return unicodedata.normalize("NFC", kept)


def words(text: str) -> Iterator[str]:
    """The normalised words of ``text``, in order, possibly repeated."""
    if text.isascii():
        for word in _WORD.findall(text.lower()):
            yield word[:MAX_WORD]
        return
    start = -1
    for i, ch in enumerate(f"{text} "):
        if _is_word_char(ch):
            if start < 0:
                start = i
        elif start >= 0:
            word = text[start:i]
            folded = word.lower() if word.isascii() else _fold(word)
            if folded:
                yield folded[:MAX_WORD]
            start = -1


def _scalars(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for v in value.values():
            _scalars(v, out)
    elif isinstance(value, list):
        for v in value:
            _scalars(v, out)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        out.append(repr(value))


def searchable_text(event: dict[str, Any]) -> Iterable[str]:
    """The strings of an event that full-text search looks in.

    ``type``, ``source``, ``outcome``, the ``id``, ``type`` and ``name`` of ``actor`` and
    ``subject``, and every string and number anywhere in ``data``.
    """
    out = [event.get("type", ""), event.get("source", ""), event.get("outcome") or ""]
    for party in ("actor", "subject"):
        p = event.get(party)
        if isinstance(p, dict):
            out.extend(v for v in p.values() if isinstance(v, str))
    _scalars(event.get("data", {}), out)
    return out


def event_words(event: dict[str, Any]) -> set[str]:
    """The distinct words of an event's searchable text."""
    text = " ".join(searchable_text(event))
    if text.isascii():  # the fast path of ``words``, for a whole event at once
        return {word[:MAX_WORD] for word in _WORD.findall(text.lower())}
    return set(words(text))

"""Whether one stored event satisfies a whole ``Query``: the reference semantics of §3."""

from __future__ import annotations

import functools
from typing import Any

import orjson

from auditlog.model.fields import condition_matches
from auditlog.model.query import Query, TextTerm
from auditlog.model.text import event_words


@functools.lru_cache(maxsize=256)
def text_needles(terms: tuple[TextTerm, ...]) -> tuple[bytes, ...] | None:
    """The bytes each term's word must occur as in a stored event that is pure ASCII, for
    ``may_hold_text``; ``None`` when some word is not ASCII (no such shortcut then).
    Remembered, since a walk asks it for every event it reads."""
    if not terms or not all(term.word.isascii() for term in terms):
        return None
    return tuple(term.word.encode() for term in terms)


def may_hold_text(body: bytes, needles: tuple[bytes, ...] | None) -> bool:
    """False only when the stored event ``body`` cannot match the terms of ``needles``.

    An ASCII body's words are its runs of letters and digits, lowercased: JSON escapes no
    letter or digit, and a number's words are the digits it is written with. So each word
    of the event occurs in the lowercased body as it is, and a term's word (or the start of
    one, for ``word*``) that does not occur there is not a word of the event. A body with
    other characters may fold into ASCII words (``Café`` holds ``cafe``): no shortcut. This
    saves decoding most events of a walk that a word rules out (tests/model/test_textshortcut.py
    holds it to ``text_matches``)."""
    if needles is None or not body.isascii():
        return True
    lowered = body.lower()
    return all(needle in lowered for needle in needles)


def text_matches(words: set[str], terms: tuple[TextTerm, ...]) -> bool:
    """Every term occurs among ``words`` (as a prefix of one, for ``word*``)."""
    for term in terms:
        if term.prefix:
            if not any(w.startswith(term.word) for w in words):
                return False
        elif term.word not in words:
            return False
    return True


def body_matches(body: bytes, time_us: int, query: Query) -> bool:
    """``event_matches`` of a stored event's bytes, ruling out with ``may_hold_text`` first;
    a query of times alone is answered without decoding the event."""
    if not query.conditions and not query.text:
        return _in_times(time_us, query)
    if not may_hold_text(body, text_needles(query.text)):
        return False
    return event_matches(orjson.loads(body), time_us, query)


def _in_times(time_us: int, query: Query) -> bool:
    return (query.since_us is None or time_us >= query.since_us) and (
        query.until_us is None or time_us < query.until_us
    )


def event_matches(event: dict[str, Any], time_us: int, query: Query) -> bool:
    """Whether ``event`` (stored form, its ``time`` as ``time_us``) satisfies ``query``.

    The cursor position is not part of this: callers page by ``seq`` themselves.
    """
    if not _in_times(time_us, query):
        return False
    for cond in query.conditions:
        if not condition_matches(event, cond.path, cond.op, cond.values):
            return False
    return not query.text or text_matches(event_words(event), query.text)

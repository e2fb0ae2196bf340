"""Whether one stored event satisfies a whole ``Query``: the reference semantics of §3."""

from __future__ import annotations

from typing import Any

from auditlog.model.fields import condition_matches
from auditlog.model.query import Query, TextTerm
from auditlog.model.text import event_words


def text_matches(words: set[str], terms: tuple[TextTerm, ...]) -> bool:
    """Every term occurs among ``words`` (as a prefix of one, for ``word*``)."""
    for term in terms:
        if term.prefix:
            if not any(w.startswith(term.word) for w in words):
                return False
        elif term.word not in words:
            return False
    return True


def event_matches(event: dict[str, Any], time_us: int, query: Query) -> bool:
    """Whether ``event`` (stored form, its ``time`` as ``time_us``) satisfies ``query``.

    The cursor position is not part of this: callers page by ``seq`` themselves.
    """
    if query.since_us is not None and time_us < query.since_us:
        return False
    if query.until_us is not None and time_us >= query.until_us:
        return False
    for cond in query.conditions:
        if not condition_matches(event, cond.path, cond.op, cond.values):
            return False
    return not query.text or text_matches(event_words(event), query.text)

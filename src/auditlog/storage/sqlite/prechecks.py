"""Cheap tests SQLite runs before ``al_match``, so that most events a query reads row by row
are ruled out without a call into Python.

A call of ``al_match`` decodes the event and costs a few microseconds; under load it also
waits for the GIL, which the write path holds. The tests here are necessary conditions only,
each read off the stored bytes by SQLite itself (up to about a microsecond a row of 500
bytes, reading it included; bench/RESULTS.md §16), and
``al_match`` still decides every event they let through, so no answer changes:

* a word of ``q``: a pure ASCII event holds each of its words in its bytes, in some case
  (``matching.may_hold_text``): ``CAST(body AS TEXT) LIKE '%word%'``, or the body is not
  pure ASCII (then folding may make the word, ``Café`` holding ``cafe``);
* a condition on a path (any but ``exists=false``, which holds where the path is absent):
  an event that matches holds the path, so its last key occurs in the canonical bytes as
  that key's JSON string and a colon (``"amount":``); a byte search, ``instr``.
"""

from __future__ import annotations

import orjson

from auditlog.model.matching import text_needles
from auditlog.model.query import Condition, TextTerm

# A stored event (a BLOB: LIKE reads text only) is pure ASCII when it has as many characters
# as bytes; when it is not, ``al_match`` decides alone.
_NOT_ASCII = "length(CAST(e.body AS TEXT)) <> length(e.body)"
#: Keys of top-level fields every stored event has: a test of such a key rules nothing out,
#: wherever the path ends with it (``"id":`` occurs in every event, ``actor.id``'s or not).
_ALWAYS = frozenset({"id", "type", "time", "received_at", "seq", "tenant", "actor", "source"})


def word_checks(text: tuple[TextTerm, ...]) -> tuple[list[str], list[object]]:
    """The words' test: a walk over the unindexed tail then costs about a microsecond per
    event it rules out (against 2.7 with the test in ``al_match``)."""
    needles = text_needles(text)
    if needles is None:
        return [], []
    likes = " AND ".join(["CAST(e.body AS TEXT) LIKE ? ESCAPE '\\'"] * len(needles))
    patterns: list[object] = [
        "%" + n.decode().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        for n in needles
    ]
    return [f"({likes} OR {_NOT_ASCII})"], patterns


def key_checks(conds: list[Condition]) -> tuple[list[str], list[object]]:
    """The paths' test: ``instr(e.body, '"key":') > 0`` for the last key of each condition's
    path that an event must hold for the condition to hold."""
    keys: dict[bytes, None] = {}
    for cond in conds:
        if cond.op == "exists" and cond.values[0].raw != "true":
            continue
        if cond.path[-1] in _ALWAYS:
            continue
        keys[orjson.dumps(cond.path[-1]) + b":"] = None
    return ["instr(e.body, ?) > 0"] * len(keys), list(keys)

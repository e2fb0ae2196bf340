"""The tokens an event is indexed under in the SQLite full-text table, and the tokens a query asks for.

Two kinds of token share one FTS5 table (tokenizer ``ascii``, so each token below is kept
exactly as written):

* ``k`` + 20 hex digits: a hash of (tenant, field path, typed value) for every scalar value at
  every path (arrays stepped through, as ``fields.leaf_paths`` walks them), and of (tenant,
  path, "exists") for every path present. Equality on any path, of the envelope or of ``data``,
  is then one token lookup, with no index per path. The value's type is part of the hash
  (``s`` string, ``n`` number, ``l`` literal), which gives numbers-compare-as-numbers for free:
  ``1e2``, ``100`` and ``100.0`` all hash as ``n100``. 80-bit hashes make a false match
  vanishingly unlikely (about 1 in 10^12 even with a billion distinct values).
* ``w`` + word: each word of the event's searchable text (``model.text``), for ``q``.

The hashed material spells the tenant and every path segment with its length in front
(``4:acme4:data8:location4:city=sSeattle``), so no key or value, whatever characters it holds,
can make two different (tenant, path, value) triples hash alike.
"""

from __future__ import annotations

import hashlib
from typing import Any

from auditlog.model.fields import Path, Value, leaf_paths
from auditlog.model.text import event_words
from auditlog.storage.numbers import UNINDEXED_ROOTS, EventNumbers, material_id, stored

__all__ = [
    "UNINDEXED_ROOTS",
    "event_terms",
    "event_terms_and_numbers",
    "exists_token",
    "number_text",
    "reference_event_terms",
    "value_tokens",
    "word_token",
]
_CACHE_LIMIT = 200_000
_cache: dict[str, str] = {}


def _hashed(material: str) -> str:
    # Paths and many values repeat from event to event (types, currencies, cities): a
    # bounded memo saves most of the hashing on the write path.
    token = _cache.get(material)
    if token is None:
        token = "k" + hashlib.blake2b(material.encode(), digest_size=10).hexdigest()
        if len(_cache) >= _CACHE_LIMIT:
            _cache.clear()
        _cache[material] = token
    return token


def _spelled(text: str) -> str:
    return f"{len(text)}:{text}"


def _token(tenant: str, path: Path, tagged: str) -> str:
    return _hashed(_spelled(tenant) + "".join(_spelled(segment) for segment in path) + "=" + tagged)


def number_text(n: int | float) -> str:
    """One spelling per numeric value: integral floats as integers."""
    if isinstance(n, float) and n.is_integer():
        return str(int(n))
    return repr(n)


def _tagged(value: Any) -> str | None:
    if isinstance(value, str):
        return "s" + value
    if value is True:
        return "ltrue"
    if value is False:
        return "lfalse"
    if value is None:
        return "lnull"
    if isinstance(value, int | float):
        return "n" + number_text(value)
    return None


def _walk(
    obj: dict[str, Any], prefix: str, out: set[str], held: EventNumbers | None, skip: int
) -> None:
    # The same traversal as fields.leaf_paths and the same material as _token, written for
    # speed (this is most of the indexer's work): ``prefix`` is the material of this object's
    # path. With ``held``, the numbers and string paths are gathered on the way, each path's
    # material without the tenant's (its first ``skip`` characters) as ``numbers`` spells it.
    for key, value in obj.items():
        here = f"{prefix}{len(key)}:{key}"
        out.add(_hashed(here + "=e"))
        _walk_value(value, here, out, held, skip)


def _walk_value(value: Any, here: str, out: set[str], held: EventNumbers | None, skip: int) -> None:
    kind = type(value)
    if kind is str:
        out.add(_hashed(here + "=s" + value))
        if held is not None:
            held.string_paths.add(material_id(here[skip:]))
    elif kind is dict:
        _walk(value, here, out, held, skip)
    elif kind is list:
        for item in value:  # elements share their array's path
            _walk_value(item, here, out, held, skip)
    else:
        tagged = _tagged(value)
        if tagged is not None:
            out.add(_hashed(here + "=" + tagged))
            if held is not None and (kind is int or kind is float):
                held.numbers.add((material_id(here[skip:]), stored(value)))


def event_terms(tenant: str, content: dict[str, Any]) -> str:
    """The FTS document of one event: its field tokens and words, space-separated."""
    return _document(tenant, content, None)


def event_terms_and_numbers(tenant: str, content: dict[str, Any]) -> tuple[str, EventNumbers]:
    """``event_terms`` and ``numbers.event_numbers`` of one event, in one walk."""
    held = EventNumbers(set(), set())
    return _document(tenant, content, held), held


def _document(tenant: str, content: dict[str, Any], held: EventNumbers | None) -> str:
    tokens: set[str] = set()
    indexed = {k: v for k, v in content.items() if k not in UNINDEXED_ROOTS}
    prefix = _spelled(tenant)
    _walk(indexed, prefix, tokens, held, len(prefix))
    tokens.update("w" + w for w in event_words(content))
    return " ".join(tokens)


def reference_event_terms(tenant: str, content: dict[str, Any]) -> str:
    """``event_terms`` written plainly over ``fields.leaf_paths``: the oracle for tests."""
    tokens: set[str] = set()
    for path, node in leaf_paths(content):
        if path[0] in UNINDEXED_ROOTS:
            continue
        tokens.add(_token(tenant, path, "e"))
        tagged = _tagged(node)
        if tagged is not None:
            tokens.add(_token(tenant, path, tagged))
    tokens.update("w" + w for w in event_words(content))
    return " ".join(sorted(tokens))


def value_tokens(tenant: str, path: Path, value: Value) -> list[str]:
    """The tokens any of which an event holds iff ``path`` equals ``value`` (per ``fields``)."""
    out = [_token(tenant, path, "s" + value.raw)]
    if value.number is not None:
        out.append(_token(tenant, path, "n" + number_text(value.number)))
    if value.raw in ("true", "false", "null"):
        out.append(_token(tenant, path, "l" + value.raw))
    return out


def exists_token(tenant: str, path: Path) -> str:
    """The token every event holding ``path`` carries."""
    return _token(tenant, path, "e")


def word_token(word: str) -> str:
    return "w" + word

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

Building the tokens is most of the indexer's work, so the walk that makes them for stored
events (``event_terms_and_numbers``) keeps what repeats from event to event: a tree of the
paths met per tenant, each with its material, its exists token, its id in the numbers index
and the tokens of the values met there, in bounded memory. ``reference_event_terms`` is the
same definition written plainly, the oracle of the tests.
"""

from __future__ import annotations

import hashlib
from typing import Any

from auditlog.model.fields import Path, Value, leaf_paths
from auditlog.model.text import MAX_WORD, event_words, words
from auditlog.storage.numbers import INT64, UNINDEXED_ROOTS, EventNumbers, material_id, stored

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
#: Paths and values the walk remembers, in all; past it, it starts afresh.
_WALK_LIMIT = 200_000
#: Values it remembers at one path; past it, that path's start afresh (ids, free text).
_PATH_VALUES = 4096
#: Where the walk takes the words of ``q`` (as ``text.searchable_text``): nowhere; the
#: strings right at the path; every string and number at and below it.
_NO_WORDS, _OWN_STRINGS, _ALL_WORDS = 0, 1, 2
#: The integers ``stored`` keeps as they are: the walk needs no call for them.
_INT64_MIN, _INT64_MAX = INT64
#: ASCII bytes to themselves where they are word characters (after lowering), else spaces.
_ASCII_WORDS = bytes(c if chr(c).isalnum() and c < 128 else 32 for c in range(256))


def _digest(material: str) -> str:
    return "k" + hashlib.blake2b(material.encode(), digest_size=10).hexdigest()


def _hashed(material: str) -> str:
    # Paths and many values repeat from query to query: a bounded memo.
    token = _cache.get(material)
    if token is None:
        token = _digest(material)
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


class _Path:
    """What the walk remembers of one path of one tenant (the root: the tenant itself)."""

    __slots__ = (
        "child_words",
        "children",
        "exists",
        "id_material",
        "material",
        "numbers",
        "pid",
        "strings",
        "words",
    )

    def __init__(self, material: str, id_material: str, words: int, child_words: int) -> None:
        self.material = material  # the tenant's and the path's, as hashed for tokens
        self.id_material = id_material  # the path's alone, as ``numbers.material_id`` takes it
        self.exists = _digest(material + "=e") if id_material else ""
        self.pid = material_id(id_material) if id_material else 0  # its id in ``numbers``
        self.strings: dict[str, str] = {}  # string value -> token
        self.numbers: dict[int | float, str] = {}  # number -> token (1 and 1.0 alike)
        self.children: dict[str, _Path] = {}
        self.words = words
        self.child_words = child_words


class _Memory:
    """The paths met so far, per tenant, and how many paths and values that is."""

    def __init__(self) -> None:
        self.tenants: dict[str, _Path] = {}
        self.size = 0

    def root(self, tenant: str) -> _Path:
        root = self.tenants.get(tenant)
        if root is None:
            root = self.tenants[tenant] = _Path(_spelled(tenant), "", _NO_WORDS, _NO_WORDS)
        return root

    def child(self, parent: _Path, key: str) -> _Path:
        # Where the words are, as text.searchable_text says: type, source and outcome, the
        # strings of actor and subject, and every string and number in data.
        spelled = f"{len(key)}:{key}"
        if parent.id_material:
            words = parent.child_words
            child_words = _ALL_WORDS if words == _ALL_WORDS else _NO_WORDS
        elif key == "data":
            words, child_words = _ALL_WORDS, _ALL_WORDS
        elif key in ("actor", "subject"):
            words, child_words = _NO_WORDS, _OWN_STRINGS
        else:
            words = _OWN_STRINGS if key in ("type", "source", "outcome") else _NO_WORDS
            child_words = _NO_WORDS
        node = _Path(parent.material + spelled, parent.id_material + spelled, words, child_words)
        self._grow(1)
        parent.children[key] = node
        return node

    def value(self, node: _Path, memo: dict[Any, str], value: Any, tagged: str) -> str:
        token = _digest(node.material + "=" + tagged)
        if len(memo) >= _PATH_VALUES:
            self.size -= len(memo)
            memo.clear()
        memo[value] = token
        self._grow(1)
        return token

    def _grow(self, n: int) -> None:
        self.size += n
        if self.size > _WALK_LIMIT:
            self.tenants = {}  # nodes in use stay valid, merely forgotten
            self.size = 0


_memory = _Memory()


def _walk(
    obj: dict[str, Any], node: _Path, out: set[str], held: EventNumbers, text: list[str] | None
) -> None:
    # The traversal of fields.leaf_paths, strings and numbers handled in line (most values
    # are); ``text`` gathers the searchable text (None where none can be below).
    children = node.children
    for key, value in obj.items():
        child = children.get(key)
        if child is None:
            child = _memory.child(node, key)
        out.add(child.exists)
        kind = type(value)
        if kind is str:
            token = child.strings.get(value)
            if token is None:
                token = _memory.value(child, child.strings, value, "s" + value)
            out.add(token)
            held.string_paths.add(child.pid)
            if text is not None and child.words:
                text.append(value)
        elif kind is int or kind is float:
            token = child.numbers.get(value)
            if token is None:
                token = _memory.value(child, child.numbers, value, "n" + number_text(value))
            out.add(token)
            held.numbers.add(
                (child.pid, value if _INT64_MIN <= value <= _INT64_MAX else stored(value))
            )
            if text is not None and child.words == _ALL_WORDS:
                text.append(repr(value))
        elif kind is dict:
            _walk(value, child, out, held, text)
        else:
            _walk_value(value, child, out, held, text)


def _walk_value(
    value: Any, node: _Path, out: set[str], held: EventNumbers, text: list[str] | None
) -> None:
    kind = type(value)
    if kind is str:
        token = node.strings.get(value)
        if token is None:
            token = _memory.value(node, node.strings, value, "s" + value)
        out.add(token)
        held.string_paths.add(node.pid)
        if text is not None and node.words:
            text.append(value)
    elif kind is int or kind is float:
        token = node.numbers.get(value)
        if token is None:
            token = _memory.value(node, node.numbers, value, "n" + number_text(value))
        out.add(token)
        held.numbers.add((node.pid, stored(value)))
        if text is not None and node.words == _ALL_WORDS:
            text.append(repr(value))
    elif kind is dict:
        _walk(value, node, out, held, text)
    elif kind is list:
        inner = text if node.words == _ALL_WORDS else None  # an array's own words: data's
        for item in value:  # elements share their array's path
            _walk_value(item, node, out, held, inner)
    else:
        tagged = _tagged(value)
        if tagged is not None:
            out.add(_hashed(node.material + "=" + tagged))


def event_terms(tenant: str, content: dict[str, Any]) -> str:
    """The FTS document of one event: its field tokens and words, space-separated."""
    return event_terms_and_numbers(tenant, content)[0]


def event_terms_and_numbers(tenant: str, content: dict[str, Any]) -> tuple[str, EventNumbers]:
    """``event_terms`` and ``numbers.event_numbers`` of one event, in one walk."""
    held = EventNumbers(set(), set())
    tokens: set[str] = set()
    text: list[str] = []
    root = _memory.root(tenant)
    children = root.children
    for key, value in content.items():
        node = children.get(key)
        if node is None:
            if key in UNINDEXED_ROOTS:
                continue
            node = _memory.child(root, key)
        tokens.add(node.exists)
        _walk_value(value, node, tokens, held, text)
    doc = " ".join(tokens)
    if found := _words(" ".join(text)):
        doc += " w" + found
    return doc, held


def _words(text: str) -> str:
    """The distinct words of ``text`` (as ``text.words``), joined by " w"."""
    if text.isascii():
        # The same words as the regular expression of text.words, at C speed.
        found = set(text.lower().encode().translate(_ASCII_WORDS).split())
        if found and max(map(len, found)) > MAX_WORD:
            found = {word[:MAX_WORD] for word in found}
        return b" w".join(found).decode()
    return " w".join(set(words(text)))


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

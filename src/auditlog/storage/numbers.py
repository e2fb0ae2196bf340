"""The numbers index: every number at every path of an event, so that a range finds them.

Equality on any path is a token lookup (``sqlite.terms``, PostgreSQL's GIN index); a range
(``data.amount[gt]=1000``) is not. Both stores therefore keep, beside their search index and
filled by the same indexer, a table of (tenant, path id, number, event) rows ordered by
(tenant, path id, number), and a table of flags on (tenant, path id): ``s`` where some
indexed event holds a string at the path, ``m`` where some indexed event holds more than one
number there.

Why the strings: under ``model.fields`` a query value that reads as a number compares as a
number with numbers and as a string with strings (``"2" > "100"``). A range over numbers
alone finds every match only where the path holds no strings; where it does (anywhere in the
indexed part of the tenant's log), the store does not use the numbers index for that path.

Why several numbers: each condition holds when *any* value at the path satisfies it, so
``amount[gt]=5&amount[lt]=3`` matches ``"amount": [1, 10]``. Only where no event holds more
than one number at the path do the bounds of several conditions make one range; elsewhere
the range is that of the first condition alone.

What a range then reads is a superset of its matches, never less; the store checks every
candidate against the whole query (``model.matching``), so the bounds may be wide:

* a path id is 64 bits of BLAKE2b over the path's segments, each spelled with its length in
  front (as ``terms`` does); two paths with the same id only add candidates;
* integers within 64 bits are stored exactly; others as the nearest float, clamped to the
  largest finite one (rounding and clamping keep order, ties aside);
* query bounds are floats one step outside the query value (``nextafter``), so no stored
  number beyond the value is left out by rounding, whichever way the value rounded.
"""

from __future__ import annotations

import hashlib
import math
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from auditlog.model.fields import Path, leaf_paths
from auditlog.model.query import Condition

#: Envelope fields in no index of values (tokens, numbers): their own columns answer them.
UNINDEXED_ROOTS = frozenset({"id", "time", "tenant", "seq", "received_at"})
#: The integers kept as they are (SQLite's and PostgreSQL's 64-bit integers).
INT64 = (-(2**63), 2**63 - 1)
_LARGEST = sys.float_info.max
_cache: dict[str, int] = {}
_CACHE_LIMIT = 100_000

Number = int | float


def material_id(material: str) -> int:
    """The path id of a path's material (its segments, each spelled ``len:segment``)."""
    found = _cache.get(material)
    if found is None:
        digest = hashlib.blake2b(material.encode(), digest_size=8).digest()
        found = int.from_bytes(digest, "big", signed=True)
        if len(_cache) >= _CACHE_LIMIT:
            _cache.clear()
        _cache[material] = found
    return found


def path_id(path: Path) -> int:
    """The signed 64-bit id of a field path."""
    return material_id("".join(f"{len(segment)}:{segment}" for segment in path))


def stored(n: int | float) -> Number:
    """How a number is kept: an int within 64 bits as it is, anything else as a finite float."""
    if isinstance(n, int):
        if INT64[0] <= n <= INT64[1]:
            return n
        try:
            n = float(n)
        except OverflowError:
            return _LARGEST if n > 0 else -_LARGEST
    return max(-_LARGEST, min(_LARGEST, n))


@dataclass(slots=True)
class EventNumbers:
    """What one event adds to the numbers index."""

    #: (path id, number) for every number at every indexed path, arrays stepped through
    numbers: set[tuple[int, Number]]
    #: path ids at which the event holds a string
    string_paths: set[int]

    def several(self) -> set[int]:
        """The path ids at which the event holds more than one number."""
        out: set[int] = set()
        if len(self.numbers) > 1:
            seen: set[int] = set()
            for pid, _ in self.numbers:
                if pid in seen:
                    out.add(pid)
                seen.add(pid)
        return out


def flags_of(events: Iterable[EventNumbers]) -> set[tuple[int, str]]:
    """The path flags of events together (what the indexer adds for a batch): (path id,
    ``s``) where one holds a string, (path id, ``m``) where one holds more than one number."""
    strings: set[int] = set()
    several: set[int] = set()
    for event in events:
        strings |= event.string_paths
        several |= event.several()
    return {(pid, "s") for pid in strings} | {(pid, "m") for pid in several}


def event_numbers(content: dict[str, Any]) -> EventNumbers:
    """The numbers and string paths of one event (``content`` as stored)."""
    out = EventNumbers(set(), set())
    for key, value in content.items():
        if key not in UNINDEXED_ROOTS:
            _walk_value(value, f"{len(key)}:{key}", out)
    return out


def _walk_value(value: Any, here: str, out: EventNumbers) -> None:
    # The traversal of fields.leaf_paths, written for speed: ``here`` is the path's material.
    kind = type(value)
    if kind is str:
        out.string_paths.add(material_id(here))
    elif kind is int or kind is float:
        out.numbers.add((material_id(here), stored(value)))
    elif kind is dict:
        for key, inner in value.items():
            _walk_value(inner, f"{here}{len(key)}:{key}", out)
    elif kind is list:
        for item in value:  # elements share their array's path
            _walk_value(item, here, out)


def reference_event_numbers(content: dict[str, Any]) -> EventNumbers:
    """``event_numbers`` written plainly over ``fields.leaf_paths``: the oracle for tests."""
    out = EventNumbers(set(), set())
    for path, node in leaf_paths(content):
        if path[0] in UNINDEXED_ROOTS:
            continue
        if isinstance(node, str):
            out.string_paths.add(path_id(path))
        elif isinstance(node, int | float) and not isinstance(node, bool):
            out.numbers.add((path_id(path), stored(node)))
    return out


@dataclass(frozen=True, slots=True)
class NumberRange:
    """The stored numbers at one path that a query's range conditions on it may match."""

    path: Path
    path_id: int
    low: float
    high: float


def _widened(n: int | float, toward: float) -> float:
    # Clamped as stored numbers are, then one step outwards.
    return math.nextafter(float(stored(n)), toward)


def _ranges(conditions: tuple[Condition, ...]) -> list[Condition]:
    """The conditions on the first path that has range conditions with numeric values."""
    chosen: list[Condition] = []
    for cond in conditions:
        if cond.op not in ("gt", "gte", "lt", "lte") or cond.path[0] in UNINDEXED_ROOTS:
            continue
        if cond.values[0].number is None or (chosen and cond.path != chosen[0].path):
            continue
        chosen.append(cond)
    return chosen


def range_path(conditions: tuple[Condition, ...]) -> Path | None:
    """The path whose range the numbers index could answer for ``conditions``, if any (none
    beside an ``id`` equality, whose own index finds the few events it can match)."""
    if any(c.path == ("id",) and c.op in ("eq", "in") for c in conditions):
        return None
    chosen = _ranges(conditions)
    return chosen[0].path if chosen else None


def number_range(conditions: tuple[Condition, ...], single: bool) -> NumberRange | None:
    """The range of numbers at ``range_path(conditions)`` that holds every match, if any.

    ``single``: no event holds more than one number at the path; then the range is bounded
    by every range condition on it, else by the first alone (see the module's notes). Only
    numbers are meant: where the path holds strings, the range must not be used.
    """
    chosen = _ranges(conditions)
    if not chosen:
        return None
    low, high = -math.inf, math.inf
    for cond in chosen if single else chosen[:1]:
        number = cond.values[0].number
        assert number is not None
        if cond.op in ("gt", "gte"):
            low = max(low, _widened(number, -math.inf))
        else:
            high = min(high, _widened(number, math.inf))
    path = chosen[0].path
    return NumberRange(path, path_id(path), low, high)

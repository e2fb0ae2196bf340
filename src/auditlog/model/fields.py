"""Field paths and what a query condition means for one stored event.

A path is a tuple of segments (``("data", "location", "city")``). Walking a path steps into
objects by key; where a step lands on a JSON array, the next step applies to each element, and
the values found at the end are flattened, so ``data.items.sku`` reaches every ``sku`` in the
array ``items`` and a condition holds when any value found satisfies it.

This module is the definition of matching: the in-memory store filters with it and the SQLite
store calls it for the conditions its indexes cannot answer exactly, so every backend agrees.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

Op = Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "prefix", "exists"]
OPS: tuple[Op, ...] = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "prefix", "exists")
Path = tuple[str, ...]

_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


@dataclass(frozen=True, slots=True)
class Value:
    """A value from a query parameter, with the readings it may match under."""

    raw: str
    number: int | float | None

    @staticmethod
    def of(raw: str) -> Value:
        return Value(raw, read_number(raw))


def read_number(raw: str) -> int | float | None:
    """The number ``raw`` reads as, if it reads as a finite JSON number."""
    # Only JSON's spelling (leading zeros allowed): Python's int() and float() also take
    # "1_000", " 5 " and non-ASCII digits, which are strings here.
    if _NUMBER.fullmatch(raw) is None:
        return None
    try:
        if raw.lstrip("-").isdigit():
            return int(raw)
        number = float(raw)
    except ValueError:
        return None
    if number != number or number in (float("inf"), float("-inf")):
        return None
    return number


def nodes_at(obj: Any, path: Path) -> list[Any]:
    """The JSON values at ``path``; arrays met on the way are stepped through."""
    current = [obj]
    for i, segment in enumerate(path):
        found = [item[segment] for item in current if isinstance(item, dict) and segment in item]
        if i < len(path) - 1:
            found = list(_flatten(found))
        current = found
    return current


def values_at(obj: Any, path: Path) -> list[Any]:
    """The values at ``path`` with arrays flattened: what conditions compare against."""
    return list(_flatten(nodes_at(obj, path)))


def _flatten(values: list[Any]) -> Iterator[Any]:
    for v in values:
        if isinstance(v, list):
            yield from _flatten(v)
        else:
            yield v


_ORDERED: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "in": operator.eq,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


def scalar_matches(op: Op, field: Any, value: Value) -> bool:
    """Whether one JSON value (not an array) satisfies ``op`` against a query value.

    A number compares as a number when the query value reads as one; a string compares as a
    string (by code point); ``true``, ``false`` and ``null`` equal the JSON literals; objects
    never compare.
    """
    if isinstance(field, bool):
        return op in ("eq", "in") and value.raw == ("true" if field else "false")
    if field is None:
        return op in ("eq", "in") and value.raw == "null"
    if isinstance(field, int | float):
        if value.number is None:
            return False
        return _ORDERED[op](field, value.number) if op in _ORDERED else False
    if isinstance(field, str):
        if op == "prefix":
            return field.startswith(value.raw)
        return _ORDERED[op](field, value.raw) if op in _ORDERED else False
    return False


def condition_matches(obj: Any, path: Path, op: Op, values: tuple[Value, ...]) -> bool:
    """Whether the event ``obj`` satisfies one condition.

    ``exists`` takes one value, ``true`` or ``false``. ``ne`` holds when the field is present
    and none of its values equals the query value. Every other operator holds when any value
    at the path satisfies it (for ``in``, against any of the listed values).
    """
    if op == "exists":
        present = bool(nodes_at(obj, path))
        return present == (values[0].raw == "true")
    found = values_at(obj, path)
    if op == "ne":
        if not nodes_at(obj, path):
            return False
        return not any(scalar_matches("eq", f, values[0]) for f in found)
    return any(scalar_matches(op, f, v) for f in found for v in values)


def leaf_paths(obj: Any, prefix: Path = ()) -> Iterator[tuple[Path, Any]]:
    """Every (path, node) in ``obj``: objects, arrays and scalars, arrays stepped through.

    Array elements share their array's path. Used to build indexes whose entries mean exactly
    what ``condition_matches`` means.
    """
    if isinstance(obj, dict):
        for key, value in obj.items():
            path = (*prefix, key)
            yield path, value
            yield from _inner(value, path)
    elif isinstance(obj, list):
        for item in obj:
            yield from leaf_paths(item, prefix)


def _inner(value: Any, path: Path) -> Iterator[tuple[Path, Any]]:
    if isinstance(value, dict):
        yield from leaf_paths(value, path)
    elif isinstance(value, list):
        for item in _flatten(value):
            if isinstance(item, dict):
                yield from leaf_paths(item, path)
            else:
                yield path, item

"""One-dimensional arrays in PostgreSQL's binary format, made in a few C calls per column.

The group commit sends its new rows as one array per column (``events.py``, ``_APPEND``).
Given Python lists, psycopg picks a dumper for each list by looking at its elements and then
dumps element by element in Python: about 160 µs for a group of one event and 8 µs an
event for a group of 1,000 (``bench/RESULTS.md`` §19), for work that is a few ``struct``
calls. So the columns are encoded here, and handed to psycopg as values of types whose
dumpers pass the bytes on as they are, with the array's type.

The format (PostgreSQL's ``array_recv``): the number of dimensions (1), whether any element
is NULL, the elements' type, the length of the dimension and its lower bound (1), then each
element as its length in bytes (-1 for NULL) and its bytes, all integers big-endian.
An empty array is sent as zero dimensions.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import psycopg
from psycopg.abc import AdaptContext
from psycopg.adapt import Dumper
from psycopg.pq import Format

# The type ids of PostgreSQL's built-in types (pg_type.dat): element, array.
_INT4, _INT4_ARRAY = 23, 1007
_INT8, _INT8_ARRAY = 20, 1016
_TEXT, _TEXT_ARRAY = 25, 1009
_BYTEA, _BYTEA_ARRAY = 17, 1001

_HEADER = struct.Struct(">iiiii")
_EMPTY = struct.Struct(">iii")
_LENGTH = struct.Struct(">i").pack
_NULL = _LENGTH(-1)


def _header(element: int, count: int, nulls: bool) -> bytes:
    if not count:
        return _EMPTY.pack(0, 0, element)
    return _HEADER.pack(1, 1 if nulls else 0, element, count, 1)


def _numbers(values: Sequence[int], code: str, size: int) -> bytes:
    """Elements of one fixed size: each its length then its value (``code``: i or q)."""
    count = len(values)
    flat: list[int] = [size] * (2 * count)
    flat[1::2] = values
    return struct.pack(">" + ("i" + code) * count, *flat)


def _varying(values: Sequence[bytes | None]) -> tuple[bytes, bool]:
    parts: list[bytes] = []
    nulls = False
    for value in values:
        if value is None:
            parts.append(_NULL)
            nulls = True
        else:
            parts.append(_LENGTH(len(value)))
            parts.append(value)
    return b"".join(parts), nulls


class Int4Array(bytes):
    """An ``int4[]`` in PostgreSQL's binary format."""


class Int8Array(bytes):
    """An ``int8[]`` in PostgreSQL's binary format."""


class TextArray(bytes):
    """A ``text[]`` in PostgreSQL's binary format."""


class ByteaArray(bytes):
    """A ``bytea[]`` in PostgreSQL's binary format."""


def int4_array(values: Sequence[int]) -> Int4Array:
    """``values`` (each from -2**31 to 2**31 - 1) as an ``int4[]``."""
    return Int4Array(_header(_INT4, len(values), False) + _numbers(values, "i", 4))


def int8_array(values: Sequence[int]) -> Int8Array:
    """``values`` (each from -2**63 to 2**63 - 1) as an ``int8[]``."""
    return Int8Array(_header(_INT8, len(values), False) + _numbers(values, "q", 8))


def text_array(values: Sequence[str | None]) -> TextArray:
    """``values`` as a ``text[]``; ``None`` is NULL. No string may hold NUL (PostgreSQL's
    text cannot): the caller replaces it (``rows.envelope``)."""
    body, nulls = _varying([None if v is None else v.encode() for v in values])
    return TextArray(_header(_TEXT, len(values), nulls) + body)


def bytea_array(values: Sequence[bytes]) -> ByteaArray:
    """``values`` as a ``bytea[]``."""
    body, nulls = _varying(values)
    return ByteaArray(_header(_BYTEA, len(values), nulls) + body)


class _PassedOn(Dumper):
    """Sends the bytes of a value as they are, in binary, as the array type of its class.

    The type is set on each dumper made, not on the class: a dumper class with a type is also
    registered as that type's dumper for any value (``Copy.set_types`` takes it so)."""

    format = Format.BINARY

    def __init__(self, cls: type, context: AdaptContext | None = None) -> None:
        super().__init__(cls, context)
        self.oid = _OIDS[cls]

    def dump(self, obj: bytes) -> bytes:
        return obj


_OIDS: dict[type, int] = {
    Int4Array: _INT4_ARRAY,
    Int8Array: _INT8_ARRAY,
    TextArray: _TEXT_ARRAY,
    ByteaArray: _BYTEA_ARRAY,
}
for _array in _OIDS:
    psycopg.adapters.register_dumper(_array, _PassedOn)

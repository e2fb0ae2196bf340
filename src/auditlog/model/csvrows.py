"""Stored events as CSV rows (API.md §10): the columns, the cells, and the formula guard.

RFC 4180: a header row, CRLF line ends, cells quoted when they hold a comma, a quote or a
line break. The fixed columns are the envelope and ``data`` as compact JSON; ``columns=``
adds field paths, each cell holding the value found there: a string as it is, any other JSON
value compactly, several values (through arrays) as a JSON array, nothing when absent.

A spreadsheet runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a formula, and
some also one that starts with a tab or a carriage return (OWASP's CSV injection). Audit data
is written by other systems' users, so every such cell is written with a leading ``'``: a
reader sees the text, never a formula. The ``data`` column is always a JSON object and never
starts so.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from typing import Any

import orjson

from auditlog.errors import BadRequest
from auditlog.model.fields import Path, nodes_at
from auditlog.model.query import parse_path

FIXED: tuple[str, ...] = (
    "seq",
    "id",
    "time",
    "received_at",
    "type",
    "actor.id",
    "actor.type",
    "actor.name",
    "subject.id",
    "subject.type",
    "subject.name",
    "source",
    "outcome",
    "data",
)
_FIXED_PATHS: tuple[Path, ...] = tuple(tuple(name.split(".")) for name in FIXED)
_DANGEROUS = ("=", "+", "-", "@", "\t", "\r")
_DANGEROUS_FIRST = frozenset(_DANGEROUS)
#: Characters (besides the comma) that make a cell need quotes.
_NEEDS_QUOTES = re.compile('["\r\n]')
#: Most extra columns one export may ask for.
MAX_COLUMNS = 64


def parse_columns(raw: str | None) -> tuple[Path, ...]:
    """``columns=data.a.b,data.c``: field paths, validated as §3 validates them."""
    if raw is None or raw == "":
        return ()
    names = raw.split(",")
    if len(names) > MAX_COLUMNS:
        raise BadRequest(f"parameter 'columns': more than {MAX_COLUMNS} columns")
    return tuple(parse_path(name.strip(), "columns") for name in names)


def guard(cell: str) -> str:
    """A cell a spreadsheet would run as a formula, made text with a leading ``'``."""
    return "'" + cell if cell.startswith(_DANGEROUS) else cell


def _text(value: Any) -> str:
    """One field's cell: a string as it is, nothing for a field absent, else compact JSON."""
    if value is None:
        return ""
    if type(value) is str:
        return value
    return orjson.dumps(value).decode()


def _quoted(cell: str) -> str:
    """A cell as RFC 4180 writes it: in quotes (each doubled) when it holds a comma, a quote
    or a line break, as the csv module's minimal quoting does."""
    if '"' not in cell and "," not in cell and "\n" not in cell and "\r" not in cell:
        return cell
    return '"' + cell.replace('"', '""') + '"'


def _cell(nodes: list[Any]) -> str:
    if not nodes:
        return ""
    value = nodes[0] if len(nodes) == 1 else nodes
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


class CsvWriter:
    """Turns stored events into CSV text, a header first; ``extra`` are the added paths."""

    def __init__(self, extra: Sequence[Path] = ()) -> None:
        self._paths = (*_FIXED_PATHS, *extra)
        self._extra = tuple(extra)
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, lineterminator="\r\n")

    def header(self) -> bytes:
        return self._take([".".join(path) for path in self._paths])

    def rows(self, bodies: Sequence[bytes]) -> bytes:
        """The rows of ``bodies`` (stored events), as UTF-8."""
        extra = self._extra
        lines: list[str] = []
        for body in bodies:
            event = orjson.loads(body)
            # The fixed columns read straight from the envelope (what nodes_at would find:
            # it walks no array there); the added paths walk like any condition does.
            get = event.get
            actor = get("actor")
            subject = get("subject")
            if not isinstance(actor, dict):
                actor = {}
            if not isinstance(subject, dict):
                subject = {}
            raw = [
                get("seq"),
                get("id"),
                get("time"),
                get("received_at"),
                get("type"),
                actor.get("id"),
                actor.get("type"),
                actor.get("name"),
                subject.get("id"),
                subject.get("type"),
                subject.get("name"),
                get("source"),
                get("outcome"),
                get("data"),
            ]
            raw += [_cell(nodes_at(event, path)) for path in extra]
            # One pass, no call for the common cell (a string): the guard applied inline.
            cells = [
                ("'" + v if v[:1] in _DANGEROUS_FIRST else v) if type(v) is str else guard(_text(v))
                for v in raw
            ]
            # Most cells need no quotes: join them directly, and leave to the csv module only
            # the rows where one does (``data``, JSON, almost always needs them: quoted here).
            plain = ",".join(cells[:13])
            if plain.count(",") == 12 and _NEEDS_QUOTES.search(plain) is None:
                rest = [_quoted(cell) for cell in cells[13:]]
                lines.append(plain + "," + ",".join(rest) + "\r\n")
            else:
                self._writer.writerow(cells)
                lines.append(self._flush_text())
        return "".join(lines).encode("utf-8")

    def _take(self, row: list[str]) -> bytes:
        self._writer.writerow([guard(cell) for cell in row])
        return self._flush()

    def _flush(self) -> bytes:
        return self._flush_text().encode("utf-8")

    def _flush_text(self) -> str:
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return text

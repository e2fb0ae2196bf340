"""CSV rows of stored events (``auditlog.model.csvrows``): read back with a real CSV reader,
the formula guard on every cell, the added columns."""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditlog.errors import BadRequest
from auditlog.model.csvrows import FIXED, MAX_COLUMNS, CsvWriter, guard, parse_columns
from auditlog.model.fields import nodes_at

DANGEROUS = ("=", "+", "-", "@", "\t", "\r")


def read(text: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text.decode("utf-8"), newline="")))


def stored(**fields: Any) -> bytes:
    event = {"seq": 0, "id": "e", "time": "t", "received_at": "r", "type": "x", "data": {}}
    event.update(fields)
    return orjson.dumps(event, option=orjson.OPT_SORT_KEYS)


@given(st.text())
def test_a_guarded_cell_never_starts_a_formula_and_keeps_its_text(cell: str) -> None:
    guarded = guard(cell)
    assert not guarded.startswith(DANGEROUS)
    assert guarded in (cell, "'" + cell)
    assert (guarded != cell) == cell.startswith(DANGEROUS)


@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(["a", "b", "c"]),
            st.one_of(
                st.text(),
                st.integers(-(2**63), 2**63 - 1),
                st.floats(allow_nan=False, allow_infinity=False),
                st.none(),
            ),
        ),
        max_size=5,
    )
)
def test_rows_read_back_with_a_csv_reader(datas: list[dict[str, Any]]) -> None:
    writer = CsvWriter([("data", "a"), ("data", "b")])
    text = writer.header() + writer.rows(
        [stored(seq=i, data=data, type=f"t{i}") for i, data in enumerate(datas)]
    )
    assert text.endswith(b"\r\n")
    rows = read(text)
    assert rows[0] == [*FIXED, "data.a", "data.b"]
    assert len(rows) == len(datas) + 1
    for i, (row, data) in enumerate(zip(rows[1:], datas, strict=True)):
        assert row[0] == str(i)
        assert orjson.loads(row[FIXED.index("data")]) == data
        for column, key in ((-2, "a"), (-1, "b")):
            value = data.get(key, ...)
            if value is ...:
                assert row[column] == ""
            elif isinstance(value, str):
                assert row[column] == guard(value)
            else:
                assert row[column] == guard(orjson.dumps(value).decode())


def test_fixed_columns_of_an_event_without_subject_or_outcome() -> None:
    writer = CsvWriter()
    text = writer.rows([stored(actor={"id": "a", "type": "user"}, source="s")])
    (row,) = read(text)
    named = dict(zip(FIXED, row, strict=True))
    assert named["actor.id"] == "a"
    assert named["actor.type"] == "user"
    assert named["actor.name"] == ""
    assert named["subject.id"] == ""
    assert named["outcome"] == ""
    assert named["data"] == "{}"


def test_parse_columns() -> None:
    assert parse_columns(None) == ()
    assert parse_columns("") == ()
    assert parse_columns("data.a.b, data.c,actor.name") == (
        ("data", "a", "b"),
        ("data", "c"),
        ("actor", "name"),
    )
    for bad in ("data.a b", "nope", "data..a", ",".join(["data.a"] * (MAX_COLUMNS + 1))):
        with pytest.raises(BadRequest, match="columns"):
            parse_columns(bad)


def reference_rows(bodies: list[bytes], extra: list[tuple[str, ...]]) -> bytes:
    """The rows by the definition: every column read with ``nodes_at``, every cell guarded,
    written by the csv module."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    paths = [tuple(name.split(".")) for name in FIXED] + extra
    for body in bodies:
        event = orjson.loads(body)
        cells = []
        for path in paths:
            nodes = nodes_at(event, path)
            value = "" if not nodes else nodes[0] if len(nodes) == 1 else nodes
            cells.append(guard(value if isinstance(value, str) else orjson.dumps(value).decode()))
        writer.writerow(cells)
    return buffer.getvalue().encode()


texts = st.text(alphabet=st.sampled_from(list('ab,"\r\n=+-@\t é')), max_size=8)
parties = st.one_of(
    st.none(),
    st.fixed_dictionaries({"id": texts}, optional={"type": texts, "name": texts}),
)


@given(
    st.lists(
        st.fixed_dictionaries(
            {"id": texts, "type": texts, "time": texts, "actor": parties},
            optional={
                "subject": parties,
                "source": texts,
                "outcome": st.sampled_from(["success", "failure"]),
                "data": st.dictionaries(
                    st.sampled_from(["a", "b"]),
                    st.one_of(texts, st.integers(-(2**63), 2**63 - 1), st.lists(texts)),
                ),
            },
        ),
        max_size=6,
    )
)
def test_rows_are_what_the_csv_module_writes_of_each_column(events: list[dict[str, Any]]) -> None:
    extra = [("data", "a"), ("data", "b")]
    bodies = [
        stored(seq=i, **{k: v for k, v in e.items() if v is not None}) for i, e in enumerate(events)
    ]
    assert CsvWriter(extra).rows(bodies) == reference_rows(bodies, extra)

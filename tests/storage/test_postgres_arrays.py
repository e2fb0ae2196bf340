"""The group commit's columns as binary arrays (``storage.postgres.arrays``), read back by
PostgreSQL itself: every value, NULL, empty array and extreme comes back as it was sent, and
as psycopg's own dumping of the same list sends it. Needs ``AUDITLOG_TEST_POSTGRES_URL``."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pgtest
from auditlog.storage.postgres import arrays

INT4 = st.integers(-(2**31), 2**31 - 1)
INT8 = st.integers(-(2**63), 2**63 - 1)
TEXT = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)))


@pytest.fixture(scope="module")
def conn() -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(pgtest.require(), autocommit=True) as connection:
        yield connection


def back(conn: psycopg.Connection[Any], cast: str, value: object) -> Any:
    """``value`` sent as a parameter of type ``cast``, as PostgreSQL reads it."""
    row = conn.execute(f"SELECT %b::{cast}", (value,)).fetchone()
    assert row is not None
    return row[0]


def test_each_kind_of_array_reads_back_as_sent(conn: psycopg.Connection[Any]) -> None:
    assert back(conn, "int4[]", arrays.int4_array([0, -1, 2**31 - 1, -(2**31)])) == [
        0,
        -1,
        2**31 - 1,
        -(2**31),
    ]
    assert back(conn, "int8[]", arrays.int8_array([2**63 - 1, -(2**63), 7])) == [
        2**63 - 1,
        -(2**63),
        7,
    ]
    texts = ["a", None, "", "Zürich €", "\U0001f600", "x" * 5000]
    assert back(conn, "text[]", arrays.text_array(texts)) == texts
    blobs = [b"\x00", b"", b"\xff" * 3, bytes(range(256))]
    assert back(conn, "bytea[]", arrays.bytea_array(blobs)) == blobs
    for encode, cast in (
        (arrays.int4_array, "int4[]"),
        (arrays.int8_array, "int8[]"),
        (arrays.text_array, "text[]"),
        (arrays.bytea_array, "bytea[]"),
    ):
        assert back(conn, cast, encode([])) == []
    # The type is the array's, whatever the statement casts to.
    row = conn.execute("SELECT pg_typeof(%b)::text", (arrays.text_array(["a"]),)).fetchone()
    assert row == ("text[]",)


def test_an_out_of_range_integer_is_refused_before_it_is_sent() -> None:
    with pytest.raises(struct.error):
        arrays.int4_array([2**31])


@settings(max_examples=150, deadline=None)
@given(
    st.lists(INT4, max_size=40),
    st.lists(INT8, max_size=40),
    st.lists(st.none() | TEXT, max_size=40),
    st.lists(st.binary(max_size=50), max_size=40),
)
def test_arrays_agree_with_psycopgs_own_dumping(
    conn: psycopg.Connection[Any],
    int4s: list[int],
    int8s: list[int],
    texts: list[str | None],
    blobs: list[bytes],
) -> None:
    ours = conn.execute(
        "SELECT %b::int4[], %b::int8[], %b::text[], %b::bytea[]",
        (
            arrays.int4_array(int4s),
            arrays.int8_array(int8s),
            arrays.text_array(texts),
            arrays.bytea_array(blobs),
        ),
    ).fetchone()
    theirs = conn.execute(
        "SELECT %b::int4[], %b::int8[], %b::text[], %b::bytea[]", (int4s, int8s, texts, blobs)
    ).fetchone()
    assert ours == theirs == (int4s, int8s, texts, blobs)


def test_lists_are_still_dumped_by_psycopg_where_the_type_is_known(
    conn: psycopg.Connection[Any],
) -> None:
    """The dumpers of these types are registered for their classes only: a binary COPY told
    that a column is ``text[]`` (as the search indexer's is) still takes a plain list."""
    conn.execute("CREATE TEMPORARY TABLE copied (words text[], seqs int8[])")
    with conn.cursor() as cur, cur.copy("COPY copied FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["text[]", "int8[]"])
        copy.write_row((["a", "b"], [1, 2]))
    assert conn.execute("SELECT words, seqs FROM copied").fetchall() == [(["a", "b"], [1, 2])]

"""The SQLite query plans: every statement the compiler makes reads in key order from the
index it was written for, and never sorts a whole tenant (EXPLAIN QUERY PLAN)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from auditlog.model.query import parse_query
from auditlog.storage.sqlite import querysql
from auditlog.storage.sqlite.store import SQLiteStore

pytestmark = pytest.mark.anyio


def plans(conn: sqlite3.Connection, *pairs: tuple[str, str], indexed_upto: int = 5) -> list[str]:
    query, _ = parse_query(list(pairs))
    compiled = querysql.compile_query("acme", 1, query, indexed_upto)
    out = []
    for sql, params in compiled.statements:
        rows = conn.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
        out.append(" | ".join(str(r[3]) for r in rows))
    return out


@pytest.fixture
async def conn(tmp_path: Path) -> sqlite3.Connection:
    store = SQLiteStore(str(tmp_path / "a.db"))
    await store.open()
    await store.close()
    connection = sqlite3.connect(str(tmp_path / "a.db"))
    connection.execute("ATTACH DATABASE ? AS t", (str(tmp_path / "a.db-terms"),))
    connection.create_function("al_match", 2, lambda body, spec: 1)
    return connection


@pytest.mark.parametrize(
    "pairs",
    [
        (),
        (("since", "2026-01-01T00:00:00Z"),),
        (("seq[gte]", "3"),),
        (("data.note[exists]", "false"),),  # holds where the path is absent: no token
        (("order", "asc"), ("actor.name[prefix]", "a")),
    ],
)
async def test_walks_read_the_primary_key_in_order(
    conn: sqlite3.Connection, pairs: tuple[tuple[str, str], ...]
) -> None:
    for plan in plans(conn, *pairs):
        assert "USING INTEGER PRIMARY KEY" in plan, plan
        assert "VIRTUAL TABLE" not in plan, plan
        assert "TEMP B-TREE" not in plan, plan


@pytest.mark.parametrize(
    "pairs",
    [
        (("q", "refund"),),
        (("data.location.city", "Seattle"),),
        (("actor", "alice"), ("type", "t")),
        (("q", "ref*"), ("since", "2026-01-01T00:00:00Z"), ("order", "asc")),
        # A condition on a data path that only events holding the path match: its exists token.
        (("data.amount[gt]", "5"),),
        (("data.message[prefix]", "pay"), ("order", "asc")),
        (("data.amount[ne]", "5"), ("type", "t")),
    ],
)
async def test_token_conditions_drive_from_the_search_index_and_check_the_tail(
    conn: sqlite3.Connection, pairs: tuple[tuple[str, str], ...]
) -> None:
    found = plans(conn, *pairs)
    assert len(found) == 2
    index_plan = next(p for p in found if "VIRTUAL TABLE" in p)
    tail_plan = next(p for p in found if "VIRTUAL TABLE" not in p)
    assert "SEARCH e USING INTEGER PRIMARY KEY (rowid=?)" in index_plan, index_plan
    assert "USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)" in tail_plan, tail_plan
    for plan in found:
        assert "TEMP B-TREE" not in plan, plan


@pytest.mark.parametrize(
    "pairs", [(), (("data.amount[gt]", "5"),), (("since", "2026-01-01T00:00:00Z"),)]
)
async def test_an_id_reads_the_id_index(
    conn: sqlite3.Connection, pairs: tuple[tuple[str, str], ...]
) -> None:
    (plan,) = plans(conn, ("id", "e1"), *pairs)
    assert "USING INDEX events_id" in plan, plan


@pytest.mark.parametrize(
    "pairs",
    [(("type", "a"),), (("type", "a"), ("type", "b"), ("until", "2026-01-01T00:00:00Z"))],
)
async def test_types_read_the_type_index_in_key_order(
    conn: sqlite3.Connection, pairs: tuple[tuple[str, str], ...]
) -> None:
    for plan in plans(conn, *pairs):
        assert "USING INDEX events_type" in plan or "USING COVERING INDEX events_type" in plan
        assert "TEMP B-TREE" not in plan, plan


@pytest.mark.parametrize(
    "pairs", [(), (("q", "refund"),), (("data.amount[gt]", "5"),), (("data.k", "v"),)]
)
async def test_a_narrow_time_range_reads_the_time_index(
    conn: sqlite3.Connection, pairs: tuple[tuple[str, str], ...]
) -> None:
    """Whatever else drives the page, a time range holding few events may: it is offered."""
    query, _ = parse_query(
        [("since", "2026-01-01T00:00:00Z"), ("until", "2026-01-02T00:00:00Z"), *pairs]
    )
    compiled = querysql.compile_query("acme", 1, query, 0)
    (narrow,) = compiled.narrows
    assert narrow.kind == "time"
    ((sql, params),) = narrow.plan.statements
    plan = " | ".join(str(r[3]) for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params))
    assert "events_time" in plan, plan


@pytest.mark.parametrize(
    "pairs",
    [
        (("data.amount[gt]", "5"),),
        (("data.amount[gte]", "5"), ("data.amount[lt]", "9"), ("order", "asc")),
        (("data.amount[lt]", "5"), ("type", "invoice")),
        (("data.amount[lt]", "5"), ("q", "refund"), ("since", "2026-01-01T00:00:00Z")),
    ],
)
async def test_a_numeric_range_reads_the_numbers_index(
    conn: sqlite3.Connection, pairs: tuple[tuple[str, str], ...]
) -> None:
    query, _ = parse_query(list(pairs))
    compiled = querysql.compile_query("acme", 1, query, 5, frozenset())
    narrow = compiled.narrows[0]
    assert narrow.kind == "numbers"
    probe = " | ".join(
        str(r[3]) for r in conn.execute("EXPLAIN QUERY PLAN " + narrow.probe[0], narrow.probe[1])
    )
    assert "SEARCH n USING PRIMARY KEY (tenant_id=? AND path=? AND v>? AND v<?)" in probe, probe
    tail, indexed = (
        narrow.plan.statements if query.order == "desc" else narrow.plan.statements[::-1]
    )
    tail_plan = " | ".join(
        str(r[3]) for r in conn.execute("EXPLAIN QUERY PLAN " + tail[0], tail[1])
    )
    assert "USING INTEGER PRIMARY KEY" in tail_plan, tail_plan
    assert "TEMP B-TREE" not in tail_plan, tail_plan
    plan = " | ".join(
        str(r[3]) for r in conn.execute("EXPLAIN QUERY PLAN " + indexed[0], indexed[1])
    )
    # Events fetched by key from the range's keys (at most NUMBER_CANDIDATES of them).
    assert "SEARCH n USING PRIMARY KEY (tenant_id=? AND path=? AND v>? AND v<?)" in plan, plan
    assert "SEARCH e USING INTEGER PRIMARY KEY (rowid=?)" in plan, plan


async def test_only_numbers_in_a_range_take_the_numbers_index(conn: sqlite3.Connection) -> None:
    for pairs in (
        [("data.name[gt]", "m")],
        [("data.amount[prefix]", "5")],
        [("data.amount[ne]", "5")],
        [("time[gt]", "5")],
        [("seq[gt]", "5")],
        [("data.amount", "5")],
    ):
        query, _ = parse_query(pairs)
        compiled = querysql.compile_query("acme", 1, query, 5, frozenset())
        assert [n.kind for n in compiled.narrows if n.kind == "numbers"] == [], pairs
    # Nor a path that holds strings somewhere.
    query, _ = parse_query([("data.amount[gt]", "5")])
    compiled = querysql.compile_query("acme", 1, query, 5, frozenset({"s"}))
    assert [n.kind for n in compiled.narrows] == []

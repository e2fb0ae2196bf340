"""SQLite pruning beyond the contract: the search index loses exactly the entries of swept
events (and stays sound), the indexer never indexes below what pruning removed, and the
space freed goes back to the file system."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from auditlog.storage.sqlite import database, indexer, querysql
from auditlog.storage.sqlite.store import SQLiteStore
from storage.test_contract import append_ok, checkpoint_of, event, query_of, seqs, walk

pytestmark = pytest.mark.anyio


def _terms(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(database.terms_path(str(path)))


def _index_counts(path: Path, tenant_id: int, below: int) -> tuple[int, int]:
    """(full-text rows, numbers rows) of the tenant's events with a seq below ``below``."""
    conn = _terms(path)
    try:
        low, high = querysql.key_of(tenant_id, 0), querysql.key_of(tenant_id, below)
        words = conn.execute(
            "SELECT count(*) FROM events_terms WHERE events_terms MATCH 'wmarmalade'"
            " AND rowid >= ? AND rowid < ?",
            (low, high),
        ).fetchone()[0]
        numbers = conn.execute(
            "SELECT count(*) FROM numbers WHERE tenant_id = ? AND key >= ? AND key < ?",
            (tenant_id, low, high),
        ).fetchone()[0]
        conn.execute("INSERT INTO events_terms (events_terms) VALUES ('integrity-check')")
        return int(words), int(numbers)
    finally:
        conn.close()


async def _store(tmp_path: Path, n: int, data: dict[str, object] | None = None) -> SQLiteStore:
    store = SQLiteStore(str(tmp_path / "audit.db"))
    await store.open()
    for start in range(0, n, 500):
        await append_ok(
            store,
            "acme",
            *(
                event(id=f"e{i}", data=data or {"n": i, "note": "marmalade"})
                for i in range(start, min(n, start + 500))
            ),
        )
    await store.add_checkpoint("acme", checkpoint_of(n))
    return store


async def test_a_sweep_removes_the_index_entries_of_the_events_it_removes(tmp_path: Path) -> None:
    store = await _store(tmp_path, 40)
    try:
        store.index_pending()
        assert _index_counts(tmp_path / "audit.db", 1, 40) == (40, 40)
        assert await store.prune_to("acme", 25) == 25
        while await store.sweep("acme", 7):
            pass
        assert _index_counts(tmp_path / "audit.db", 1, 25) == (0, 0)
        assert _index_counts(tmp_path / "audit.db", 1, 40) == (15, 15)
        found = await walk(store, "acme", query_of(("order", "asc"), ("q", "marmalade")))
        assert seqs(found) == list(range(25, 40))
        ranged = await walk(store, "acme", query_of(("order", "asc"), ("data.n[gte]", "20")))
        assert seqs(ranged) == list(range(25, 40))
    finally:
        await store.close()


async def test_events_pruned_before_the_indexer_reached_them_are_never_indexed(
    tmp_path: Path,
) -> None:
    store = await _store(tmp_path, 30)
    try:
        store.index_pending()  # 0..29 indexed
        await append_ok(store, "acme", *(event(id=f"x{i}", data={"n": i}) for i in range(10)))
        await store.add_checkpoint("acme", checkpoint_of(40))
        assert await store.prune_to("acme", 35) == 35  # 30..34 were never indexed
        while await store.sweep("acme", 8):
            pass
        store.index_pending()
        assert _index_counts(tmp_path / "audit.db", 1, 35) == (0, 0)
        found = await walk(store, "acme", query_of(("order", "asc"), ("data.n[gte]", "0")))
        assert seqs(found) == list(range(35, 40))
    finally:
        await store.close()


async def test_a_crash_between_the_index_and_the_rows_is_finished_by_the_next_sweep(
    tmp_path: Path,
) -> None:
    store = await _store(tmp_path, 20)
    try:
        store.index_pending()
        assert await store.prune_to("acme", 10) == 10
        await store._on_pool(store._unindex_here, 100)
        # The process dies here: entries gone, rows still there (below the horizon).
    finally:
        await store.close()
    store = SQLiteStore(str(tmp_path / "audit.db"))
    await store.open()
    try:
        assert await store.get_event("acme", "e3") is None
        assert await store.sweep("acme", 100) == 10
        assert await store.sweep("acme", 100) == 0
        assert _index_counts(tmp_path / "audit.db", 1, 20) == (10, 10)
    finally:
        await store.close()


async def test_the_space_freed_goes_back_to_the_file_system(tmp_path: Path) -> None:
    store = await _store(tmp_path, 3000, {"blob": "x" * 2000})
    try:
        await store.prune_to("acme", 2900)
        while await store.sweep("acme", 500):
            pass
        before = os.path.getsize(tmp_path / "audit.db")
        freed = await store.reclaim_space()
        assert freed > 4_000_000
        await store._write(lambda: store._w().execute("PRAGMA wal_checkpoint(TRUNCATE)"))
        assert os.path.getsize(tmp_path / "audit.db") < before - 4_000_000
        assert await store.reclaim_space() == 0
        assert seqs(await walk(store, "acme", query_of(("order", "asc")))) == list(
            range(2900, 3000)
        )
    finally:
        await store.close()


async def test_the_search_index_shrinks_once_pruned_entries_are_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(indexer, "OPTIMIZE_AFTER", 100)
    words = " ".join(f"word{i}" for i in range(60))
    store = await _store(tmp_path, 3000, {"note": words, "n": 1})
    terms_file = tmp_path / "audit.db-terms"

    def size() -> int:
        conn = _terms(tmp_path / "audit.db")
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
        return os.path.getsize(terms_file)

    try:
        store.index_pending()
        before = size()
        assert await store.prune_to("acme", 2900) == 2900
        while await store.sweep("acme", 500):
            pass
        assert await store.reclaim_space() > 0
        assert size() < before / 4
        found = await walk(store, "acme", query_of(("order", "asc"), ("q", "word7")))
        assert seqs(found) == list(range(2900, 3000))
        assert _index_counts(tmp_path / "audit.db", 1, 2900) == (0, 0)
    finally:
        await store.close()

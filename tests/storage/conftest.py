"""The ``store`` fixture: every backend that must pass the storage contract suite.

A backend joins the suite by adding one entry to ``BACKENDS``: a name and an async factory
that takes pytest's ``tmp_path`` and returns an unopened store. The fixture opens it, hands it
to the test and closes it afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import pytest

import pgtest
from auditlog.storage.base import AppendOutcome, AppendRequest, Store
from auditlog.storage.memory import MemoryStore
from auditlog.storage.postgres.store import PostgresStore
from auditlog.storage.sqlite.store import SQLiteStore

StoreFactory = Callable[[Path], Awaitable[Store]]


async def _memory(tmp_path: Path) -> Store:
    return MemoryStore()


async def _sqlite(tmp_path: Path) -> Store:
    """SQLite with its search index left empty: every query checks events one by one."""
    return SQLiteStore(str(tmp_path / "audit.db"))


class _IndexedSQLite(SQLiteStore):
    """SQLite whose search index is brought up to date after every append, so that queries
    go through the index (the indexer process does the same in a running service)."""

    async def append(self, requests: Sequence[AppendRequest]) -> list[AppendOutcome]:
        outcomes = await super().append(requests)
        self.index_pending()
        return outcomes


async def _sqlite_indexed(tmp_path: Path) -> Store:
    store = _IndexedSQLite(str(tmp_path / "audit.db"))
    # Small logs make every time range "narrow"; this variant takes the other plan.
    store.narrow_events = 0
    return store


async def _postgres(tmp_path: Path) -> Store:
    """PostgreSQL (``AUDITLOG_TEST_POSTGRES_URL``), in this test process's own schema, its
    search index left empty: every query checks events one by one."""
    return PostgresStore(pgtest.fresh_url())


class _IndexedPostgres(PostgresStore):
    """PostgreSQL whose search index is brought up to date after every append, so that
    queries go through its GIN indexes (the indexer process does the same in a service)."""

    async def append(self, requests: Sequence[AppendRequest]) -> list[AppendOutcome]:
        outcomes = await super().append(requests)
        self.index_pending()
        return outcomes


async def _postgres_indexed(tmp_path: Path) -> Store:
    return _IndexedPostgres(pgtest.fresh_url(1))


BACKENDS: dict[str, StoreFactory] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "sqlite-indexed": _sqlite_indexed,
    "postgres": _postgres,
    "postgres-indexed": _postgres_indexed,
}


@pytest.fixture(params=sorted(BACKENDS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """A fresh, opened store of each backend in turn."""
    backend = await BACKENDS[request.param](tmp_path)
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()

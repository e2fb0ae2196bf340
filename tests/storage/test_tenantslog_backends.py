"""The tenants log on the SQL backends beyond the contract: a database made before it gains
every checkpoint it holds as the first leaves, and PostgreSQL processes adding checkpoints at
once keep its indexes gap-free."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest

import pgtest
from auditlog.storage.base import StoredCheckpoint, TenantsLeaf
from auditlog.storage.postgres import database as pgdatabase
from auditlog.storage.postgres.store import PostgresStore
from auditlog.storage.sqlite import database as sqlitedatabase
from auditlog.storage.sqlite.store import SQLiteStore
from storage.test_contract_tenantslog import add_many_at_once, check_gap_free

pytestmark = pytest.mark.anyio

#: The last migration before the tenants log, of each backend.
SQLITE_BEFORE = 7
POSTGRES_BEFORE = 6

#: Checkpoints stored by an older version: (tenant, size, timestamp_us), in no useful order.
OLD = [
    ("beta", 2, 300),
    ("acme", 1, 100),
    ("beta", 1, 100),  # the same time as acme's: acme has the smaller tenant id
    ("acme", 4, 300),  # the same time as beta's 2: by tenant id, acme's first
    ("acme", 2, 200),
    ("gamma", 9, 50),
]
#: Their leaves, as the migration orders them (acme is tenant 1, beta 2, gamma 3).
OLD_ORDER = [("gamma", 9), ("acme", 1), ("beta", 1), ("acme", 2), ("acme", 4), ("beta", 2)]


def old_checkpoint(size: int, when: int) -> StoredCheckpoint:
    return StoredCheckpoint(size, bytes([size]) * 32, when, f"old note {size}\n")


def old_leaves() -> list[TenantsLeaf]:
    when = {(t, size): at for t, size, at in OLD}
    return [
        TenantsLeaf(i, t, old_checkpoint(size, when[(t, size)]))
        for i, (t, size) in enumerate(OLD_ORDER)
    ]


async def check_upgraded(store: PostgresStore | SQLiteStore) -> None:
    assert await store.read_tenants_leaves(0, 100) == old_leaves()
    assert await store.tenants_leaf("acme", 100) == old_leaves()[4]
    # The next checkpoint stored takes the next index.
    assert await store.add_checkpoint("beta", old_checkpoint(3, 400))
    assert await store.add_checkpoint("delta", old_checkpoint(1, 400))
    leaves = await store.read_tenants_leaves(len(OLD), 100)
    assert [(x.index, x.tenant, x.checkpoint.size) for x in leaves] == [
        (len(OLD), "beta", 3),
        (len(OLD) + 1, "delta", 1),
    ]


async def test_a_sqlite_database_made_before_the_tenants_log_gains_its_checkpoints(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "old.db")
    conn = sqlite3.connect(path, isolation_level=None)
    for number, sql in sqlitedatabase.migrations("events"):
        if number <= SQLITE_BEFORE:
            for statement in sql.split(";\n"):
                if statement.strip():
                    conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {SQLITE_BEFORE}")
    for name in ("acme", "beta", "gamma"):
        conn.execute("INSERT INTO tenants (name, size) VALUES (?, 10)", (name,))
    for tenant, size, when in OLD:
        c = old_checkpoint(size, when)
        conn.execute(
            "INSERT INTO checkpoints (tenant_id, size, root_hash, timestamp_us, note)"
            " VALUES ((SELECT tenant_id FROM tenants WHERE name = ?), ?, ?, ?, ?)",
            (tenant, c.size, c.root_hash, c.timestamp_us, c.note),
        )
    conn.close()
    store = SQLiteStore(path)
    await store.open()
    try:
        await check_upgraded(store)
    finally:
        await store.close()
    conn = sqlite3.connect(path)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()
    assert version == max(n for n, _ in sqlitedatabase.migrations("events"))


async def test_a_postgres_schema_made_before_the_tenants_log_gains_its_checkpoints(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = pgtest.private_url()
    every = pgdatabase.migrations()
    monkeypatch.setattr(
        pgdatabase, "migrations", lambda: [m for m in every if m[0] <= POSTGRES_BEFORE]
    )
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        assert await pgdatabase.migrate(conn) == list(range(1, POSTGRES_BEFORE + 1))
        for name in ("acme", "beta", "gamma"):
            await conn.execute("INSERT INTO tenants (name, next_seq) VALUES (%s, 10)", (name,))
        for tenant, size, when in OLD:
            c = old_checkpoint(size, when)
            await conn.execute(
                "INSERT INTO checkpoints (tenant_id, size, root_hash, timestamp_us, note)"
                " VALUES ((SELECT tenant_id FROM tenants WHERE name = %s), %s, %s, %s, %s)",
                (tenant, c.size, c.root_hash, c.timestamp_us, c.note),
            )
    monkeypatch.setattr(pgdatabase, "migrations", lambda: every)
    store = PostgresStore(url)
    await store.open()
    try:
        await check_upgraded(store)
    finally:
        await store.close()


async def test_two_postgres_processes_adding_checkpoints_keep_indexes_gap_free() -> None:
    """Two stores (two pools, as two service processes) add checkpoints of many tenants at
    once, each offered twice: every stored one has one leaf, and the indexes have no gap."""
    url = pgtest.fresh_url()
    stores = [PostgresStore(url), PostgresStore(url)]
    for s in stores:
        await s.open()
    try:
        await add_many_at_once(list(stores), tenants=10, rounds=8)
        await check_gap_free(stores[0], 10)
        await check_gap_free(stores[1], 10)
    finally:
        for s in stores:
            await s.close()

"""PostgreSQL pruning beyond the contract: a past month's partition whose rows are all below
their tenants' horizons is dropped whole; one that another tenant still keeps rows in loses
the pruned rows one by one; search rows and numbers of pruned events go too.

Needs a server (``AUDITLOG_TEST_POSTGRES_URL``) and skips without one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import psycopg
import pytest

import pgtest
from auditlog.storage.postgres import database
from auditlog.storage.postgres.store import PostgresStore
from storage.test_contract import append_ok, checkpoint_of, event, query_of, seqs, walk

pytestmark = pytest.mark.anyio

#: A past month, made as a partition by each test: rows moved there look a year old.
OLD = "events_2025_01"
OLD_US = database.month_start(2025, 1) + 1_000_000


@pytest.fixture
async def store() -> AsyncIterator[PostgresStore]:
    backend = PostgresStore(pgtest.fresh_url())
    await backend.open()
    with psycopg.connect(backend.url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {OLD}")
        conn.execute(
            f"CREATE TABLE {OLD} PARTITION OF events FOR VALUES FROM"
            f" ({database.month_start(2025, 1)}) TO ({database.month_start(2025, 2)})"
        )
    try:
        yield backend
    finally:
        with psycopg.connect(backend.url, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {OLD}")
        await backend.close()


async def _log(store: PostgresStore, tenant: str, n: int, old: int) -> None:
    """``n`` events of ``tenant``, the first ``old`` of them moved to the past month."""
    await append_ok(
        store, tenant, *(event(id=f"{tenant}-{i}", data={"n": i, "w": "quince"}) for i in range(n))
    )
    await store.add_checkpoint(tenant, checkpoint_of(n))
    with psycopg.connect(store.url, autocommit=True) as conn:
        conn.execute(
            "UPDATE events SET received_us = %s WHERE seq < %s AND tenant_id ="
            " (SELECT tenant_id FROM tenants WHERE name = %s)",
            (OLD_US, old, tenant),
        )
    store.index_pending()


def _rows(store: PostgresStore, sql: str) -> int:
    with psycopg.connect(store.url, autocommit=True) as conn:
        row = conn.execute(sql).fetchone()
        return int(row[0]) if row else 0


def _partition_exists(store: PostgresStore) -> bool:
    """Whether the past month's partition is there in this test's schema (other test
    processes, in schemas of their own, make one of the same name)."""
    return bool(_rows(store, f"SELECT count(*) FROM pg_class WHERE oid = to_regclass('{OLD}')"))


async def _sweep_all(store: PostgresStore, tenant: str) -> int:
    total = 0
    while n := await store.sweep(tenant, 7):
        total += n
    return total


async def test_a_month_that_only_pruned_events_fill_is_dropped_whole(
    store: PostgresStore,
) -> None:
    await _log(store, "acme", 30, old=20)
    await _log(store, "beta", 5, old=0)
    assert _rows(store, f"SELECT count(*) FROM {OLD}") == 20
    assert await store.prune_to("acme", 20) == 20
    assert await _sweep_all(store, "acme") == 20
    assert not _partition_exists(store)
    assert (
        _rows(
            store,
            "SELECT count(*) FROM event_search WHERE seq < 20 AND tenant_id = (SELECT tenant_id FROM tenants WHERE name = 'acme')",
        )
        == 0
    )
    assert (
        _rows(
            store,
            "SELECT count(*) FROM event_numbers WHERE seq < 20 AND tenant_id = (SELECT tenant_id FROM tenants WHERE name = 'acme')",
        )
        == 0
    )
    for seq in (0, 19):
        assert await store.was_pruned("acme", f"acme-{seq}")
        assert await store.get_event("acme", f"acme-{seq}") is None
    found = await walk(store, "acme", query_of(("order", "asc"), ("q", "quince")))
    assert seqs(found) == list(range(20, 30))
    assert len(await walk(store, "beta", query_of(("limit", "100")))) == 5


async def test_a_month_another_tenant_keeps_rows_in_loses_only_the_pruned_rows(
    store: PostgresStore,
) -> None:
    await _log(store, "acme", 30, old=20)
    await _log(store, "beta", 5, old=3)
    assert await store.prune_to("acme", 25) == 25
    assert await _sweep_all(store, "acme") == 25
    assert _partition_exists(store)
    assert _rows(store, f"SELECT count(*) FROM {OLD}") == 3  # beta's
    assert (
        _rows(
            store,
            "SELECT count(*) FROM event_search WHERE seq < 25 AND tenant_id = (SELECT tenant_id FROM tenants WHERE name = 'acme')",
        )
        == 0
    )
    assert seqs(await walk(store, "acme", query_of(("order", "asc")))) == list(range(25, 30))
    assert await store.was_pruned("acme", "acme-3")
    # Once beta prunes its rows there too, the month goes.
    assert await store.prune_to("beta", 3) == 3
    assert await _sweep_all(store, "beta") == 3
    assert not _partition_exists(store)


async def test_the_indexer_never_indexes_below_the_horizon(store: PostgresStore) -> None:
    await append_ok(store, "acme", *(event(id=f"e{i}", data={"n": i}) for i in range(20)))
    await store.add_checkpoint("acme", checkpoint_of(20))
    assert await store.prune_to("acme", 12) == 12  # nothing indexed yet
    store.index_pending()
    assert _rows(store, "SELECT min(seq) FROM event_search") == 12
    assert await _sweep_all(store, "acme") == 12
    found = await walk(store, "acme", query_of(("order", "asc"), ("data.n[gte]", "0")))
    assert seqs(found) == list(range(12, 20))

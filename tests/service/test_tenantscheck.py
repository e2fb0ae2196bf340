"""``auditlog verify``'s check of the tenants log (``auditlog.service.tenantscheck``) on
SQLite: intact, then with its leaves reordered, a node changed, or a checkpoint's row changed."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from auditlog.integrity import note as notes
from auditlog.service.integrator import Integrator
from auditlog.service.logkey import LogKey
from auditlog.service.tenantscheck import check_tenants_log
from auditlog.storage.base import AppendRequest
from auditlog.storage.sqlite.store import SQLiteStore
from service.test_integrator import new_events

pytestmark = pytest.mark.anyio


@pytest.fixture
async def written(tmp_path: Path) -> AsyncIterator[tuple[SQLiteStore, LogKey, Path]]:
    path = tmp_path / "audit.db"
    store = SQLiteStore(str(path))
    await store.open()
    key = LogKey(store)
    integrator = Integrator(store, key)
    for tenant, n in (("acme", 3), ("globex", 2), ("acme", 4), ("initech", 1), ("acme", 1)):
        await store.append([AppendRequest(tenant, new_events(n))])
        await integrator.run_once()
    yield store, key, path
    await store.close()


async def test_an_intact_tenants_log(written: tuple[SQLiteStore, LogKey, Path]) -> None:
    store, key, _ = written
    report = await check_tenants_log(store, key.tenants_verifier())
    assert report.problems == []
    assert report.leaves == report.size == 5


async def test_reordered_leaves_are_found(written: tuple[SQLiteStore, LogKey, Path]) -> None:
    store, key, path = written
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE tenants_leaves SET idx = -1 WHERE idx = 1")
        conn.execute("UPDATE tenants_leaves SET idx = 1 WHERE idx = 2")
        conn.execute("UPDATE tenants_leaves SET idx = 2 WHERE idx = -1")
    report = await check_tenants_log(store, key.tenants_verifier())
    assert report.problems == [
        "the tenants log's leaves 0..4 (the tenants' stored checkpoints) do not give the root "
        "of its latest checkpoint of size 5"
    ]


async def test_a_missing_leaf_is_named(written: tuple[SQLiteStore, LogKey, Path]) -> None:
    store, key, path = written
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM tenants_leaves WHERE idx = 3")
    report = await check_tenants_log(store, key.tenants_verifier())
    assert report.problems == ["the tenants log has no leaf 3, but one at 4"]


async def test_a_changed_node_is_found(written: tuple[SQLiteStore, LogKey, Path]) -> None:
    store, key, path = written
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE tenants_nodes SET hash = zeroblob(32) WHERE level = 2 AND idx = 0")
    report = await check_tenants_log(store, key.tenants_verifier())
    assert report.problems == [
        "the tenants log's stored nodes do not give the root of its checkpoint of size 5"
    ]


async def test_a_checkpoint_signed_by_another_key_is_found(
    written: tuple[SQLiteStore, LogKey, Path],
) -> None:
    store, _, _ = written
    report = await check_tenants_log(store, notes.Signer("auditlog", bytes(32)).verifier)
    assert len(report.problems) == 1
    assert report.problems[0].startswith("the latest tenants checkpoint (size 5) does not verify")

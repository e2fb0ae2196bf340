"""Behaviour of the SQLite store beyond the contract: its search index and its files."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest

from auditlog.model.event import Limits, Principal, validate_event
from auditlog.model.query import parse_query
from auditlog.storage.base import AppendRequest
from auditlog.storage.sqlite.store import SQLiteStore

pytestmark = pytest.mark.anyio


def requests(tenant: str, n: int, start: int = 0) -> list[AppendRequest]:
    events = tuple(
        validate_event(
            {"id": f"e{i}", "type": "t", "data": {"n": i, "word": f"w{i}"}},
            Principal("key:t", "t"),
            Limits(),
            1_700_000_000_000_000,
        )
        for i in range(start, start + n)
    )
    return [AppendRequest(tenant, events)]


async def found(store: SQLiteStore, *pairs: tuple[str, str]) -> list[str]:
    query, _ = parse_query([*pairs, ("order", "asc"), ("limit", "1000")])
    page = await store.query("acme", query)
    return [orjson.loads(b)["id"] for b in page.bodies]


async def test_an_index_ahead_of_restored_events_is_dropped_and_rebuilt(tmp_path: Path) -> None:
    path = str(tmp_path / "a.db")
    store = SQLiteStore(path)
    await store.open()
    await store.append(requests("acme", 5))
    await store.close()
    backup = tmp_path / "backup.db"
    shutil.copy(path, backup)  # the events as they were: 5 events (closed, so no WAL)

    store = SQLiteStore(path)
    await store.open()
    await store.append(requests("acme", 5, start=5))
    assert store.index_pending() == 10
    await store.close()

    # Restore the backup, then write other events with the same seqs as the lost ones.
    shutil.copy(backup, path)
    store = SQLiteStore(path)
    await store.open()
    await store.append(
        [
            AppendRequest(
                "acme",
                (
                    validate_event(
                        {"id": "new", "type": "t", "data": {"n": 7}},
                        Principal("key:t", "t"),
                        Limits(),
                        1_700_000_000_000_000,
                    ),
                ),
            )
        ]
    )
    store.index_pending()
    assert await found(store, ("data.n", "7")) == ["new"]
    assert await found(store, ("q", "w7")) == []
    assert await found(store, ("q", "w3")) == ["e3"]
    await store.close()


async def test_the_index_can_be_deleted_and_is_rebuilt(tmp_path: Path) -> None:
    path = str(tmp_path / "a.db")
    store = SQLiteStore(path)
    await store.open()
    await store.append(requests("acme", 20))
    store.index_pending()
    await store.close()
    for suffix in ("-terms", "-terms-wal", "-terms-shm"):
        Path(path + suffix).unlink(missing_ok=True)
    store = SQLiteStore(path)
    await store.open()
    assert await found(store, ("data.n", "3")) == ["e3"]  # complete before indexing
    assert store.index_pending() == 20
    assert await found(store, ("data.n", "3")) == ["e3"]
    await store.close()

"""Behaviour of the SQLite store beyond the contract: its search index and its files."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import threading
from pathlib import Path

import orjson
import pytest

from auditlog.model.credentials import User
from auditlog.model.event import Limits, Principal, validate_event
from auditlog.model.query import parse_query
from auditlog.storage.base import AppendRequest
from auditlog.storage.sqlite import database
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


async def test_a_commit_waits_for_another_process_s_write_lock_with_the_loop_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A group commit runs on the event loop's thread only when the write lock is free at
    once; while another connection holds it, the commit waits on the writer thread and the
    loop goes on serving."""
    # A commit that waited for the lock on the loop's thread would stop the loop for this
    # long, since only the loop releases the lock below.
    monkeypatch.setattr(database, "BUSY_TIMEOUT_MS", 20_000)
    path = str(tmp_path / "a.db")
    store = SQLiteStore(path)
    await store.open()
    loop = asyncio.get_running_loop()
    try:
        await store.append(requests("acme", 1))
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # as `auditlog keys create` would, for a moment
        try:
            append = asyncio.create_task(store.append(requests("acme", 1, start=1)))
            longest = 0.0
            for _ in range(20):  # the loop turns while the commit waits for the lock
                before = loop.time()
                await asyncio.sleep(0.01)
                await store.ping()
                longest = max(longest, loop.time() - before)
            assert not append.done()
            assert longest < 10, "the loop stopped while the commit waited for the lock"
        finally:
            other.execute("COMMIT")
            other.close()
        (outcome,) = await append
        assert isinstance(outcome, tuple)
        assert [a.seq for a in outcome] == [1]
        assert await found(store) == ["e0", "e1"]
    finally:
        await store.close()


async def test_a_commit_waits_for_the_writer_thread_s_work_before_it(tmp_path: Path) -> None:
    """While the writer thread has work, a commit never runs beside it on the loop's thread
    (the write connection is one): it runs after, in order."""
    store = SQLiteStore(str(tmp_path / "a.db"))
    await store.open()
    release = threading.Event()

    def long_transaction() -> None:  # as a pruning step holds the connection
        conn = store._w()
        conn.execute("BEGIN IMMEDIATE")
        release.wait(10)
        conn.execute("COMMIT")

    try:
        first = asyncio.create_task(store._write(long_transaction))
        await asyncio.sleep(0.05)
        append = asyncio.create_task(store.append(requests("acme", 2)))
        await asyncio.sleep(0.05)
        assert not append.done()
        release.set()
        await first
        (outcome,) = await append
        assert isinstance(outcome, tuple)
        assert [a.seq for a in outcome] == [0, 1]
        # With the thread idle again, commits go on as before.
        (outcome,) = await store.append(requests("acme", 1, start=2))
        assert isinstance(outcome, tuple)
        assert [a.seq for a in outcome] == [2]
    finally:
        release.set()
        await store.close()


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
    # The numbers went with the tokens: "new" (seq 5) is not found by e5's old number 5.
    assert await found(store, ("data.n[gte]", "7")) == ["new"]
    assert await found(store, ("data.n[gte]", "4"), ("data.n[lt]", "6")) == ["e4"]
    await store.close()


async def test_an_index_made_before_the_numbers_index_is_made_again(tmp_path: Path) -> None:
    path = str(tmp_path / "a.db")
    store = SQLiteStore(path)
    await store.open()
    await store.append(requests("acme", 30))
    assert store.index_pending() == 30
    await store.close()
    # The search index as the version before the numbers index left it.
    terms = sqlite3.connect(database.terms_path(path))
    terms.executescript(
        "DROP TABLE numbers; DROP TABLE path_flags; DROP TABLE pruned; PRAGMA user_version = 1;"
    )
    terms.close()

    store = SQLiteStore(path)
    await store.open()
    # Emptied, so that every event is indexed again with its numbers; complete meanwhile.
    assert await found(store, ("data.n[gt]", "26")) == ["e27", "e28", "e29"]
    assert store.index_pending() == 30
    assert await found(store, ("data.n[gt]", "26")) == ["e27", "e28", "e29"]
    assert await found(store, ("data.n[gte]", "3"), ("data.n[lt]", "5")) == ["e3", "e4"]
    assert await found(store, ("q", "w12")) == ["e12"]
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


async def test_processes_on_one_database_share_one_secret(tmp_path: Path) -> None:
    path = str(tmp_path / "a.db")
    stores = [SQLiteStore(path) for _ in range(4)]
    for store in stores:
        await store.open()
    try:
        results = [
            await store.load_or_create_secret("key", bytes([i]) * 32)
            for i, store in enumerate(stores)
        ]
        assert results == [bytes([0]) * 32] * 4
    finally:
        for store in stores:
            await store.close()
    reopened = SQLiteStore(path)
    await reopened.open()
    try:
        assert await reopened.load_or_create_secret("key", b"new") == bytes([0]) * 32
    finally:
        await reopened.close()


async def test_a_database_of_the_first_schema_gains_users_and_secrets(tmp_path: Path) -> None:
    path = str(tmp_path / "a.db")
    [(number, first)] = [m for m in database.migrations("events") if m[0] == 1]
    conn = sqlite3.connect(path)
    conn.executescript(first)
    conn.execute(f"PRAGMA user_version = {number}")
    conn.close()
    store = SQLiteStore(path)
    await store.open()
    try:
        user = User("alice", "acme", ("events:read",), "$scrypt$x", 1)
        assert await store.create_user(user)
        assert await store.get_user("alice") == user
        assert await store.load_or_create_secret("key", b"k") == b"k"
    finally:
        await store.close()
    conn = sqlite3.connect(path)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()
    assert version == max(n for n, _ in database.migrations("events"))


async def test_a_narrow_time_range_across_the_index_and_its_tail(tmp_path: Path) -> None:
    """A time range holding few events is read through the time index, over events the search
    index covers and the tail it does not yet, with the index's matches among the range's
    keys as a filter or without. Words that are only part of a word or of a key, values of
    other events, conditions the index does not answer: every first page is what checking
    every event says."""
    import random

    from auditlog.model import times
    from storage.pages import check_first_pages

    store = SQLiteStore(str(tmp_path / "a.db"))
    await store.open()
    rng = random.Random(20261207)
    day = 86_400_000_000
    start = 1_700_000_000_000_000
    notes = ["refund issued", "refunded", "Refund", "no refunds", "about refund policy", "other"]

    def raw(i: int) -> dict[str, object]:
        return {
            "id": f"e{i}",
            "type": rng.choice(["a", "b"]),
            "time": times.format_us(start + rng.randrange(4 * day)),
            "data": {"k": rng.choice(["x", "y"]), "note": rng.choice(notes), "refund": i},
        }

    try:
        for batch in (range(150), range(150, 300)):
            events = tuple(
                validate_event(raw(i), Principal("key:t", "t"), Limits(), start) for i in batch
            )
            await store.append([AppendRequest("acme", events)])
            if batch.start == 0:
                assert store.index_pending() == 150  # the second half stays the tail
        every, _ = parse_query([("order", "asc"), ("limit", "1000")])
        bodies = (await store.query("acme", every)).bodies
        stored = [(orjson.loads(b), b) for b in bodies]
        since, until = times.format_us(start + day), times.format_us(start + 3 * day)
        cases = [
            [("q", "refund")],
            [("q", "refund*")],
            [("data.k", "x")],
            [("data.k", "x"), ("q", "refund")],
            [("data.k", "y"), ("data.note[prefix]", "ref")],
            [("type", "a"), ("q", "refund")],
            [("q", "refund"), ("order", "asc")],
        ]
        # With the search index read over the range's keys, and without (a span too wide).
        for span_keys in (store.span_keys, 0):
            store.span_keys = span_keys
            for pairs in cases:
                for limit in ("5", "40"):
                    query, _ = parse_query(
                        [*pairs, ("since", since), ("until", until), ("limit", limit)]
                    )
                    await check_first_pages(store, "acme", stored, query, (span_keys, pairs))
    finally:
        await store.close()

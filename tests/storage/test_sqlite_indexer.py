"""The SQLite search indexer and its worker processes: the same index with workers as
without, workers given chunks only while a core goes spare, a failed step leaves nothing and
the next one resumes, and no worker outlives its indexer."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from auditlog.model.event import Limits, Principal, validate_event
from auditlog.storage.base import AppendRequest
from auditlog.storage.sqlite import database, termworkers
from auditlog.storage.sqlite.indexer import Indexer
from auditlog.storage.sqlite.store import SQLiteStore

pytestmark = pytest.mark.anyio


def events(tenant: str, n: int) -> list[AppendRequest]:
    made = tuple(
        validate_event(
            {
                "type": f"t{i % 3}",
                "actor": f"user-{i % 7}",
                "data": {
                    "n": i if i % 5 else [i, i + 1],
                    "x": f"s{i}" if i % 11 == 0 else i / 4,
                    "note": f"word{i % 13} common Café",
                },
            },
            Principal("key:t", tenant),
            Limits(),
            1_700_000_000_000_000,
        )
        for i in range(n)
    )
    return [AppendRequest(tenant, made)]


async def stored(path: str, per_tenant: int) -> None:
    store = SQLiteStore(path)
    await store.open()
    for tenant in ("acme", "other"):
        await store.append(events(tenant, per_tenant))
    await store.close()


def index_contents(path: str) -> dict[str, Any]:
    conn = sqlite3.connect(database.terms_path(path))
    try:
        conn.execute("CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, events_terms, row)")
        terms = conn.execute("SELECT term, doc FROM temp.vocab ORDER BY term").fetchall()
        some = [t for t, _ in terms[:: max(1, len(terms) // 40)]]
        return {
            "terms": terms,
            "rowids": [
                conn.execute(
                    "SELECT rowid FROM events_terms WHERE events_terms MATCH ? ORDER BY rowid",
                    (f'"{t}"',),
                ).fetchall()
                for t in some
            ],
            "numbers": conn.execute("SELECT * FROM numbers ORDER BY 1, 2, 3, 4").fetchall(),
            "flags": conn.execute("SELECT * FROM path_flags ORDER BY 1, 2, 3").fetchall(),
            "progress": conn.execute("SELECT * FROM progress ORDER BY 1").fetchall(),
        }
    finally:
        conn.close()


@pytest.fixture
def always_spare(monkeypatch: pytest.MonkeyPatch) -> None:
    """The workers are given chunks however busy the machine running the tests is."""
    monkeypatch.setattr(termworkers, "SPARE_CORES", 0.0)


@pytest.mark.usefixtures("always_spare")
async def test_workers_build_the_index_the_indexer_builds_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(termworkers, "CHUNK_EVENTS", 40)
    alone, helped = str(tmp_path / "alone.db"), str(tmp_path / "helped.db")
    await stored(alone, 300)
    await stored(helped, 300)
    for path, workers in ((alone, 0), (helped, 2)):
        indexer = Indexer(path, workers)
        try:
            assert indexer.index_batch(200) == 200
            assert indexer.index_batch(250) == 250  # a tenant and a half in all
            assert indexer.workers.helped is (workers > 0)
            assert indexer.index_batch() == 150
            # The chunks of the second tenant's rest were given out during the commit
            # before: three whole chunks of 40 of its 150 events.
            assert indexer.workers.reused == (3 if workers else 0)
            assert indexer.catch_up() == 0
        finally:
            indexer.close()
    expected = index_contents(alone)
    assert expected["progress"] == [(1, 300), (2, 300)]
    assert {flag for _, _, flag in expected["flags"]} == {"s", "m"}
    assert index_contents(helped) == expected


@pytest.mark.usefixtures("always_spare")
async def test_a_failed_step_adds_nothing_and_the_next_one_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(termworkers, "CHUNK_EVENTS", 40)
    path, reference = str(tmp_path / "a.db"), str(tmp_path / "b.db")
    await stored(path, 200)
    await stored(reference, 200)
    conn = sqlite3.connect(path)
    key = conn.execute("SELECT max(key) FROM events WHERE tenant_id = 2").fetchone()[0]
    with conn:
        conn.execute("UPDATE events SET body = ? WHERE key = ?", (b"{not json", key))
    indexer = Indexer(path, 2)
    try:
        indexer.index_batch(150)  # the first tenant's first 150, all well
        # Its chunk fails in a worker or in the indexer's own thread, whichever took it.
        with pytest.raises(ValueError, match=r"term worker|unexpected character"):
            indexer.index_batch(400)
        assert index_contents(path)["progress"] == [(1, 150)]
        (body,) = (
            sqlite3.connect(reference)
            .execute("SELECT body FROM events WHERE key = ?", (key,))
            .fetchone()
        )
        with conn:
            conn.execute("UPDATE events SET body = ? WHERE key = ?", (body, key))
        assert indexer.catch_up() == 250
    finally:
        indexer.close()
        conn.close()
    alone = Indexer(reference, 0)
    try:
        alone.catch_up()
    finally:
        alone.close()
    assert index_contents(path) == index_contents(reference)


def test_a_worker_answers_a_bad_body_with_an_error_and_goes_on() -> None:
    worker = termworkers._Worker()
    try:
        worker.send(1, "t", [(5, b'{"type": "t"}'), (6, b"{not json")])
        worker.send(1, "t", [(7, b'{"type": "u", "data": {"n": 2}}')])
        with pytest.raises(ValueError, match=f"term worker {worker.process.pid}: JSONDecodeError"):
            worker.receive()
        docs, found, _ = worker.receive()
        assert [key for key, _ in docs] == [7]
        assert [row[2:] for row in found] == [[2, 7]]
    finally:
        worker.stop(5)


def tokens(chunks: Iterable[termworkers.Entries]) -> list[Any]:
    """Entries with each document as its set of tokens (their order differs by process)."""
    return [
        ([(key, set(doc.split())) for key, doc in docs], found, flags)
        for docs, found, flags in chunks
    ]


def numbered(n: int) -> list[tuple[int, bytes]]:
    return [(i, b'{"type": "t", "data": {"n": %d}}' % i) for i in range(n)]


@pytest.mark.usefixtures("always_spare")
def test_chunks_given_out_ahead_serve_only_a_map_that_begins_with_them() -> None:
    size = termworkers.CHUNK_EVENTS
    rows = numbered(4 * size)
    alone = tokens(termworkers.TermWorkers(0).map([(1, "t", rows), (2, "t", rows)]))
    workers = termworkers.TermWorkers(1)
    try:
        assert len(list(workers.map([(1, "t", rows[: 2 * size])]))) == 2
        workers.ahead([(1, "t", rows[2 * size :])])
        assert tokens(workers.map([(1, "t", rows[2 * size :]), (2, "t", rows)])) == alone[2:]
        assert workers.reused == 2
        workers.ahead([(1, "t", rows[:size])])  # not what comes next: dropped
        assert tokens(workers.map([(2, "t", rows)])) == alone[4:]
        assert workers.reused == 0
    finally:
        workers.close()


def test_workers_get_chunks_only_while_a_core_goes_spare(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spare: list[float | None] = [None, 0.2, None, 1.5, 0.79]
    monkeypatch.setattr(termworkers.SpareCpu, "cores", lambda self, pids: spare.pop(0))
    workers = termworkers.TermWorkers(1)
    rows = numbered(3 * termworkers.CHUNK_EVENTS)

    alone = tokens(termworkers.TermWorkers(0).map([(1, "t", rows)]))
    helped = []
    try:
        for _ in range(5):
            assert tokens(workers.map([(1, "t", rows)])) == alone
            helped.append(workers.helped)
    finally:
        workers.close()
    # No reading at first: they help; 0.2 cores: not; no new reading: as before; 1.5: yes;
    # 0.79, short of most of a core: not.
    assert helped == [True, False, False, True, False]
    assert not spare


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


WITH_WORKERS = """
import sys, time
from auditlog.storage.sqlite import termworkers
workers = termworkers.TermWorkers(2)
list(workers.map([(1, "t", [(i, b'{"type": "t"}') for i in range(2 * termworkers.CHUNK_EVENTS)])]))
print(*(w.process.pid for w in workers._all), flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_no_worker_outlives_its_indexer(how: int) -> None:
    indexer = subprocess.Popen(
        [sys.executable, "-c", WITH_WORKERS], stdout=subprocess.PIPE, text=True
    )
    try:
        assert indexer.stdout is not None
        pids = [int(p) for p in indexer.stdout.readline().split()]
        assert len(pids) == 2
        assert not any(gone(pid) for pid in pids)
        indexer.send_signal(how)
        indexer.wait(10)
        deadline = time.monotonic() + 10
        while not all(gone(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(gone(pid) for pid in pids)
    finally:
        if indexer.poll() is None:
            os.kill(indexer.pid, signal.SIGKILL)
            indexer.wait()
        if indexer.stdout is not None:
            indexer.stdout.close()

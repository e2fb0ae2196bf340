"""The pruner (``auditlog.service.pruning``): what retention, archives, holds and checkpoints
let it prune, on the memory and SQLite stores, and the record it leaves in the tenant's log."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from auditlog.metrics import Metrics
from auditlog.model import times
from auditlog.model.retention import ArchiveRecord, Hold, Retention
from auditlog.service import selfaudit
from auditlog.service.integrator import Integrator
from auditlog.service.logkey import LogKey
from auditlog.service.pruning import Pruner, archived_until
from auditlog.storage.base import Store
from auditlog.storage.memory import MemoryStore
from auditlog.storage.sqlite.store import SQLiteStore
from storage.test_contract import append_ok, events, query_of, seqs, walk

pytestmark = pytest.mark.anyio

KEEP = 3600


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    backend: Store = (
        MemoryStore() if request.param == "memory" else SQLiteStore(str(tmp_path / "a.db"))
    )
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()


async def _record(store: Store, tenant: str, type_: str, data: dict[str, Any]) -> None:
    await selfaudit.record_directly(store, tenant, type_, selfaudit.SERVICE_ACTOR, data)


async def _old_and_new(store: Store, old: int = 10, new: int = 5) -> int:
    """``old`` events, then ``new`` ones; a pruner clock at which only the old are due."""
    await append_ok(store, "acme", *events(old, "old"))
    await asyncio.sleep(0.01)
    mark = times.now_us()
    await asyncio.sleep(0.01)
    await append_ok(store, "acme", *events(new, "new"))
    await Integrator(store, LogKey(store, "log.example")).integrate_batch("acme")
    await store.set_retention(Retention("acme", KEEP, mark, "cli:alice"))
    return mark + KEEP * 1_000_000


def _pruner(store: Store, now: int) -> Pruner:
    async def record(tenant: str, type_: str, data: dict[str, Any]) -> None:
        await _record(store, tenant, type_, data)

    return Pruner(store, record, clock=lambda: now, sweep_events=3)


def _archive(first: int, end: int, sha: str = "a" * 64) -> ArchiveRecord:
    return ArchiveRecord("acme", first, end, sha, f"/archives/{sha[:8]}.zip", end, 1, "cli:alice")


async def _records(store: Store) -> list[dict[str, Any]]:
    found = await walk(store, "acme", query_of(("type", selfaudit.LOG_PRUNED), ("order", "asc")))
    return [orjson.loads(body)["data"] for body in found]


async def test_nothing_is_pruned_without_a_retention(store: Store) -> None:
    now = await _old_and_new(store)
    await store.set_retention(Retention("acme", None, 1, "cli:alice"))
    outcome = await _pruner(store, now).prune("acme")
    assert (outcome.pruned, outcome.refused) == (0, False)
    assert await store.horizon("acme") == 0


async def test_due_events_without_an_archive_are_kept_and_named(store: Store) -> None:
    now = await _old_and_new(store)
    outcome = await _pruner(store, now).prune("acme")
    assert outcome.pruned == 0
    assert outcome.refused
    assert "seq 0..9 are due but no archive covers them" in outcome.stopped
    assert await store.horizon("acme") == 0


async def test_an_archive_lets_the_due_events_go_and_the_log_records_it(store: Store) -> None:
    now = await _old_and_new(store)
    await store.add_archive(_archive(0, 12))  # covers more than is due: only the due go
    outcome = await _pruner(store, now).prune("acme")
    assert (outcome.horizon_before, outcome.horizon, outcome.swept) == (0, 10, 10)
    assert not outcome.refused
    assert await store.horizon("acme") == 10
    kept = seqs(await walk(store, "acme", query_of(("order", "asc"), ("limit", "100"))))
    assert kept[:5] == [10, 11, 12, 13, 14]
    assert await store.was_pruned("acme", "old3")
    assert await _records(store) == [
        {
            "first_seq": 0,
            "end_seq": 10,
            "events": 10,
            "archives": ["a" * 64],
            "without_archive": False,
        }
    ]
    # Pruning again finds nothing more to do and records nothing.
    again = await _pruner(store, now).prune("acme")
    assert (again.pruned, again.swept) == (0, 0)
    assert len(await _records(store)) == 1


async def test_an_archive_of_part_of_the_due_range_prunes_that_part(store: Store) -> None:
    now = await _old_and_new(store)
    await store.add_archive(_archive(0, 4))
    await store.add_archive(_archive(6, 10, "b" * 64))  # a gap at 4..5: not contiguous
    outcome = await _pruner(store, now).prune("acme")
    assert outcome.horizon == 4
    assert outcome.refused
    assert "seq 4..9 are due" in outcome.stopped


async def test_no_archive_prunes_and_says_so_in_the_log(store: Store) -> None:
    now = await _old_and_new(store)
    outcome = await _pruner(store, now).prune("acme", no_archive=True)
    assert outcome.horizon == 10
    (record,) = await _records(store)
    assert record["without_archive"] is True
    assert record["archives"] == []


async def test_a_hold_refuses_and_its_release_lets_pruning_go_on(store: Store) -> None:
    now = await _old_and_new(store)
    await store.add_archive(_archive(0, 15))
    await store.set_hold(Hold("acme", "litigation 117", "cli:alice", 1))
    outcome = await _pruner(store, now).prune("acme")
    assert outcome.pruned == 0
    assert outcome.refused
    assert "legal hold" in outcome.stopped
    assert await store.get_event("acme", "old0") is not None
    await store.release_hold("acme")
    assert (await _pruner(store, now).prune("acme")).horizon == 10


async def test_events_no_checkpoint_covers_yet_are_never_pruned(store: Store) -> None:
    now = await _old_and_new(store)
    await append_ok(store, "acme", *events(5, "late"))  # after the last checkpoint
    far_future = now + 10 * KEEP * 1_000_000  # everything is due by then
    outcome = await _pruner(store, far_future).prune("acme", no_archive=True)
    assert outcome.horizon == 15  # the checkpoint's size, not the log's 20
    assert await store.get_event("acme", "late0") is not None


async def test_run_once_prunes_every_tenant_with_a_retention(store: Store) -> None:
    now = await _old_and_new(store)
    await append_ok(store, "beta", *events(3, "b"))
    outcomes = await _pruner(store, now).run_once(no_archive=True)
    assert [(o.tenant, o.horizon) for o in outcomes] == [("acme", 10)]


def test_archives_cover_from_the_horizon_without_a_gap() -> None:
    assert archived_until([], 5) == 5
    assert archived_until([_archive(0, 10), _archive(10, 20, "b")], 0) == 20
    assert archived_until([_archive(10, 20, "b"), _archive(0, 12)], 0) == 20
    assert archived_until([_archive(0, 10), _archive(11, 20, "b")], 0) == 10
    assert archived_until([_archive(0, 10)], 12) == 12


async def test_the_metrics_count_what_was_pruned_swept_and_refused(store: Store) -> None:
    metrics = Metrics()

    async def record(tenant: str, type_: str, data: dict[str, Any]) -> None:
        await _record(store, tenant, type_, data)

    now = await _old_and_new(store)
    pruner = Pruner(store, record, clock=lambda: now, metrics=metrics)
    await pruner.prune("acme")  # no archive: refused
    await store.add_archive(_archive(0, 10))
    await pruner.prune("acme")
    text = metrics.render().decode()
    assert 'auditlog_prune_refused_total{reason="archive"} 1.0' in text
    assert "auditlog_pruned_events_total 10.0" in text
    assert "auditlog_prune_swept_events_total 10.0" in text

"""The integrator's hold of recently committed events (``service.recentleaves``).

The tree the integrator signs must not depend on where it got the leaves: from the bytes this
process committed, or read back from the store. Held events are exactly those stored, in
runs of consecutive seqs; anything else is read from the store.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from auditlog.service.integrator import Integrator
from auditlog.service.logkey import LogKey
from auditlog.service.recentleaves import RecentLeaves
from auditlog.storage.base import Appended, AppendRequest, Store
from auditlog.storage.sqlite.store import SQLiteStore
from service.test_integrator import check_checkpoint, new_events

pytestmark = pytest.mark.anyio


def events(start: int, n: int) -> list[tuple[int, bytes]]:
    return [(seq, b"event %d" % seq) for seq in range(start, start + n)]


def test_a_run_gives_what_it_holds_from_the_seq_asked() -> None:
    recent = RecentLeaves()
    recent.set_active(True)
    recent.add("a", events(10, 5))
    assert recent.take("a", 10, 2) == events(10, 2)
    assert recent.take("a", 12, 100) == events(12, 3)
    assert recent.held == 3  # what lies before 12 is let go
    assert recent.take("a", 11, 1) is None  # ... and not given again
    assert recent.take("a", 15, 1) is None
    assert recent.take("b", 10, 1) is None


def test_a_gap_starts_a_new_run() -> None:
    recent = RecentLeaves()
    recent.set_active(True)
    recent.add("a", events(0, 3))
    recent.add("a", events(5, 2))  # 3 and 4 were committed elsewhere
    assert recent.take("a", 0, 10) is None
    assert recent.take("a", 3, 10) is None
    assert recent.take("a", 5, 10) == events(5, 2)
    recent.add("a", events(7, 1))
    assert recent.take("a", 5, 10) == events(5, 3)


def test_nothing_is_held_while_inactive_or_past_the_limit() -> None:
    recent = RecentLeaves(limit=10)
    recent.add("a", events(0, 3))
    assert recent.take("a", 0, 3) is None
    recent.set_active(True)
    recent.add("a", events(0, 8))
    recent.add("b", events(0, 3))  # 11 > 10: all let go
    assert recent.held == 0
    assert recent.take("a", 0, 1) is None
    recent.add("a", events(8, 2))
    recent.set_active(False)
    assert recent.held == 0


class CountingStore(SQLiteStore):
    """A SQLite store that counts the leaves read back from it."""

    read = 0

    async def read_leaves(self, tenant: str, start: int, limit: int) -> list[tuple[int, bytes]]:
        rows = await super().read_leaves(tenant, start, limit)
        self.read += len(rows)
        return rows


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[CountingStore]:
    opened = CountingStore(str(tmp_path / "audit.db"))
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


async def commit(
    store: Store, recent: RecentLeaves, tenant: str, n: int, start: int, held: bool = True
) -> None:
    outcome: Any = (await store.append([AppendRequest(tenant, new_events(n, start))]))[0]
    appended: Sequence[Appended] = outcome
    if held:
        recent.add(tenant, [(a.seq, a.body) for a in appended])


async def test_the_tree_is_the_same_from_held_and_from_stored_leaves(
    store: CountingStore,
) -> None:
    """Commits in random batches, some held and some not (as another process's would be):
    every checkpoint has the root of the stored events, and held leaves are not read."""
    key = LogKey(store, "log.example")
    integrator = Integrator(store, key, batch_leaves=50)
    integrator.recent.set_active(True)
    rng = random.Random(7)
    committed = 0
    unheld = 0
    read = 0

    async def integrate() -> None:
        nonlocal read
        while True:
            before = store.read
            cp = await integrator.integrate_batch("acme")
            read += store.read - before
            if cp is None:
                return
            await check_checkpoint(store, key, "acme", cp)

    for _ in range(30):
        n = rng.randrange(1, 40)
        held = rng.random() < 0.7
        await commit(store, integrator.recent, "acme", n, committed, held)
        committed += n
        unheld += 0 if held else n
        if rng.random() < 0.5:
            await integrate()
    await integrate()
    latest = await store.latest_checkpoint("acme")
    assert latest is not None
    assert latest.size == committed
    assert unheld <= read < committed


async def test_a_process_that_does_not_integrate_holds_nothing(store: CountingStore) -> None:
    key = LogKey(store, "log.example")
    integrator = Integrator(store, key)
    await integrator.run_once()  # SQLite: this process integrates
    assert integrator.recent.active
    integrator.recent.set_active(False)
    await commit(store, integrator.recent, "acme", 5, 0)
    assert integrator.recent.held == 0

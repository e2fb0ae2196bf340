"""The integrator (``auditlog.service.integrator``), driven step by step on every backend.

Every checkpoint it signs is held to a reference computed from the stored events alone
(``integrity.proof.*_of_leaves``): the right root, consistent with every earlier checkpoint,
and proofs from the stored nodes equal to the reference proofs.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from auditlog.integrity import IntegrityError, proof
from auditlog.integrity import checkpoint as checkpoints
from auditlog.integrity.compact import perfect_subtrees
from auditlog.integrity.hasher import leaf_hash
from auditlog.model.event import Limits, Principal, validate_event
from auditlog.service.integrator import Integrator, subtree_key
from auditlog.service.logkey import LogKey
from auditlog.service.proofs import from_nodes
from auditlog.storage.base import AppendRequest, Integration, Store, StoredCheckpoint
from auditlog.storage.memory import MemoryStore
from auditlog.storage.sqlite.store import SQLiteStore

pytestmark = pytest.mark.anyio

NOW = 1_795_000_000_000_000


def new_events(n: int, start: int = 0) -> tuple[Any, ...]:
    return tuple(
        validate_event({"type": "t", "data": {"n": i}}, Principal("key:t", "t"), Limits(), NOW)
        for i in range(start, start + n)
    )


async def append(store: Store, tenant: str, n: int) -> None:
    if n:
        await store.append([AppendRequest(tenant, new_events(n))])


async def leaf_hashes(store: Store, tenant: str) -> list[bytes]:
    rows = await store.read_leaves(tenant, 0, 1_000_000)
    assert [seq for seq, _ in rows] == list(range(len(rows)))
    return [leaf_hash(body) for _, body in rows]


def make_store(backend: str, path: Path) -> Store:
    if backend == "memory":
        return MemoryStore()
    return SQLiteStore(str(path / "audit.db"))


@pytest.fixture(params=["memory", "sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    param: str = request.param
    return param


@pytest.fixture
async def store(backend: str, tmp_path: Path) -> AsyncIterator[Store]:
    opened = make_store(backend, tmp_path)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def key(store: Store) -> LogKey:
    return LogKey(store, "log.example")


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    """A SQLite store, for tests that tamper with its database."""
    opened = SQLiteStore(str(tmp_path / "tampered.db"))
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def integrator(store: Store, key: LogKey) -> Integrator:
    return Integrator(store, key)


async def check_checkpoint(store: Store, key: LogKey, tenant: str, cp: StoredCheckpoint) -> None:
    """``cp`` is signed by the key, and its root is that of the first ``cp.size`` events."""
    leaves = (await leaf_hashes(store, tenant))[: cp.size]
    assert len(leaves) == cp.size
    signed = checkpoints.verify(cp.note, key.verifier(tenant), origin=f"log.example/{tenant}")
    assert (signed.size, signed.root_hash) == (cp.size, cp.root_hash)
    assert cp.root_hash == proof.root_of_leaves(leaves)


async def test_the_first_batch_signs_the_whole_log(
    store: Store, key: LogKey, integrator: Integrator
) -> None:
    await append(store, "acme", 13)
    cp = await integrator.integrate_batch("acme")
    assert cp is not None
    assert cp.size == 13
    assert await store.latest_checkpoint("acme") == cp
    await check_checkpoint(store, key, "acme", cp)
    # Every perfect subtree of the tree is stored, leaves included: 13 + 6 + 3 + 1.
    keys = [(level, i) for level in range(4) for i in range(13 >> level)]
    assert len(await store.get_nodes("acme", keys)) == 23


async def test_nothing_new_signs_nothing(store: Store, integrator: Integrator) -> None:
    assert await integrator.integrate_batch("acme") is None
    await append(store, "acme", 3)
    first = await integrator.integrate_batch("acme")
    assert await integrator.integrate_batch("acme") is None
    assert await integrator.integrate_batch("acme") is None
    assert await store.list_checkpoints("acme") == [first]


async def test_growing_in_random_batches_stays_consistent(
    store: Store, key: LogKey, backend: str
) -> None:
    rng = random.Random(11)
    integrator = Integrator(store, key, batch_leaves=rng.randrange(1, 40))
    signed: list[StoredCheckpoint] = []
    for _ in range(25):
        await append(store, "acme", rng.choice([0, 1, 2, 3, 7, 8, 16, 33]))
        cp = await integrator.integrate_batch("acme")
        if cp is not None:
            signed.append(cp)
    leaves = await leaf_hashes(store, "acme")
    while (cp := await integrator.integrate_batch("acme")) is not None:
        signed.append(cp)
    assert signed[-1].size == len(leaves)
    assert [c.size for c in signed] == sorted({c.size for c in signed})
    for earlier, later in itertools.pairwise(signed):
        path = proof.consistency_of_leaves(earlier.size, leaves[: later.size])
        proof.verify_consistency(earlier.size, later.size, path, earlier.root_hash, later.root_hash)
    # Proofs made from the stored nodes are the reference proofs.
    for cp in signed[-3:]:
        await check_checkpoint(store, key, "acme", cp)
        for seq in {0, cp.size // 2, cp.size - 1}:
            made, _ = await from_nodes(
                store, "acme", lambda subtree, s=seq, n=cp.size: proof.inclusion(s, n, subtree)
            )
            assert made == proof.inclusion_of_leaves(seq, leaves[: cp.size])
        for first in {0, 1, cp.size // 3, cp.size}:
            made_c, _ = await from_nodes(
                store, "acme", lambda subtree, f=first, n=cp.size: proof.consistency(f, n, subtree)
            )
            assert made_c == proof.consistency_of_leaves(first, leaves[: cp.size])


async def test_tenants_have_their_own_trees_and_origins(
    store: Store, key: LogKey, integrator: Integrator
) -> None:
    await append(store, "acme", 5)
    await append(store, "beta", 2)
    assert await integrator.run_once() == 2
    for tenant, size in (("acme", 5), ("beta", 2)):
        cp = await store.latest_checkpoint(tenant)
        assert cp is not None
        assert cp.size == size
        await check_checkpoint(store, key, tenant, cp)
        assert cp.note.startswith(f"log.example/{tenant}\n{size}\n")
    acme = await store.latest_checkpoint("acme")
    assert acme is not None
    with pytest.raises(IntegrityError):  # one tenant's key name does not sign another's
        checkpoints.verify(acme.note, key.verifier("beta"))


class FailingCheckpoints:
    """Delegates to a store, but its next ``add_integrations`` dies after the nodes were
    written and before the checkpoint (a store that wrote them in two transactions)."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.fail = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def add_integrations(self, integrations: Sequence[Integration]) -> list[bool]:
        if self.fail:
            self.fail = False
            for i in integrations:
                await self.inner.put_nodes(i.tenant, i.nodes)
            raise RuntimeError("power cut")
        return await self.inner.add_integrations(integrations)


async def test_a_crash_between_the_nodes_and_the_checkpoint(store: Store, key: LogKey) -> None:
    await append(store, "acme", 6)
    await Integrator(store, key).integrate_batch("acme")
    await append(store, "acme", 5)
    crashing: Any = FailingCheckpoints(store)
    with pytest.raises(RuntimeError, match="power cut"):
        await Integrator(crashing, key).integrate_batch("acme")
    latest = await store.latest_checkpoint("acme")
    assert latest is not None
    assert latest.size == 6
    # The nodes of the lost round are there; running again writes them again, the same.
    assert await store.get_nodes("acme", [(0, 10), (1, 4)]) != {}
    await append(store, "acme", 2)
    cp = await Integrator(store, key).integrate_batch("acme")
    assert cp is not None
    assert cp.size == 13
    await check_checkpoint(store, key, "acme", cp)


async def test_a_restart_continues_from_the_stored_tree(tmp_path: Path) -> None:
    path = str(tmp_path / "audit.db")
    roots = []
    for round_ in range(3):
        store = SQLiteStore(path)
        await store.open()
        key = LogKey(store, "log.example")
        await append(store, "acme", 5 + round_)
        cp = await Integrator(store, key).integrate_batch("acme")
        assert cp is not None
        await check_checkpoint(store, key, "acme", cp)
        roots.append((cp.size, cp.root_hash, key.public_key))
        await store.close()
    assert [size for size, _, _ in roots] == [5, 11, 18]
    assert len({public for _, _, public in roots}) == 1  # the key is kept in the store


async def test_two_integrators_on_one_store_never_go_backwards(store: Store, key: LogKey) -> None:
    one = Integrator(store, key, batch_leaves=3)
    other = Integrator(store, LogKey(store, "log.example"), batch_leaves=5)
    rng = random.Random(5)
    for _ in range(20):
        await append(store, "acme", rng.randrange(0, 9))
        await asyncio.gather(
            *(one.integrate_batch("acme") for _ in range(rng.randrange(1, 3))),
            other.integrate_batch("acme"),
        )
    await one.run_once()
    listed = await store.list_checkpoints("acme")
    assert [c.size for c in listed] == sorted({c.size for c in listed})
    leaves = await leaf_hashes(store, "acme")
    assert listed[-1].size == len(leaves)
    for cp in listed:
        assert cp.root_hash == proof.root_of_leaves(leaves[: cp.size])


async def test_a_changed_tree_node_stops_signing(db: SQLiteStore) -> None:
    store, key = db, LogKey(db, "log.example")
    integrator = Integrator(store, key)
    await append(store, "acme", 6)
    await integrator.integrate_batch("acme")
    with sqlite3.connect(store.path) as db:  # the subtree [0, 4) of the compact range of 6
        db.execute("UPDATE tree_nodes SET hash = zeroblob(32) WHERE level = 2 AND idx = 0")
    await append(store, "acme", 1)
    with pytest.raises(IntegrityError, match="do not give the root"):
        await Integrator(store, key).integrate_batch("acme")
    latest = await store.latest_checkpoint("acme")
    assert latest is not None
    assert latest.size == 6


async def test_a_checkpoint_not_signed_by_the_key_is_not_built_on(
    store: Store, key: LogKey
) -> None:
    await append(store, "acme", 4)
    await Integrator(store, key).integrate_batch("acme")
    other_key = LogKey(MemoryStore(), "log.example")  # the same name, another key
    await other_key.load()
    forged = Integrator(store, other_key).sign("acme", 9, bytes(32))
    assert await store.add_checkpoint("acme", forged)
    await append(store, "acme", 5)
    with pytest.raises(IntegrityError, match="does not verify"):
        await Integrator(store, key).integrate_batch("acme")


async def test_a_rolled_back_checkpoint_table_is_noticed(db: SQLiteStore) -> None:
    store, key = db, LogKey(db, "log.example")
    integrator = Integrator(store, key)
    await append(store, "acme", 3)
    await integrator.integrate_batch("acme")
    await append(store, "acme", 3)
    await integrator.integrate_batch("acme")
    with sqlite3.connect(store.path) as db:
        db.execute("DELETE FROM checkpoints WHERE size = 6")
    await append(store, "acme", 1)
    with pytest.raises(IntegrityError, match="rolled back"):
        await integrator.integrate_batch("acme")


async def test_a_gap_in_the_events_stops_signing(db: SQLiteStore) -> None:
    store, key = db, LogKey(db, "log.example")
    await append(store, "acme", 4)
    with sqlite3.connect(store.path) as db:
        db.execute("DELETE FROM events WHERE key & 1099511627775 = 2")
    with pytest.raises(IntegrityError, match="no event with seq 2"):
        await Integrator(store, key).integrate_batch("acme")
    assert await store.latest_checkpoint("acme") is None


async def test_one_damaged_log_does_not_stop_the_others(
    db: SQLiteStore, caplog: pytest.LogCaptureFixture
) -> None:
    store, key = db, LogKey(db, "log.example")
    await append(store, "acme", 4)
    await append(store, "beta", 4)
    with sqlite3.connect(store.path) as db:
        db.execute("DELETE FROM events WHERE key & 1099511627775 = 1 AND tenant_id = 1")
    integrator = Integrator(store, key)
    with caplog.at_level(logging.ERROR, "auditlog.integrator"):
        assert await integrator.run_once() == 1
        assert await integrator.run_once() == 0
    assert [r.message for r in caplog.records].count(caplog.records[0].message) == 1
    assert "NOT signing" in caplog.records[0].message
    assert await store.latest_checkpoint("acme") is None
    beta = await store.latest_checkpoint("beta")
    assert beta is not None
    assert beta.size == 4


# -- the loop --------------------------------------------------------------------------------


async def test_the_loop_signs_within_its_interval(store: Store, key: LogKey) -> None:
    integrator = Integrator(store, key, interval_ms=20)
    integrator.start()
    try:
        await append(store, "acme", 7)
        cp = await integrator.wait_for("acme", 7, timeout=10)
        assert cp is not None
        assert cp.size >= 7
        await append(store, "acme", 1)
        for _ in range(500):
            latest = await store.latest_checkpoint("acme")
            if latest is not None and latest.size == 8:
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the loop did not sign the new event")
    finally:
        await integrator.close()


async def test_close_covers_every_committed_event(store: Store, key: LogKey) -> None:
    integrator = Integrator(store, key, interval_ms=60_000)
    integrator.start()
    await append(store, "acme", 5)
    await append(store, "beta", 2)
    await integrator.close()
    sizes = {t: c.size for t in ("acme", "beta") if (c := await store.latest_checkpoint(t))}
    assert sizes == {"acme": 5, "beta": 2}


async def test_waiting_without_an_integrator_round_times_out(store: Store, key: LogKey) -> None:
    integrator = Integrator(store, key)  # not started: nothing integrates
    await append(store, "acme", 2)
    assert await integrator.wait_for("acme", 2, timeout=0.05) is None
    assert await integrator.wait_for("acme", 0, timeout=0.05) is None  # no checkpoint at all
    await integrator.integrate_batch("acme")
    cp = await integrator.wait_for("acme", 1, timeout=0.05)
    assert cp is not None
    assert cp.size == 2


async def test_waiters_are_woken_by_the_checkpoint(store: Store, key: LogKey) -> None:
    integrator = Integrator(store, key, interval_ms=60_000)
    integrator.start()
    try:
        await append(store, "acme", 3)
        waits: Sequence[StoredCheckpoint | None] = await asyncio.gather(
            integrator.wait_for("acme", 1, timeout=10),
            integrator.wait_for("acme", 3, timeout=10),
        )
        assert [w.size if w else None for w in waits] == [3, 3]
    finally:
        await integrator.close()


def test_subtree_keys() -> None:
    assert [subtree_key(s, e) for s, e in perfect_subtrees(13)] == [(3, 0), (2, 2), (0, 12)]
    assert subtree_key(7, 8) == (0, 7)

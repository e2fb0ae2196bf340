"""The storage contract for pruning, on every backend (``auditlog.storage.base``): the horizon
moves only up, never past the largest checkpoint nor while a hold is set; every read leaves
out what is below it, before and after the sweep; tree nodes and checkpoints stay."""

from __future__ import annotations

import dataclasses

import pytest

from auditlog.model.retention import ArchiveRecord, Hold
from auditlog.storage.base import Store
from storage.test_contract import (
    NOW,
    append_ok,
    checkpoint_of,
    event,
    events,
    h,
    parsed,
    query_of,
    seqs,
    walk,
)

pytestmark = pytest.mark.anyio


async def _log(store: Store, tenant: str = "acme", n: int = 10, signed: int = 10) -> None:
    """``n`` events, every third of type ``odd.one`` with a word, ``data.n`` their number."""
    await append_ok(
        store,
        tenant,
        *(
            event(
                id=f"{tenant}-{i}",
                type="odd.one" if i % 3 == 0 else "test.event",
                data={"n": i, "note": "marmalade" if i % 3 == 0 else "toast"},
            )
            for i in range(n)
        ),
    )
    if signed:
        assert await store.add_checkpoint(tenant, checkpoint_of(signed))


async def _kept_reads(store: Store, horizon: int, n: int = 10) -> None:
    """Every read sees exactly seqs horizon..n-1 of acme's log."""
    kept = list(range(horizon, n))
    for seq in range(n):
        body = await store.get_event("acme", f"acme-{seq}")
        if seq < horizon:
            assert body is None
            assert await store.was_pruned("acme", f"acme-{seq}")
        else:
            assert body is not None
            assert parsed(body)["seq"] == seq
            assert not await store.was_pruned("acme", f"acme-{seq}")
    assert seqs(await walk(store, "acme", query_of(("order", "asc"), ("limit", "3")))) == kept
    assert seqs(await walk(store, "acme", query_of(("limit", "4")))) == kept[::-1]
    odd = [s for s in kept if s % 3 == 0]
    assert seqs(await walk(store, "acme", query_of(("order", "asc"), ("type", "odd.one")))) == odd
    assert seqs(await walk(store, "acme", query_of(("order", "asc"), ("q", "marmalade")))) == odd
    assert seqs(await walk(store, "acme", query_of(("order", "asc"), ("data.n[lt]", "7")))) == [
        s for s in kept if s < 7
    ]
    # A cursor or bound from before the horizon continues from it.
    page = await store.query("acme", dataclasses.replace(query_of(("order", "asc")), after_seq=0))
    assert seqs(page.bodies) == [s for s in kept if s > 0]
    # Every page says the horizon it was read at, whatever plan found it.
    for params in ((), (("type", "odd.one"),), (("q", "marmalade"),), (("data.n[lt]", "7"),)):
        page = await store.query("acme", query_of(*params))
        assert page.horizon == horizon, params
    assert (await store.query("beta", query_of())).horizon == 0
    leaves = await store.read_leaves("acme", 0, 100)
    assert [seq for seq, _ in leaves] == kept


async def test_a_log_without_pruning_has_horizon_zero(store: Store) -> None:
    assert await store.horizon("acme") == 0
    await _log(store)
    assert await store.horizon("acme") == 0
    assert await store.horizons() == {}
    assert not await store.was_pruned("acme", "acme-1")
    assert not await store.was_pruned("acme", "never-stored")
    assert await store.sweep("acme", 100) == 0


async def test_the_horizon_moves_up_only_and_never_past_the_largest_checkpoint(
    store: Store,
) -> None:
    await _log(store, signed=0)
    assert await store.prune_to("acme", 5) == 0  # nothing signed yet: nothing prunable
    assert await store.add_checkpoint("acme", checkpoint_of(6))
    assert await store.prune_to("acme", 8) == 6
    assert await store.prune_to("acme", 3) == 6
    assert await store.horizon("acme") == 6
    assert await store.horizons() == {"acme": 6}
    assert await store.prune_to("nobody", 3) == 0
    assert await store.horizon("nobody") == 0


async def test_reads_leave_out_the_pruned_prefix_before_and_after_the_sweep(
    store: Store,
) -> None:
    await _log(store)
    await _log(store, "beta")
    nodes = [(0, i, h(100 + i)) for i in range(10)] + [(1, 0, h(99))]
    await store.put_nodes("acme", nodes)
    assert await store.prune_to("acme", 4) == 4
    await _kept_reads(store, 4)
    swept = 0
    while n := await store.sweep("acme", 3):
        swept += n
    assert swept == 4
    await _kept_reads(store, 4)
    # The tree and the checkpoints are kept whole; another tenant is untouched.
    keys = [(level, index) for level, index, _ in nodes]
    assert await store.get_nodes("acme", keys) == {(lv, i): x for lv, i, x in nodes}
    assert [c.size for c in await store.list_checkpoints("acme")] == [10]
    assert await store.horizon("beta") == 0
    assert len(await walk(store, "beta", query_of(("limit", "100")))) == 10
    assert await store.get_event("beta", "beta-0") is not None


async def test_pruning_goes_on_in_steps_and_the_log_keeps_growing(store: Store) -> None:
    await _log(store)
    assert await store.prune_to("acme", 3) == 3
    assert await store.sweep("acme", 100) == 3
    assert await store.prune_to("acme", 7) == 7
    assert await store.sweep("acme", 100) == 4
    assert await store.sweep("acme", 100) == 0
    more = await append_ok(store, "acme", *events(2, "later"))
    assert [a.seq for a in more] == [10, 11]
    assert seqs(await walk(store, "acme", query_of(("order", "asc")))) == [7, 8, 9, 10, 11]
    assert await store.log_sizes() == {"acme": 12}
    assert await store.was_pruned("acme", "acme-6")
    assert not await store.was_pruned("acme", "later-0")


async def test_a_hold_refuses_pruning_until_released(store: Store) -> None:
    await _log(store)
    hold = Hold("acme", "litigation 117", "cli:alice", NOW)
    assert await store.set_hold(hold) is None
    assert await store.prune_to("acme", 5) == hold
    assert await store.horizon("acme") == 0
    assert await store.get_event("acme", "acme-0") is not None
    assert await store.release_hold("acme") == hold
    assert await store.prune_to("acme", 5) == 5


async def test_a_hold_on_another_tenant_does_not_stop_this_one(store: Store) -> None:
    await _log(store)
    assert await store.set_hold(Hold("beta", "case", "cli:alice", NOW)) is None
    assert await store.prune_to("acme", 2) == 2


async def test_archives_are_recorded_once_and_listed_in_order(store: Store) -> None:
    def record(tenant: str, first: int, end: int, sha: str) -> ArchiveRecord:
        return ArchiveRecord(tenant, first, end, sha, f"/a/{sha}.zip", end, NOW, "cli:alice")

    later = record("acme", 100, 200, "b" * 64)
    first = record("acme", 0, 100, "a" * 64)
    other = record("beta", 0, 5, "c" * 64)
    for r in (later, first, other, first):
        await store.add_archive(r)
    assert await store.list_archives() == [first, later, other]
    assert await store.list_archives("acme") == [first, later]
    assert await store.list_archives("nobody") == []

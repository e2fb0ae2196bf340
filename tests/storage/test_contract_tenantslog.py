"""The storage contract for the tenants log, on every backend (``auditlog.storage.base``):
each stored checkpoint's leaf (gap-free indexes in store order, even from writers at once),
the log's nodes and checkpoints, witnesses' cosignatures and states."""

from __future__ import annotations

import asyncio

import pytest

from auditlog.storage.base import Store, StoredCheckpoint, TenantsLeaf, WitnessState
from storage.test_contract import append_ok, checkpoint_of, events, h

pytestmark = pytest.mark.anyio


def leaf(index: int, tenant: str, size: int, when: int = 1) -> TenantsLeaf:
    return TenantsLeaf(index, tenant, checkpoint_of(size, when=when))


async def test_each_stored_checkpoint_is_the_next_leaf_across_tenants(store: Store) -> None:
    assert await store.read_tenants_leaves(0, 100) == []
    assert await store.add_checkpoint("acme", checkpoint_of(3))
    assert await store.add_checkpoint("beta", checkpoint_of(1))
    assert await store.add_checkpoint("acme", checkpoint_of(5))
    # Refused (not larger than the tenant's latest): no leaf.
    assert not await store.add_checkpoint("acme", checkpoint_of(5, root=9))
    assert not await store.add_checkpoint("acme", checkpoint_of(4))
    assert await store.add_checkpoint("gamma", checkpoint_of(0))
    assert await store.add_checkpoint("beta", checkpoint_of(2))
    expected = [
        leaf(0, "acme", 3),
        leaf(1, "beta", 1),
        leaf(2, "acme", 5),
        leaf(3, "gamma", 0),
        leaf(4, "beta", 2),
    ]
    assert await store.read_tenants_leaves(0, 100) == expected
    assert await store.read_tenants_leaves(1, 2) == expected[1:3]
    assert await store.read_tenants_leaves(4, 100) == expected[4:]
    assert await store.read_tenants_leaves(5, 100) == []
    assert await store.read_tenants_leaves(-3, 2) == expected[:2]
    assert await store.read_tenants_leaves(0, 0) == []
    assert await store.read_tenants_leaves(0, -1) == []
    assert await store.read_tenants_leaves(2**70, 10) == []
    # The leaf holds the checkpoint as stored, note and all.
    assert (await store.read_tenants_leaves(2, 1))[0].checkpoint == checkpoint_of(5)


async def test_a_tenants_leaf_below_an_index(store: Store) -> None:
    for tenant, size in [("acme", 1), ("beta", 1), ("acme", 2), ("beta", 4), ("acme", 7)]:
        assert await store.add_checkpoint(tenant, checkpoint_of(size))
    # Leaves: 0 acme 1, 1 beta 1, 2 acme 2, 3 beta 4, 4 acme 7.
    assert await store.tenants_leaf("acme", 0) is None
    assert await store.tenants_leaf("acme", -5) is None
    assert await store.tenants_leaf("acme", 1) == leaf(0, "acme", 1)
    assert await store.tenants_leaf("acme", 2) == leaf(0, "acme", 1)
    assert await store.tenants_leaf("acme", 3) == leaf(2, "acme", 2)
    assert await store.tenants_leaf("acme", 4) == leaf(2, "acme", 2)
    assert await store.tenants_leaf("acme", 5) == leaf(4, "acme", 7)
    assert await store.tenants_leaf("acme", 2**70) == leaf(4, "acme", 7)
    assert await store.tenants_leaf("beta", 1) is None
    assert await store.tenants_leaf("beta", 2) == leaf(1, "beta", 1)
    assert await store.tenants_leaf("beta", 100) == leaf(3, "beta", 4)
    assert await store.tenants_leaf("nobody", 100) is None
    assert await store.tenants_leaf("ACME", 100) is None  # tenants are exact


async def test_a_tenant_with_events_but_no_checkpoint_has_no_leaf(store: Store) -> None:
    await append_ok(store, "acme", *events(3))
    assert await store.tenants_leaf("acme", 10) is None
    assert await store.read_tenants_leaves(0, 10) == []


async def test_tenants_nodes_are_stored_once_and_never_changed(store: Store) -> None:
    nodes = [(0, 0, h(1)), (0, 1, h(2)), (1, 0, h(3))]
    await store.put_tenants_nodes(nodes)
    await store.put_tenants_nodes(nodes)  # idempotent
    await store.put_tenants_nodes([(0, 0, h(9)), (2, 0, h(4))])
    await store.put_tenants_nodes([])
    found = await store.get_tenants_nodes([(0, 0), (0, 1), (1, 0), (2, 0), (0, 2), (5, 5)])
    assert found == {(0, 0): h(1), (0, 1): h(2), (1, 0): h(3), (2, 0): h(4)}
    assert await store.get_tenants_nodes([]) == {}
    # Apart from every tenant's own nodes.
    await store.put_nodes("acme", [(0, 0, h(7)), (0, 5, h(8))])
    assert await store.get_tenants_nodes([(0, 0), (0, 5)]) == {(0, 0): h(1)}
    assert await store.get_nodes("acme", [(0, 0)]) == {(0, 0): h(7)}


async def test_many_tenants_nodes_in_one_call(store: Store) -> None:
    nodes = [(level, i, h(level * 10_000 + i)) for level in (0, 1) for i in range(1200)]
    await store.put_tenants_nodes(nodes)
    keys = [(level, i) for level, i, _ in nodes]
    assert await store.get_tenants_nodes(keys) == {(level, i): x for level, i, x in nodes}


def tenants_checkpoint(size: int, when: int = 1) -> StoredCheckpoint:
    return StoredCheckpoint(size, h(1000 + size), when, f"tenants note {size}\n")


def cosigned(size: int, *witnesses: str) -> str:
    return tenants_checkpoint(size).note + "".join(f"— {w} sig{size}\n" for w in witnesses)


async def test_tenants_checkpoints_only_grow(store: Store) -> None:
    assert await store.latest_tenants_checkpoint() is None
    assert await store.add_tenants_checkpoint(tenants_checkpoint(3))
    assert not await store.add_tenants_checkpoint(tenants_checkpoint(3, when=9))  # same size
    assert not await store.add_tenants_checkpoint(tenants_checkpoint(2))  # smaller
    assert await store.latest_tenants_checkpoint() == tenants_checkpoint(3)
    assert await store.add_tenants_checkpoint(tenants_checkpoint(5))
    assert await store.latest_tenants_checkpoint() == tenants_checkpoint(5)
    # Apart from the tenants' own checkpoints.
    assert await store.latest_checkpoint("acme") is None
    assert await store.read_tenants_leaves(0, 10) == []


async def test_cosignatures_replace_and_the_quorum_sticks(store: Store) -> None:
    assert not await store.add_cosignatures(4, cosigned(4, "w1"), True)  # no such checkpoint
    for size in (2, 4, 6):
        assert await store.add_tenants_checkpoint(tenants_checkpoint(size))
    assert await store.witnessed_tenants_checkpoint() is None
    # Without cosignatures: the signed note alone.
    assert await store.cosigned_tenants_checkpoint(4) == tenants_checkpoint(4)
    assert await store.cosigned_tenants_checkpoint(3) is None
    assert await store.cosigned_tenants_checkpoint(-1) is None
    assert await store.cosigned_tenants_checkpoint(2**70) is None
    assert not await store.add_cosignatures(2**70, "x", True)

    assert await store.add_cosignatures(4, cosigned(4, "w1"), False)
    assert await store.witnessed_tenants_checkpoint() is None  # no quorum yet
    kept = await store.cosigned_tenants_checkpoint(4)
    assert kept == StoredCheckpoint(4, h(1004), 1, cosigned(4, "w1"))
    assert await store.add_cosignatures(4, cosigned(4, "w1", "w2"), True)
    witnessed = await store.witnessed_tenants_checkpoint()
    assert witnessed == StoredCheckpoint(4, h(1004), 1, cosigned(4, "w1", "w2"))
    # Replaced again with fewer lines and no quorum: the lines are replaced, the quorum stays.
    assert await store.add_cosignatures(4, cosigned(4, "w2"), False)
    witnessed = await store.witnessed_tenants_checkpoint()
    assert witnessed == StoredCheckpoint(4, h(1004), 1, cosigned(4, "w2"))
    # The largest with a quorum wins, not the latest marked.
    assert await store.add_cosignatures(6, cosigned(6, "w1", "w2"), True)
    assert await store.add_cosignatures(2, cosigned(2, "w1", "w2"), True)
    witnessed = await store.witnessed_tenants_checkpoint()
    assert witnessed == StoredCheckpoint(6, h(1006), 1, cosigned(6, "w1", "w2"))
    # The latest is the note as signed, without cosignatures.
    assert await store.latest_tenants_checkpoint() == tenants_checkpoint(6)
    assert await store.cosigned_tenants_checkpoint(2) == StoredCheckpoint(
        2, h(1002), 1, cosigned(2, "w1", "w2")
    )
    # A larger checkpoint without a quorum does not change which one is witnessed.
    assert await store.add_tenants_checkpoint(tenants_checkpoint(8))
    assert await store.add_cosignatures(8, cosigned(8, "w1"), False)
    assert (await store.witnessed_tenants_checkpoint()) == witnessed


async def test_witness_states_are_replaced_and_listed_by_name(store: Store) -> None:
    assert await store.list_witness_states() == []
    first = WitnessState("w-b", "https://b.example/", -1, "", 0, 10)
    await store.set_witness_state(first)
    assert await store.list_witness_states() == [first]
    later = WitnessState("w-b", "https://b2.example/", 7, "timed out", 3, 20)
    await store.set_witness_state(later)
    others = [
        WitnessState("Zeta", "https://z.example/", 7, "", 0, 5),
        WitnessState("a-witness", "https://a.example/", 0, "", 1, 6),
    ]
    for state in others:
        await store.set_witness_state(state)
    listed = await store.list_witness_states()
    assert listed == sorted([later, *others], key=lambda s: s.name)


async def add_many_at_once(stores: list[Store], tenants: int, rounds: int) -> None:
    """Every tenant offers checkpoints of sizes 1..rounds, each size twice (one is refused),
    all at once, spread over ``stores``."""

    async def offer(n: int, tenant: str, size: int) -> bool:
        return await stores[n % len(stores)].add_checkpoint(tenant, checkpoint_of(size))

    calls = [
        offer(t + size + copy, f"tenant-{t}", size)
        for size in range(1, rounds + 1)
        for t in range(tenants)
        for copy in (0, 1)
    ]
    await asyncio.gather(*calls)


async def check_gap_free(store: Store, tenants: int) -> None:
    leaves = await store.read_tenants_leaves(0, 100_000)
    assert [x.index for x in leaves] == list(range(len(leaves)))
    # Every stored checkpoint has exactly one leaf, and each tenant's leaves grow in size.
    by_tenant: dict[str, list[int]] = {}
    for x in leaves:
        by_tenant.setdefault(x.tenant, []).append(x.checkpoint.size)
    assert len(by_tenant) == tenants
    for tenant, sizes in by_tenant.items():
        assert sizes == sorted(set(sizes))
        stored = [c.size for c in await store.list_checkpoints(tenant)]
        assert stored == sizes


async def test_checkpoints_added_at_once_get_gap_free_indexes(store: Store) -> None:
    await add_many_at_once([store], tenants=12, rounds=6)
    await check_gap_free(store, 12)

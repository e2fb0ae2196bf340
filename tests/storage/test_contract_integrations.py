"""The storage contract for an integrator round stored at once (``Store.add_integrations``),
on every backend: each tenant's nodes and checkpoint as ``put_nodes`` and ``add_checkpoint``
would store them, with their tenants-log leaves in the round's order."""

from __future__ import annotations

import asyncio

import pytest

from auditlog.storage.base import Integration, Store, TenantsLeaf
from storage.test_contract import checkpoint_of, h

pytestmark = pytest.mark.anyio


def nodes(n: int, salt: int) -> list[tuple[int, int, bytes]]:
    return [(0, i, h(salt * 100 + i)) for i in range(n)]


async def test_a_round_stores_every_tenants_nodes_and_checkpoint(store: Store) -> None:
    assert await store.add_integrations([]) == []
    stored = await store.add_integrations(
        [
            Integration("acme", nodes(3, 1), checkpoint_of(3)),
            Integration("beta", nodes(1, 2), checkpoint_of(1)),
            Integration("gamma", [], checkpoint_of(2)),
        ]
    )
    assert stored == [True, True, True]
    assert await store.get_nodes("acme", [(0, 0), (0, 2)]) == {(0, 0): h(100), (0, 2): h(102)}
    assert await store.get_nodes("beta", [(0, 0), (0, 1)]) == {(0, 0): h(200)}
    assert await store.latest_checkpoint("acme") == checkpoint_of(3)
    assert await store.latest_checkpoint("gamma") == checkpoint_of(2)
    assert await store.read_tenants_leaves(0, 10) == [
        TenantsLeaf(0, "acme", checkpoint_of(3)),
        TenantsLeaf(1, "beta", checkpoint_of(1)),
        TenantsLeaf(2, "gamma", checkpoint_of(2)),
    ]


async def test_a_checkpoint_not_larger_is_refused_alone(store: Store) -> None:
    assert await store.add_checkpoint("acme", checkpoint_of(5))
    stored = await store.add_integrations(
        [
            Integration("acme", nodes(5, 1), checkpoint_of(5, root=9)),
            Integration("beta", nodes(2, 2), checkpoint_of(2)),
        ]
    )
    assert stored == [False, True]
    assert await store.latest_checkpoint("acme") == checkpoint_of(5)
    # Nodes are written all the same (a node never changes: the same hashes).
    assert await store.get_nodes("acme", [(0, 4)]) == {(0, 4): h(104)}
    assert [leaf.tenant for leaf in await store.read_tenants_leaves(0, 10)] == ["acme", "beta"]


async def test_rounds_at_once_keep_the_tenants_log_gap_free(store: Store) -> None:
    async def round_(r: int) -> list[bool]:
        return await store.add_integrations(
            [Integration(f"t{r}-{i}", [], checkpoint_of(1)) for i in range(5)]
        )

    results = await asyncio.gather(*(round_(r) for r in range(6)))
    assert all(all(r) for r in results)
    leaves = await store.read_tenants_leaves(0, 100)
    assert [leaf.index for leaf in leaves] == list(range(30))
    # Each round's leaves are consecutive, in its order.
    by_round: dict[str, list[int]] = {}
    for leaf in leaves:
        by_round.setdefault(leaf.tenant.split("-")[0], []).append(leaf.index)
    for indexes in by_round.values():
        assert indexes == list(range(indexes[0], indexes[0] + 5))

"""The storage contract for retention policies and legal holds, on every backend
(``auditlog.storage.base``): one policy and at most one hold per tenant."""

from __future__ import annotations

import anyio
import pytest

from auditlog.model.retention import Hold, Retention
from auditlog.storage.base import Store
from storage.test_contract import NOW

pytestmark = pytest.mark.anyio

DAY = 86_400


def policy(tenant: str, keep: int | None, at: int = NOW, by: str = "cli:alice") -> Retention:
    return Retention(tenant, keep, at, by)


def hold(tenant: str, reason: str = "litigation 117", by: str = "cli:alice") -> Hold:
    return Hold(tenant, reason, by, NOW)


async def test_a_tenant_without_a_policy_has_none(store: Store) -> None:
    assert await store.get_retention("acme") is None
    assert await store.list_retention() == []


async def test_a_policy_is_stored_replaced_and_listed_by_tenant(store: Store) -> None:
    acme = policy("acme", 400 * DAY)
    await store.set_retention(acme)
    assert await store.get_retention("acme") == acme
    assert await store.get_retention("ACME") is None  # tenants are exact
    # Replaced whole, with who and when; "none" (keep everything) is a policy too.
    kept = policy("acme", None, NOW + 5, "admin:key-1")
    await store.set_retention(kept)
    assert await store.get_retention("acme") == kept
    others = [policy("Zeta", 60), policy("globex", 12 * 3600), policy("b", 45)]
    for p in others:
        await store.set_retention(p)
    # By tenant name in byte order: upper case before lower case.
    assert await store.list_retention() == [others[0], kept, others[2], others[1]]


async def test_the_longest_retention_fits(store: Store) -> None:
    longest = policy("acme", 36_500 * DAY)
    await store.set_retention(longest)
    assert await store.get_retention("acme") == longest


async def test_a_hold_is_set_once_and_kept_as_it_was_set(store: Store) -> None:
    assert await store.get_hold("acme") is None
    first = hold("acme")
    assert await store.set_hold(first) is None
    assert await store.get_hold("acme") == first
    # A second hold on the same tenant changes nothing and answers the one that stands.
    assert await store.set_hold(hold("acme", "another case", "cli:bob")) == first
    assert await store.get_hold("acme") == first
    assert await store.get_hold("globex") is None


async def test_a_released_hold_is_gone_and_may_be_set_again(store: Store) -> None:
    first = hold("acme")
    assert await store.set_hold(first) is None
    assert await store.release_hold("acme") == first
    assert await store.get_hold("acme") is None
    assert await store.release_hold("acme") is None
    assert await store.release_hold("globex") is None
    again = hold("acme", "a new case")
    assert await store.set_hold(again) is None
    assert await store.get_hold("acme") == again


async def test_holds_are_listed_by_tenant(store: Store) -> None:
    assert await store.list_holds() == []
    holds = [hold("globex"), hold("Acme"), hold("acme")]
    for h in holds:
        assert await store.set_hold(h) is None
    assert await store.list_holds() == [holds[1], holds[2], holds[0]]
    await store.release_hold("acme")
    assert await store.list_holds() == [holds[1], holds[0]]


async def test_holds_and_policies_are_apart(store: Store) -> None:
    await store.set_retention(policy("acme", DAY))
    assert await store.set_hold(hold("acme")) is None
    await store.release_hold("acme")
    assert await store.get_retention("acme") == policy("acme", DAY)


async def test_concurrent_holds_set_once_and_releases_release_once(store: Store) -> None:
    set_results: list[Hold | str | None] = ["unset"] * 6

    async def set_one(i: int) -> None:
        set_results[i] = await store.set_hold(hold("acme", f"case {i}"))

    async with anyio.create_task_group() as tasks:
        for i in range(len(set_results)):
            tasks.start_soon(set_one, i)
    winners = [i for i, r in enumerate(set_results) if r is None]
    assert len(winners) == 1
    standing = hold("acme", f"case {winners[0]}")
    assert await store.get_hold("acme") == standing
    assert all(r == standing for i, r in enumerate(set_results) if i != winners[0])

    released: list[Hold | None] = [None] * 6

    async def release(i: int) -> None:
        released[i] = await store.release_hold("acme")

    async with anyio.create_task_group() as tasks:
        for i in range(len(released)):
            tasks.start_soon(release, i)
    assert [r for r in released if r is not None] == [standing]

"""The storage contract for people's logins: listing, removing and new passwords, on every
backend (``auditlog.storage.base``). Making and reading users is in ``test_contract.py``."""

from __future__ import annotations

import anyio
import pytest

from auditlog.model.credentials import User
from auditlog.storage.base import Store
from storage.test_contract import HASH, NOW, user

pytestmark = pytest.mark.anyio

NEW_HASH = "$scrypt$ln=4,r=8,p=1$bmV3$bmV3IGRpZ2VzdA"


def made(username: str, tenant: str = "acme", created_us: int = NOW) -> User:
    return User(username, tenant, ("events:read",), HASH, created_us)


async def test_users_are_listed_oldest_first_per_tenant(store: Store) -> None:
    assert await store.list_users() == []
    carol, alice, bob = made("carol", "acme", NOW), made("alice", "acme", NOW + 1), made("bob")
    other = made("dave", "globex", NOW + 2)
    for u in (other, alice, bob, carol):
        assert await store.create_user(u)
    # Oldest first; users made in the same microsecond by username.
    assert await store.list_users() == [bob, carol, alice, other]
    assert await store.list_users("acme") == [bob, carol, alice]
    assert await store.list_users("globex") == [other]
    assert await store.list_users("initech") == []
    assert await store.list_users("ACME") == []  # tenants are exact


async def test_a_removed_user_is_gone_and_its_name_free(store: Store) -> None:
    alice, bob = user("alice"), user("bob", "globex")
    assert await store.create_user(alice)
    assert await store.create_user(bob)
    assert await store.delete_user("alice") == alice
    assert await store.get_user("alice") is None
    assert await store.list_users() == [bob]
    assert await store.delete_user("alice") is None
    assert await store.delete_user("nobody") is None
    assert await store.delete_user("Bob") is None  # usernames are exact
    assert await store.get_user("bob") == bob
    # The name may be taken again, in another tenant too.
    again = user("alice", "globex", "$scrypt$again")
    assert await store.create_user(again)
    assert await store.get_user("alice") == again


async def test_concurrent_removals_remove_once(store: Store) -> None:
    alice = user("alice")
    assert await store.create_user(alice)
    results: list[User | None] = [None] * 6

    async def remove(i: int) -> None:
        results[i] = await store.delete_user("alice")

    async with anyio.create_task_group() as tasks:
        for i in range(len(results)):
            tasks.start_soon(remove, i)
    assert [r for r in results if r is not None] == [alice]
    assert await store.get_user("alice") is None


async def test_a_new_password_hash_replaces_the_old_one_only(store: Store) -> None:
    alice, bob = user("alice"), user("bob")
    assert await store.create_user(alice)
    assert await store.create_user(bob)
    changed = await store.set_password_hash("alice", NEW_HASH)
    assert changed == User("alice", "acme", alice.scopes, NEW_HASH, alice.created_us)
    assert await store.get_user("alice") == changed
    assert await store.get_user("bob") == bob
    assert await store.list_users() == [changed, bob]
    assert await store.set_password_hash("alice", HASH) == alice  # and back again


async def test_a_new_password_hash_for_nobody_stores_nothing(store: Store) -> None:
    assert await store.set_password_hash("alice", NEW_HASH) is None
    assert await store.get_user("alice") is None
    assert await store.list_users() == []
    assert await store.create_user(user("alice"))
    assert await store.delete_user("alice") is not None
    assert await store.set_password_hash("alice", NEW_HASH) is None
    assert await store.list_users() == []

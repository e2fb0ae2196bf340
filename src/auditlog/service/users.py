"""People's logins: adding, listing and removing users, and new passwords (``auditlog users``).

Removing a user or giving it a new password ends its login tokens from the next request on:
each token carries a fingerprint of the password hash it was issued under, which
``auditlog.service.tokens`` checks against the stored user on every request.
"""

from __future__ import annotations

from auditlog.errors import Conflict, NotFound
from auditlog.model import times
from auditlog.model.credentials import User, check_tenant, check_username
from auditlog.service.passwords import Passwords, check_password
from auditlog.storage.base import Store


def no_such_user(username: str) -> NotFound:
    return NotFound(f"no user {username!r}")


class Users:
    """Manage users in a ``Store``; their passwords are kept only as scrypt hashes."""

    def __init__(self, store: Store, passwords: Passwords) -> None:
        self._store = store
        self._passwords = passwords

    async def add(self, username: str, tenant: str, scopes: tuple[str, ...], password: str) -> User:
        """Store a new user and return it.

        ``ValueError`` when the username, tenant or password is not acceptable (the message
        never contains the password); ``Conflict`` when the username is taken (in any tenant).
        """
        check_username(username)
        check_tenant(tenant)
        check_password(password)
        if not scopes:
            raise ValueError("a user needs at least one scope")
        user = User(
            username=username,
            tenant=tenant,
            scopes=scopes,
            password_hash=await self._passwords.hash(password),
            created_us=times.now_us(),
        )
        if not await self._store.create_user(user):
            raise Conflict(f"the username {username!r} is taken")
        return user

    async def remove(self, username: str) -> User:
        """Remove a user and return it as it was; ``NotFound`` when there is no such user,
        ``ValueError`` when ``username`` is not a username."""
        check_username(username)
        removed = await self._store.delete_user(username)
        if removed is None:
            raise no_such_user(username)
        return removed

    async def change_password(self, username: str, password: str) -> User:
        """Give a user a new password and return the user as now stored.

        ``ValueError`` when the password is not acceptable (the message never contains it),
        ``NotFound`` when there is no such user (nothing is stored then).
        """
        check_username(username)
        check_password(password)
        changed = await self._store.set_password_hash(
            username, await self._passwords.hash(password)
        )
        if changed is None:
            raise no_such_user(username)
        return changed

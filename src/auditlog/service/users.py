"""People's logins: adding a user (``auditlog users add``)."""

from __future__ import annotations

from auditlog.errors import Conflict
from auditlog.model import times
from auditlog.model.credentials import User, check_tenant, check_username
from auditlog.service.passwords import Passwords, check_password
from auditlog.storage.base import Store


class Users:
    """Make users in a ``Store``; their passwords are kept only as scrypt hashes."""

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

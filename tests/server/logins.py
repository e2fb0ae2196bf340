"""Helpers for tests of logins: users made straight in the store, and logging in over HTTP."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from auditlog.model import times
from auditlog.model.credentials import User
from auditlog.server.app import AuditlogApp
from auditlog.service.passwords import hash_password

PASSWORD = "correct horse battery staple"
#: Hashed once for the whole run: each scrypt hash costs about 100 ms, on purpose.
PASSWORD_HASH = hash_password(PASSWORD)


async def add_user(
    app: AuditlogApp,
    username: str = "alice",
    tenant: str = "acme",
    scopes: Sequence[str] = ("events:read", "events:write"),
) -> User:
    """A user whose password is ``PASSWORD``, stored as ``auditlog users add`` stores it."""
    user = User(username, tenant, tuple(scopes), PASSWORD_HASH, times.now_us())
    assert await app.services.store.create_user(user)
    return user


async def login(
    client: httpx.AsyncClient, username: str = "alice", password: str = PASSWORD, **more: Any
) -> httpx.Response:
    return await client.post(
        "/v1/auth/token", json={"username": username, "password": password, **more}
    )


async def token_of(client: httpx.AsyncClient, username: str = "alice") -> str:
    response = await login(client, username)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token

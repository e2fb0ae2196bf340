"""Login tokens end with their user (API.md §4, §9): after ``auditlog users remove`` or
``auditlog users passwd`` the tokens given before are refused (401, saying why) from the next
request on, through the whole application.

On SQLite and PostgreSQL the command itself runs, on the same store as the running
application (as an operator runs it beside a server); the in-memory store cannot be reached
from outside, so there the command's service does the same change.
"""

from __future__ import annotations

import io
import sys
from typing import Any

import anyio
import httpx
import pytest

from auditlog.cli.main import main
from auditlog.server.app import AuditlogApp
from auditlog.service.passwords import Passwords
from auditlog.service.tokens import PASSWORD_CHANGED, USER_REMOVED
from auditlog.service.users import Users
from auditlog.storage.postgres.store import PostgresStore
from auditlog.storage.sqlite.store import SQLiteStore
from server.api import bearer, problem
from server.conftest import ControlledStore, MakeApi
from server.logins import PASSWORD, add_user, login, token_of

pytestmark = pytest.mark.anyio

NEW_PASSWORD = "tr0ub4dor and three"
#: Routes a login token may use, of several kinds: who am I, a read, the first version's check.
ROUTES = (("GET", "/v1/auth/whoami"), ("GET", "/v1/events"), ("GET", "/auth"))


class PipedStdin(io.StringIO):
    def isatty(self) -> bool:
        return False


async def users_command(
    store: ControlledStore, monkeypatch: pytest.MonkeyPatch, *argv: str, stdin: str = ""
) -> None:
    """``auditlog users ARGV...`` on the application's store, while the application runs."""
    inner = store.inner
    if isinstance(inner, SQLiteStore | PostgresStore):
        url = f"sqlite:///{inner.path}" if isinstance(inner, SQLiteStore) else inner.url
        monkeypatch.setattr(sys, "stdin", PipedStdin(stdin))
        code = await anyio.to_thread.run_sync(main, ["users", *argv, "--store", url])
        assert code == 0
        return
    service = Users(store, Passwords())
    if argv[0] == "remove":
        await service.remove(argv[1])
    else:
        assert argv[0] == "passwd"
        await service.change_password(argv[1], stdin.strip())


async def answers(client: httpx.AsyncClient, token: str) -> list[int]:
    return [
        (await client.request(method, path, headers=bearer(token))).status_code
        for method, path in ROUTES
    ]


async def refusals(client: httpx.AsyncClient, token: str) -> set[str]:
    """The details of the 401s every route answers ``token`` (each must be a 401)."""
    details = set()
    for method, path in ROUTES:
        response = await client.request(method, path, headers=bearer(token))
        doc: dict[str, Any] = problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")
        details.add(doc["detail"])
    return details


async def test_a_removed_users_tokens_are_refused_from_the_next_request(
    app: AuditlogApp,
    client: httpx.AsyncClient,
    store: ControlledStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await add_user(app, "alice")
    await add_user(app, "bob")
    first, second, bobs = (
        await token_of(client),
        await token_of(client),
        await token_of(client, "bob"),
    )
    for token in (first, second, bobs):
        assert await answers(client, token) == [200, 200, 200]
    await users_command(store, monkeypatch, "remove", "alice")
    for token in (first, second):
        assert await refusals(client, token) == {USER_REMOVED}
    assert await answers(client, bobs) == [200, 200, 200]  # other people go on
    assert (await login(client)).status_code == 401


async def test_a_user_made_again_does_not_revive_the_old_tokens(
    app: AuditlogApp,
    client: httpx.AsyncClient,
    store: ControlledStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await add_user(app, "alice", "acme")
    old = await token_of(client)
    await users_command(store, monkeypatch, "remove", "alice")
    await add_user(app, "alice", "globex")
    assert await refusals(client, old) == {USER_REMOVED}
    new = await token_of(client)
    assert (await client.get("/v1/auth/whoami", headers=bearer(new))).json()["tenant"] == "globex"
    assert await refusals(client, old) == {USER_REMOVED}


async def test_a_new_password_ends_the_tokens_given_before(
    app: AuditlogApp,
    client: httpx.AsyncClient,
    store: ControlledStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await add_user(app, "alice")
    await add_user(app, "bob")
    before, bobs = await token_of(client), await token_of(client, "bob")
    assert await answers(client, before) == [200, 200, 200]
    await users_command(store, monkeypatch, "passwd", "alice", stdin=NEW_PASSWORD + "\n")
    assert await refusals(client, before) == {PASSWORD_CHANGED}
    assert await answers(client, bobs) == [200, 200, 200]
    assert (await login(client, "alice", PASSWORD)).status_code == 401
    response = await login(client, "alice", NEW_PASSWORD)
    assert response.status_code == 200
    after = response.json()["access_token"]
    assert await answers(client, after) == [200, 200, 200]
    assert await refusals(client, before) == {PASSWORD_CHANGED}


async def test_api_keys_of_the_tenant_are_not_touched(
    app: AuditlogApp,
    client: httpx.AsyncClient,
    store: ControlledStore,
    monkeypatch: pytest.MonkeyPatch,
    make_api: MakeApi,
) -> None:
    api = await make_api()
    await add_user(app, "alice")
    await users_command(store, monkeypatch, "remove", "alice")
    assert (await api.client.get("/v1/auth/whoami", headers=bearer(api.token))).status_code == 200

"""Every route, tried without a credential, with forged and revoked ones, with each scope
missing, and with another tenant's credentials (API.md §4).

The routes come from the application itself (``app.router.routes``), so a route added later is
tried too. tests/server/test_login.py and test_auth.py hold the token and key cases on a few
routes; here each case meets every route.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest

from auditlog.model import times
from auditlog.model.credentials import ADMIN, SCOPES
from auditlog.model.query import parse_query
from auditlog.server.app import AuditlogApp
from security.routes import call_for, credential_routes
from server.api import Api, bearer, problem
from server.conftest import MakeApi
from server.logins import add_user, token_of
from server.test_login import forgeries

pytestmark = pytest.mark.anyio

#: The first tenant's log: this many events, holding these strings, none of which any answer
#: to another tenant may show.
FIRST_SIZE = 50
MARKER = "CONFIDENTIAL-7f3a"
FIRST_ACTOR = "first-tenant-actor"


async def log_of(app: AuditlogApp, tenant: str) -> list[dict[str, Any]]:
    """The tenant's whole log, read straight from the store."""
    query, _ = parse_query([("order", "asc"), ("limit", "1000")])
    page = await app.services.store.query(tenant, query)
    return [orjson.loads(body) for body in page.bodies]


def status_of(response: httpx.Response) -> int:
    """The status, with the problem document of an error checked (and its detail shown)."""
    if response.status_code >= 400:
        problem(response, response.status_code)
    return response.status_code


# -- no credential, forged credentials, revoked keys -------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Basic YWxpY2U6cHc=", "Bearer alk_", "Bearer alk_x_y", "x"],
)
async def test_every_route_needs_a_credential(
    app: AuditlogApp, client: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    for route in credential_routes(app):
        response = await call_for(route).send(client, headers)
        assert status_of(response) == 401, route
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_every_route_refuses_every_forged_or_expired_token(
    app: AuditlogApp, client: httpx.AsyncClient
) -> None:
    await add_user(app, "alice", "acme", SCOPES)
    forged = await forgeries(app, client)
    for route in credential_routes(app):
        for name, token in forged.items():
            for form in ("Bearer {t}", "Bearer: {t}"):
                response = await call_for(route).send(
                    client, {"Authorization": form.format(t=token)}
                )
                assert status_of(response) == 401, (route.pattern, name)


async def test_every_route_refuses_a_key_revoked_between_two_requests(
    app: AuditlogApp, make_api: MakeApi
) -> None:
    for route in credential_routes(app):
        key = await make_api("acme", SCOPES, "short-lived")
        first = await call_for(route).send(key.client, key.headers)
        assert status_of(first) not in (401, 403), route
        assert await app.services.store.revoke_api_key(key.key_id, times.now_us())
        second = await call_for(route).send(key.client, key.headers)
        assert status_of(second) == 401, route
        assert "revoked" in second.json()["detail"]


# -- scopes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("scope", SCOPES)
async def test_every_route_with_each_single_scope(
    app: AuditlogApp, make_api: MakeApi, scope: str
) -> None:
    key = await make_api("acme", (scope,), f"only-{scope}")
    for route in credential_routes(app):
        status = status_of(await call_for(route).send(key.client, key.headers))
        if route.scope and route.scope != scope and scope != ADMIN:
            assert status == 403, (route.pattern, scope)
        else:
            assert status not in (401, 403), (route.pattern, scope, status)


async def test_every_route_with_every_scope_but_its_own(
    app: AuditlogApp, make_api: MakeApi
) -> None:
    for route in credential_routes(app):
        if not route.scope:  # any valid credential will do
            continue
        others = [s for s in SCOPES if s not in (route.scope, ADMIN)]
        key = await make_api("acme", others, "all-but-one")
        response = await call_for(route).send(key.client, key.headers)
        assert status_of(response) == 403, route
        assert route.scope in response.json()["detail"]


async def test_every_route_with_a_login_token_lacking_the_scope(
    app: AuditlogApp, client: httpx.AsyncClient
) -> None:
    await add_user(app, "alice", "acme", ("log:read",))
    token = await token_of(client)
    for route in credential_routes(app):
        status = status_of(await call_for(route).send(client, bearer(token)))
        if route.scope and route.scope != "log:read":
            assert status == 403, route
        else:
            assert status not in (401, 403), route


# -- another tenant's credentials -------------------------------------------------------------


@dataclass
class Tenants:
    first: Api
    others: list[Api]
    first_log: list[dict[str, Any]]


@pytest.fixture
async def tenants(app: AuditlogApp, client: httpx.AsyncClient, make_api: MakeApi) -> Tenants:
    """acme with a log of FIRST_SIZE events; globex with two, and two admin credentials of
    globex's: an API key and a login token."""
    first = await make_api("acme", SCOPES, "first-tenant-key")
    await first.create_batch(
        [
            {"id": f"evt-{i:04d}", "type": "payment", "actor": FIRST_ACTOR,
             "subject": {"id": f"acct-{i}", "type": "account"}, "data": {"marker": MARKER, "i": i}}
            for i in range(1, FIRST_SIZE + 1)
        ]
    )  # fmt: skip
    key = await make_api("globex", (ADMIN,), "other-tenant-key")
    await key.create_batch([{"id": "g1", "type": "t"}, {"id": "g2", "type": "t"}])
    await add_user(app, "gina", "globex", (ADMIN,))
    token = Api(client, await token_of(client, "gina"))
    for tenant in ("acme", "globex"):  # both logs checkpointed, so that proofs are there
        await app.services.integrator.integrate_batch(tenant)
    return Tenants(first, [key, token], await log_of(app, "acme"))


async def test_no_route_shows_another_tenants_log(app: AuditlogApp, tenants: Tenants) -> None:
    leaks = ["acme", MARKER, FIRST_ACTOR, "first-tenant-key", tenants.first.key_id]
    first = tenants.first
    for route in credential_routes(app):  # the control: the proofs exist in the first log
        if route.name in ("log.inclusion", "log.consistency"):
            response = await call_for(route, tree_size=FIRST_SIZE).send(first.client, first.headers)
            assert response.status_code == 200, response.text
    for other in tenants.others:
        for route in credential_routes(app):
            for event_id in ("evt-0001", f"evt-{FIRST_SIZE:04d}"):
                call = call_for(route, event_id, tree_size=FIRST_SIZE)
                response = await call.send(other.client, other.headers)
                status = status_of(response)
                seen = response.text + orjson.dumps(dict(response.headers)).decode()
                for leak in leaks:
                    assert leak not in seen, (route.pattern, leak)
                assert status not in (401, 403), route
                if route.name in ("log.inclusion", "log.consistency"):
                    # Proofs of a tree as large as the first tenant's: not in this log.
                    assert status != 200, (route.pattern, response.text)
                if status == 200 and response.headers["content-type"] == "application/json":
                    body = response.json()
                    if isinstance(body, dict):
                        for size in ("tree_size", "second"):
                            assert body.get(size, 0) < FIRST_SIZE, (route.pattern, body)


async def test_ids_and_writes_stay_in_their_tenant(app: AuditlogApp, tenants: Tenants) -> None:
    other = tenants.others[0]
    # The first tenant holds evt-0001 with other content: no conflict (409) may say so.
    created = await other.post({"id": "evt-0001", "type": "probe", "data": {"mine": True}})
    assert created.status_code == 201, created.text
    assert created.json()["tenant"] == "globex"
    assert created.json()["seq"] == 3  # after g1, g2 and gina's login
    # The tenant in a body is not a field anyone may set.
    problem(await other.post({"type": "t", "tenant": "acme"}), 422)
    problem(await other.post([{"type": "t"}, {"type": "t", "tenant": "acme"}]), 422)
    legacy = await other.client.post(
        "/event",
        json={"event_type": "t", "event_details": {"tenant": "acme"}},
        headers=other.headers,
    )
    assert legacy.status_code == 200
    assert await log_of(app, "acme") == tenants.first_log
    globex = await log_of(app, "globex")
    assert [e["type"] for e in globex] == ["t", "t", "auditlog.login.succeeded", "probe", "t"]
    assert globex[3]["id"] == "evt-0001"
    assert {e["tenant"] for e in globex} == {"globex"}


async def test_another_tenants_cursor_reads_nothing_of_the_first(tenants: Tenants) -> None:
    page = await tenants.first.page([("limit", "5")])
    cursor = page["next_cursor"]
    assert cursor is not None
    for other in tenants.others:
        response = await other.query([("limit", "5"), ("cursor", cursor)])
        if response.status_code == 200:
            assert all(e["tenant"] == "globex" for e in response.json()["events"])
            assert MARKER not in response.text
        else:
            problem(response, 400)

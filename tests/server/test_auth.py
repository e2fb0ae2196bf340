"""Credentials (API.md §4, API keys): 401, 403, ``admin``, tenant isolation and whoami."""

from __future__ import annotations

import httpx
import pytest

from auditlog.model import times
from auditlog.server.app import AuditlogApp
from server.api import Api, bearer, problem
from server.conftest import MakeApi

pytestmark = pytest.mark.anyio

#: Every route that needs a credential, with a request that is valid apart from that, and the
#: scope it needs ("" for any valid credential).
ROUTES: list[tuple[str, str, str]] = [
    ("POST", "/v1/events", "events:write"),
    ("GET", "/v1/events", "events:read"),
    ("GET", "/v1/events/e1", "events:read"),
    ("GET", "/v1/auth/whoami", ""),
]
ROUTE_IDS = [f"{m} {p}" for m, p, _ in ROUTES]


async def send(
    client: httpx.AsyncClient, method: str, path: str, headers: dict[str, str]
) -> httpx.Response:
    if method == "POST":
        return await client.post(path, json={"id": "e1", "type": "t"}, headers=headers)
    return await client.request(method, path, headers=headers)


def assert_unauthorized(response: httpx.Response) -> None:
    problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("method", "path", "scope"), ROUTES, ids=ROUTE_IDS)
@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic YWxpY2U6c2VjcmV0",
        "Token alk_aaaaaaaaaaaaaaaa_secret",
        "Bearer nonsense",
        "Bearer alk_aaaaaaaaaaaaaaaa_secret",  # a well-formed key that does not exist
        "Bearer alk_short_secret",
        "Bearer alk_aaaaaaaaaaaaaaaa_",
        "Bearer jwt.header.signature",
    ],
)
async def test_no_valid_credential_is_401(
    client: httpx.AsyncClient,
    api: Api,
    method: str,
    path: str,
    scope: str,
    authorization: str | None,
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    assert_unauthorized(await send(client, method, path, headers))
    assert await api.everything() == []


@pytest.mark.parametrize(("method", "path", "scope"), ROUTES, ids=ROUTE_IDS)
async def test_a_forged_secret_is_401(
    client: httpx.AsyncClient, api: Api, method: str, path: str, scope: str
) -> None:
    prefix, key_id, secret = api.token.split("_", 2)
    forged = f"{prefix}_{key_id}_{'A' if secret[0] != 'A' else 'B'}{secret[1:]}"
    assert_unauthorized(await send(client, method, path, bearer(forged)))
    assert_unauthorized(await send(client, method, path, bearer(api.token + "x")))
    assert_unauthorized(await send(client, method, path, bearer(f"{prefix}_{key_id}_")))


@pytest.mark.parametrize(("method", "path", "scope"), ROUTES, ids=ROUTE_IDS)
async def test_a_revoked_key_is_refused_from_the_next_request(
    app: AuditlogApp, client: httpx.AsyncClient, api: Api, method: str, path: str, scope: str
) -> None:
    before = await send(client, method, path, api.headers)
    assert before.status_code in (200, 201, 404)
    assert await app.services.store.revoke_api_key(api.key_id, times.now_us())
    after = await send(client, method, path, api.headers)
    assert_unauthorized(after)
    assert "revoked" in after.json()["detail"]


async def test_revoking_one_key_leaves_the_others(make_api: MakeApi, app: AuditlogApp) -> None:
    first, second = await make_api(), await make_api()
    await app.services.store.revoke_api_key(first.key_id, times.now_us())
    assert (await first.query()).status_code == 401
    assert (await second.query()).status_code == 200


@pytest.mark.parametrize(
    "authorization", ["Bearer {t}", "Bearer: {t}", "bearer {t}", "BEARER {t}", "Bearer   {t}  "]
)
async def test_accepted_forms_of_the_authorization_header(
    client: httpx.AsyncClient, api: Api, authorization: str
) -> None:
    headers = {"Authorization": authorization.format(t=api.token)}
    response = await client.post("/v1/events", json={"type": "t"}, headers=headers)
    assert response.status_code == 201
    assert (await client.get("/v1/events", headers=headers)).status_code == 200


# -- scopes ------------------------------------------------------------------------------------


LACKING: list[tuple[str, str, str, tuple[str, ...]]] = [
    (method, path, scope, scopes)
    for method, path, scope in ROUTES
    if scope
    for scopes in (("events:read",), ("events:write",), ("log:read",), ("log:read", "events:read"))
    if scope not in scopes
]


@pytest.mark.parametrize(
    ("method", "path", "scope", "scopes"),
    LACKING,
    ids=[f"{m} {p} with {'+'.join(s)}" for m, p, _, s in LACKING],
)
async def test_a_key_without_the_scope_is_403(
    make_api: MakeApi,
    api: Api,
    client: httpx.AsyncClient,
    method: str,
    path: str,
    scope: str,
    scopes: tuple[str, ...],
) -> None:
    other = await make_api(scopes=scopes)
    response = await send(client, method, path, other.headers)
    doc = problem(response, 403)
    assert scope in doc["detail"]
    assert "www-authenticate" not in response.headers
    assert await api.everything() == []


async def test_each_scope_grants_its_routes(make_api: MakeApi) -> None:
    writer = await make_api(scopes=("events:write",))
    reader = await make_api(scopes=("events:read",))
    assert (await writer.post({"id": "e1", "type": "t"})).status_code == 201
    assert (await reader.get("e1")).status_code == 200
    assert (await reader.query()).status_code == 200


async def test_admin_grants_every_scope(make_api: MakeApi, client: httpx.AsyncClient) -> None:
    admin = await make_api(scopes=("admin",))
    for method, path, _ in ROUTES:
        response = await send(client, method, path, admin.headers)
        assert response.status_code in (200, 201), (method, path, response.text)


async def test_whoami_needs_no_particular_scope(make_api: MakeApi) -> None:
    logger = await make_api(tenant="globex", scopes=("log:read",), name="auditor")
    response = await logger.client.get("/v1/auth/whoami", headers=logger.headers)
    assert response.status_code == 200
    assert response.json() == {
        "principal": f"key:{logger.key_id}",
        "tenant": "globex",
        "scopes": ["log:read"],
        "expires_at": None,
        "credential": {"kind": "api_key", "id": logger.key_id, "name": "auditor"},
    }


async def test_whoami_lists_every_scope_sorted(make_api: MakeApi) -> None:
    both = await make_api(scopes=("events:write", "admin", "events:read"))
    body = (await both.client.get("/v1/auth/whoami", headers=both.headers)).json()
    assert body["scopes"] == ["admin", "events:read", "events:write"]


# -- tenants ---------------------------------------------------------------------------------


async def test_a_tenant_never_sees_another_tenants_events(api: Api, make_api: MakeApi) -> None:
    other = await make_api(tenant="globex")
    await api.create({"id": "secret", "type": "payroll.run", "data": {"total": 1}})
    problem(await other.get("secret"), 404)
    assert await other.everything() == []
    for params in (
        [("id", "secret")],
        [("type", "payroll.run")],
        [("q", "payroll")],
        [("tenant", "acme")],
    ):
        assert (await other.page(params))["events"] == []
    assert [e["id"] for e in await api.everything()] == ["secret"]


async def test_each_tenant_has_its_own_log_and_ids(api: Api, make_api: MakeApi) -> None:
    other = await make_api(tenant="globex")
    mine = await api.create({"id": "shared", "type": "t", "data": {"v": 1}})
    # The same id with other content in another tenant is no conflict: it is another event.
    theirs = await other.create({"id": "shared", "type": "t", "data": {"v": 2}})
    assert (mine["tenant"], mine["seq"]) == ("acme", 0)
    assert (theirs["tenant"], theirs["seq"]) == ("globex", 0)
    assert (await api.get("shared")).json() == mine
    assert (await other.get("shared")).json() == theirs
    # A retry is a replay in its own tenant only.
    replay = await other.post({"id": "shared", "type": "t", "data": {"v": 2}})
    assert replay.status_code == 200
    assert replay.json() == theirs
    assert (await api.post({"id": "shared", "type": "t", "data": {"v": 2}})).status_code == 409
    batch = await other.create_batch([{"id": "b", "type": "t"}])
    assert batch == [{"id": "b", "seq": 1}]
    assert [e["id"] for e in await api.everything()] == ["shared"]


async def test_a_cursor_cannot_reach_another_tenant(api: Api, make_api: MakeApi) -> None:
    other = await make_api(tenant="globex")
    await api.create_batch([{"id": f"a{i}", "type": "t"} for i in range(5)])
    await other.create_batch([{"id": f"g{i}", "type": "t"} for i in range(5)])
    page = await api.page([("limit", "2")])
    rest = await other.page([("limit", "2"), ("cursor", page["next_cursor"])])
    assert [(e["tenant"], e["id"]) for e in rest["events"]] == [("globex", "g2"), ("globex", "g1")]


async def test_the_body_cannot_choose_the_tenant(api: Api) -> None:
    doc = problem(await api.post({"type": "t", "tenant": "globex"}), 422)
    assert [e["field"] for e in doc["errors"]] == ["tenant"]

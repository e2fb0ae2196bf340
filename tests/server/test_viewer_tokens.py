"""Viewer tokens (API.md §12) through the real application on every backend: what they may
do, every way a holder might try to see more than the bound filter, their end, their
exchange and revocation, and the records of all of it."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import httpx
import orjson
import pytest

from auditlog.model import times
from auditlog.server.app import AuditlogApp
from auditlog.service.live import KEEPALIVE
from server.api import Api, bearer, problem
from server.conftest import QUIET, MakeApi

pytestmark = pytest.mark.anyio

TOKENS = "/v1/viewer-tokens"
#: The customer the viewer may see, and another one it must never see.
MINE, OTHER = "customer-42", "customer-43"


@pytest.fixture
async def admin(make_api: MakeApi) -> Api:
    return await make_api("acme", ("admin",), "admin")


@pytest.fixture
async def stored(api: Api) -> list[dict[str, Any]]:
    """Events of both customers, of two types, with a number and words, over two days."""
    events = []
    for i in range(12):
        subject = MINE if i % 2 == 0 else OTHER
        events.append(
            {
                "id": f"e{i}",
                "type": "invoice.paid" if i % 3 else "login",
                "subject": {"id": subject, "type": "customer"},
                "actor": f"user-{i % 4}",
                "time": f"2026-11-0{1 + i % 2}T00:00:{i:02d}Z",
                "data": {"amount": i * 10, "note": f"secret of {subject}", "owner": subject},
            }
        )
    await api.create_batch(events)
    return events


async def issue(admin: Api, filter_: Any, ttl: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"filter": filter_}
    if ttl is not None:
        body["ttl_seconds"] = ttl
    response = await admin.client.post(TOKENS, json=body, headers=admin.headers)
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    made: dict[str, Any] = response.json()
    return made


def viewer(admin: Api, made: dict[str, Any]) -> Api:
    return Api(admin.client, made["token"], made["id"])


def subjects(events: list[dict[str, Any]]) -> set[str]:
    return {e["subject"]["id"] for e in events}


async def test_a_viewer_token_reads_only_its_filter(
    admin: Api, stored: list[dict[str, Any]]
) -> None:
    made = await issue(admin, {"subject": MINE})
    assert made["filter"] == {"subject": MINE}
    assert made["token"].startswith("alk_")
    seen = await viewer(admin, made).everything()
    assert [e["id"] for e in seen] == [e["id"] for e in stored if e["subject"]["id"] == MINE]


@pytest.mark.parametrize(
    "params",
    [
        [("subject", OTHER)],
        [("subject", MINE), ("subject", OTHER)],
        [("subject[in]", f"{MINE},{OTHER}")],
        [("subject[ne]", MINE)],
        [("subject[prefix]", "customer")],
        [("subject[exists]", "true")],
        [("subject.id", OTHER)],
        [("data.owner", OTHER)],
        [("q", "secret")],
        [("q", "customer*")],
        [("type", "login"), ("type", "invoice.paid")],
        [("tenant", "acme")],
        [("since", "2000-01-01T00:00:00Z")],
        [("order", "asc"), ("limit", "1000")],
        [("data.amount[gte]", "0")],
        [("id[in]", ",".join(f"e{i}" for i in range(12)))],
    ],
)
async def test_no_query_widens_the_filter(
    admin: Api, stored: list[dict[str, Any]], params: list[tuple[str, str]]
) -> None:
    token = viewer(admin, await issue(admin, {"subject": MINE}))
    found = await token.walk(params)
    assert subjects(found) <= {MINE}
    # Exactly the customer's own among what the same query finds for an admin.
    everything = await admin.walk(params)
    assert [e["id"] for e in found] == [
        e["id"] for e in everything if e.get("subject", {}).get("id") == MINE
    ]


async def test_a_cursor_of_another_credential_does_not_carry_its_view(
    admin: Api, stored: list[dict[str, Any]]
) -> None:
    token = viewer(admin, await issue(admin, {"subject": MINE}))
    page = await admin.page([("limit", "2")])
    assert page["next_cursor"] is not None
    response = await token.query([("limit", "2"), ("cursor", page["next_cursor"])])
    assert "cursor" in problem(response, 400)["detail"]


async def test_an_event_outside_the_filter_is_404_by_id(
    admin: Api, stored: list[dict[str, Any]]
) -> None:
    token = viewer(admin, await issue(admin, {"subject": MINE}))
    assert (await token.get("e0")).status_code == 200
    # The same answer as for an id that does not exist: nothing tells the event is there.
    assert problem(await token.get("e1"), 404)["detail"] == "no event with id 'e1'"
    assert problem(await token.get("e99"), 404)["detail"] == "no event with id 'e99'"


async def test_the_export_is_bound_too(admin: Api, stored: list[dict[str, Any]]) -> None:
    token = viewer(admin, await issue(admin, {"subject": MINE, "type": "invoice.paid"}))
    for params in ([], [("subject", OTHER)], [("format", "csv")], [("q", "secret")]):
        response = await token.client.get("/v1/events/export", params=params, headers=token.headers)
        assert response.status_code == 200, response.text
        assert OTHER.encode() not in response.content
    lines = (await token.client.get("/v1/events/export", headers=token.headers)).content
    ids = [orjson.loads(line)["id"] for line in lines.splitlines()]
    assert ids == [
        e["id"] for e in stored if e["subject"]["id"] == MINE and e["type"] == "invoice.paid"
    ]


@pytest.mark.parametrize(
    "settings", [dataclasses.replace(QUIET, live_stream_keepalive_seconds=1)], ids=["keepalive-1s"]
)
async def test_the_live_stream_is_bound_too(
    app: AuditlogApp, admin: Api, api: Api, stored: list[dict[str, Any]]
) -> None:
    made = await issue(admin, {"subject": MINE})
    credential = await app.services.auth.authenticate(made["token"])
    opened = await app.services.live.open(credential, [("subject", OTHER)], "0")
    chunks = opened.chunks
    try:
        body = b""
        async for chunk in chunks:
            body += chunk
            # The replay is over once the stream, idle, sends its first keep-alive.
            if b"event: audit" in body or chunk == KEEPALIVE:
                break
    finally:
        await chunks.aclose()
    assert b"event: audit" not in body  # the AND of both filters matches nothing
    opened = await app.services.live.open(credential, [], "0")
    try:
        frames = b""
        async for chunk in opened.chunks:
            frames += chunk
            if frames.count(b"event: audit") >= 5:
                break
    finally:
        await opened.chunks.aclose()
    assert OTHER.encode() not in frames
    assert frames.count(b"event: audit") >= 5


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/events", {"type": "t"}),
        ("GET", "/v1/log/checkpoint", None),
        ("GET", "/v1/streams", None),
        ("POST", TOKENS, {"filter": {}}),
        ("GET", TOKENS, None),
        ("GET", "/event", None),
        ("POST", "/event", {"event_type": "x", "event_details": {}}),
        ("GET", "/auth", None),
    ],
)
async def test_a_viewer_token_can_do_nothing_else(
    admin: Api, stored: list[dict[str, Any]], method: str, path: str, body: Any
) -> None:
    token = viewer(admin, await issue(admin, {"subject": MINE}))
    kwargs: dict[str, Any] = {"headers": token.headers}
    if body is not None:
        kwargs["json"] = body
    problem(await token.client.request(method, path, **kwargs), 403)


async def test_whoami_tells_the_filter_and_the_end(admin: Api) -> None:
    made = await issue(admin, {"subject": MINE, "type": ["a", "b"]}, ttl=60)
    me = (await admin.client.get("/v1/auth/whoami", headers=bearer(made["token"]))).json()
    assert me["scopes"] == ["events:read"]
    assert me["credential"]["kind"] == "viewer"
    assert me["filter"] == {"subject": MINE, "type": ["a", "b"]}
    assert me["expires_at"] == made["expires_at"]
    lifetime = times.parse_rfc3339(made["expires_at"]) - times.parse_rfc3339(made["created_at"])
    assert 59_000_000 <= lifetime <= 61_000_000


async def test_an_expired_viewer_token_is_refused(
    app: AuditlogApp, client: httpx.AsyncClient
) -> None:
    _, token = await app.services.api_keys.create(
        "acme", ("events:read",), None, bound="{}", expires_us=times.now_us() - 1
    )
    response = await client.get("/v1/events", headers=bearer(token))
    assert "expired" in problem(response, 401)["detail"]


async def test_a_revoked_viewer_token_is_refused_from_the_next_request(admin: Api) -> None:
    made = await issue(admin, {"subject": MINE})
    token = viewer(admin, made)
    assert (await token.query()).status_code == 200
    listed = (await admin.client.get(TOKENS, headers=admin.headers)).json()["tokens"]
    assert [t["id"] for t in listed] == [made["id"]]
    assert "token" not in listed[0]
    response = await admin.client.delete(f"{TOKENS}/{made['id']}", headers=admin.headers)
    assert response.status_code == 204
    problem(await token.query(), 401)
    assert (await admin.client.get(TOKENS, headers=admin.headers)).json() == {"tokens": []}


async def test_only_viewer_tokens_of_the_tenant_are_revoked(admin: Api, make_api: MakeApi) -> None:
    other_admin = await make_api("globex", ("admin",), "other")
    made = await issue(other_admin, {})
    problem(await admin.client.delete(f"{TOKENS}/{made['id']}", headers=admin.headers), 404)
    problem(await admin.client.delete(f"{TOKENS}/{admin.key_id}", headers=admin.headers), 404)
    problem(await admin.client.delete(f"{TOKENS}/%00", headers=admin.headers), 404)
    assert (await viewer(other_admin, made).query()).status_code == 200


async def test_an_exchange_works_once(admin: Api, stored: list[dict[str, Any]]) -> None:
    made = await issue(admin, {"subject": MINE})
    first = viewer(admin, made)
    response = await admin.client.post(f"{TOKENS}/exchange", headers=first.headers)
    assert response.status_code == 201, response.text
    fresh = response.json()
    assert fresh["filter"] == {"subject": MINE}
    assert fresh["expires_at"] == made["expires_at"]
    assert fresh["token"] != made["token"]
    problem(await first.query(), 401)
    problem(await admin.client.post(f"{TOKENS}/exchange", headers=first.headers), 401)
    second = viewer(admin, fresh)
    assert subjects(await second.everything()) == {MINE}
    problem(await admin.client.post(f"{TOKENS}/exchange", headers=admin.headers), 403)


async def test_of_exchanges_at_once_one_wins(admin: Api, stored: list[dict[str, Any]]) -> None:
    for _ in range(5):
        made = await issue(admin, {"subject": MINE})
        answers = await asyncio.gather(
            *(
                admin.client.post(f"{TOKENS}/exchange", headers=bearer(made["token"]))
                for _ in range(4)
            )
        )
        assert sorted(a.status_code for a in answers) == [201, 401, 401, 401]
        records = [
            e
            for e in await admin.everything()
            if e["type"] == "auditlog.viewer_token.exchanged"
            and e["data"]["token_id"] == made["id"]
        ]
        assert len(records) == 1


async def test_making_exchanging_revoking_and_reading_are_recorded(
    admin: Api, api: Api, stored: list[dict[str, Any]]
) -> None:
    made = await issue(admin, {"subject": MINE}, ttl=120)
    exchanged = (
        await admin.client.post(f"{TOKENS}/exchange", headers=bearer(made["token"]))
    ).json()
    await admin.client.delete(f"{TOKENS}/{exchanged['id']}", headers=admin.headers)
    records = [e for e in await api.everything() if e["type"].startswith("auditlog.viewer_token")]
    assert [e["type"] for e in records] == [
        "auditlog.viewer_token.created",
        "auditlog.viewer_token.exchanged",
        "auditlog.viewer_token.revoked",
    ]
    created = records[0]
    assert created["actor"]["id"] == f"key:{admin.key_id}"
    assert created["data"]["filter"] == {"subject": MINE}
    assert created["data"]["ttl_seconds"] == 120
    assert created["data"]["token_id"] == made["id"]
    assert made["token"] not in orjson.dumps(records).decode()
    assert records[1]["data"] == {
        "token_id": made["id"],
        "new_token_id": exchanged["id"],
        "request_id": records[1]["data"]["request_id"],
    }


@pytest.mark.parametrize(
    "settings", [dataclasses.replace(QUIET, audit_reads=True)], ids=["reads-audited"]
)
async def test_a_viewer_tokens_reads_are_recorded(admin: Api, api: Api) -> None:
    made = await issue(admin, {"subject": MINE})
    await viewer(admin, made).query([("type", "x")])
    reads = [e for e in await api.everything() if e["type"] == "auditlog.log.read"]
    assert any(e["actor"]["id"] == f"key:{made['id']}" for e in reads)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"filter": {"limit": 5}}, "filter.limit"),
        ({"filter": "subject=x"}, "filter"),
        ({"filter": {"data.a[bogus]": 1}}, "filter"),
        ({"ttl_seconds": 0}, "ttl_seconds"),
        ({"ttl_seconds": 86_401}, "ttl_seconds"),
        ({"ttl_seconds": 1.5}, "ttl_seconds"),
        ({"ttl_seconds": True}, "ttl_seconds"),
        ({"filter": {}, "scopes": ["admin"]}, "scopes"),
        ([], "body"),
    ],
)
async def test_bad_definitions_are_422(admin: Api, body: Any, field: str) -> None:
    response = await admin.client.post(TOKENS, json=body, headers=admin.headers)
    assert field in [e["field"] for e in problem(response, 422)["errors"]]


async def test_making_one_needs_admin(api: Api) -> None:
    problem(await api.client.post(TOKENS, json={"filter": {}}, headers=api.headers), 403)

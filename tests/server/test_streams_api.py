"""``/v1/streams`` through the real application on every backend (API.md §11): the admin API
of log streams, its refusals, its secrets, and the records of its changes. Delivery itself is
tested against real receivers in tests/service/delivery and tests/reliability."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from auditlog.service.delivery.destinations import webhook_key
from server.api import Api, problem
from server.conftest import MakeApi

pytestmark = pytest.mark.anyio

STREAMS = "/v1/streams"
HOOK = {"kind": "webhook", "url": "https://siem.example.com/hook?key=k1"}
SPLUNK = {"kind": "splunk_hec", "url": "https://splunk.example.com:8088", "token": "hec-secret"}


@pytest.fixture
async def admin(make_api: MakeApi) -> Api:
    return await make_api("acme", ("admin",), "admin")


async def create(admin: Api, body: dict[str, Any]) -> dict[str, Any]:
    response = await admin.client.post(STREAMS, json=body, headers=admin.headers)
    assert response.status_code == 201, response.text
    made: dict[str, Any] = response.json()
    assert response.headers["location"] == f"{STREAMS}/{made['id']}"
    return made


async def get(admin: Api, stream_id: str) -> httpx.Response:
    return await admin.client.get(f"{STREAMS}/{stream_id}", headers=admin.headers)


async def test_a_webhook_stream_is_made_and_its_secret_shown_once(admin: Api) -> None:
    made = await create(
        admin, {"name": "siem", "destination": HOOK, "filter": {"type": ["a", "b"]}}
    )
    assert made["secret"].startswith("whsec_")
    assert len(webhook_key(made["secret"])) == 24
    assert made["name"] == "siem"
    assert made["destination"] == HOOK
    assert made["filter"] == {"type": ["a", "b"]}
    assert made["paused"] is False
    assert made["delivered_seq"] is None
    shown = (await get(admin, made["id"])).json()
    assert "secret" not in shown
    assert {k: v for k, v in made.items() if k not in ("secret", "lag_events")} == {
        k: v for k, v in shown.items() if k != "lag_events"
    }
    listed = (await admin.client.get(STREAMS, headers=admin.headers)).json()["streams"]
    assert [s["id"] for s in listed] == [made["id"]]
    assert made["secret"] not in str(listed)


async def test_a_splunk_token_is_never_shown(admin: Api) -> None:
    made = await create(admin, {"destination": SPLUNK})
    assert "secret" not in made
    for shown in (made, (await get(admin, made["id"])).json()):
        assert shown["destination"]["token_set"] is True
        assert "hec-secret" not in str(shown)
    assert made["name"] == "splunk_hec"


async def test_start_now_beginning_or_a_seq(admin: Api, api: Api) -> None:
    await api.create_batch([{"type": "t"} for _ in range(5)])
    now = await create(admin, {"destination": HOOK})
    assert now["start"] == 5
    assert (await create(admin, {"destination": HOOK, "start": "beginning"}))["start"] == 0
    assert (await create(admin, {"destination": HOOK, "start": 3}))["start"] == 3
    assert now["lag_events"] >= 0


async def test_changes_keep_the_secret_and_the_state(admin: Api) -> None:
    made = await create(admin, {"destination": HOOK, "name": "one"})
    changed = await admin.client.patch(
        f"{STREAMS}/{made['id']}",
        json={"paused": True, "name": "two", "filter": {"data.amount[gt]": 100}},
        headers=admin.headers,
    )
    assert changed.status_code == 200, changed.text
    view = changed.json()
    assert (view["paused"], view["name"], view["filter"]) == (
        True,
        "two",
        {"data.amount[gt]": "100"},
    )
    assert view["updated_at"] >= made["updated_at"]
    assert view["created_at"] == made["created_at"]
    moved = await admin.client.patch(
        f"{STREAMS}/{made['id']}",
        json={"destination": {"url": "https://other.example.com/h"}},
        headers=admin.headers,
    )
    assert moved.json()["destination"] == {"kind": "webhook", "url": "https://other.example.com/h"}
    assert "secret" not in moved.json()


async def test_deleting_a_stream(admin: Api) -> None:
    made = await create(admin, {"destination": HOOK})
    response = await admin.client.delete(f"{STREAMS}/{made['id']}", headers=admin.headers)
    assert response.status_code == 204
    assert response.content == b""
    problem(await get(admin, made["id"]), 404)
    problem(await admin.client.delete(f"{STREAMS}/{made['id']}", headers=admin.headers), 404)


async def test_every_change_is_recorded_in_the_tenants_log(admin: Api, api: Api) -> None:
    made = await create(admin, {"destination": SPLUNK, "name": "s"})
    await admin.client.patch(
        f"{STREAMS}/{made['id']}", json={"paused": True}, headers=admin.headers
    )
    await admin.client.delete(f"{STREAMS}/{made['id']}", headers=admin.headers)
    records = [e for e in await api.everything() if e["type"].startswith("auditlog.stream.")]
    assert [e["type"] for e in records] == [
        "auditlog.stream.created",
        "auditlog.stream.changed",
        "auditlog.stream.deleted",
    ]
    for record in records:
        assert record["data"]["stream_id"] == made["id"]
        assert record["actor"]["id"] == f"key:{admin.key_id}"
        assert record["source"] == "auditlog"
        assert "hec-secret" not in str(record)
    assert records[1]["data"]["changed"] == ["paused"]
    assert records[1]["data"]["paused"] is True


async def test_streams_belong_to_their_tenant(admin: Api, make_api: MakeApi) -> None:
    made = await create(admin, {"destination": HOOK})
    other = await make_api("globex", ("admin",), "other-admin")
    problem(await get(other, made["id"]), 404)
    problem(await other.client.delete(f"{STREAMS}/{made['id']}", headers=other.headers), 404)
    problem(
        await other.client.patch(
            f"{STREAMS}/{made['id']}", json={"paused": True}, headers=other.headers
        ),
        404,
    )
    assert (await other.client.get(STREAMS, headers=other.headers)).json() == {"streams": []}


async def test_streams_need_the_admin_scope(api: Api) -> None:
    for method, path in (
        ("POST", STREAMS),
        ("GET", STREAMS),
        ("GET", f"{STREAMS}/st_aaaaaaaaaaaaaaaa"),
        ("PATCH", f"{STREAMS}/st_aaaaaaaaaaaaaaaa"),
        ("DELETE", f"{STREAMS}/st_aaaaaaaaaaaaaaaa"),
    ):
        response = await api.client.request(method, path, headers=api.headers, json={})
        problem(response, 403)
        problem(await api.client.request(method, path, json={}), 401)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "destination"),
        ({"destination": HOOK, "nmae": "typo"}, "nmae"),
        ({"destination": {"kind": "webhook", "url": "file:///etc/passwd"}}, "destination.url"),
        ({"destination": {"kind": "webhook", "url": "gopher://x.test/"}}, "destination.url"),
        ({"destination": {"kind": "smtp", "url": "https://x.test/"}}, "destination.kind"),
        ({"destination": {"kind": "syslog", "url": "https://x.test/"}}, "destination.url"),
        (
            {"destination": {"kind": "webhook", "url": "http://127.0.0.1:8000/v1/events"}},
            "destination.url",
        ),
        ({"destination": {"kind": "webhook", "url": "http://localhost:8000/"}}, "destination.url"),
        ({"destination": HOOK, "name": ""}, "name"),
        ({"destination": HOOK, "name": "a\nb"}, "name"),
        ({"destination": HOOK, "paused": "yes"}, "paused"),
        ({"destination": HOOK, "start": "later"}, "start"),
        ({"destination": HOOK, "start": -1}, "start"),
        ({"destination": HOOK, "start": True}, "start"),
        ({"destination": HOOK, "filter": "type=a"}, "filter"),
        ({"destination": HOOK, "filter": {"data.a[bogus]": 1}}, "filter"),
        ({"destination": HOOK, "filter": {"limit": 5}}, "filter.limit"),
        ({"destination": HOOK, "filter": {"type": []}}, "filter.type"),
        ({"destination": HOOK, "filter": {"type": {"a": 1}}}, "filter.type"),
    ],
)
async def test_bad_definitions_are_422_naming_the_field(
    admin: Api, body: dict[str, Any], field: str
) -> None:
    response = await admin.client.post(STREAMS, json=body, headers=admin.headers)
    doc = problem(response, 422)
    assert doc["type"] == "urn:auditlog:problem:invalid-body"
    assert field in [e["field"] for e in doc["errors"]], doc
    listed = (await admin.client.get(STREAMS, headers=admin.headers)).json()
    assert listed == {"streams": []}


async def test_bodies_that_are_not_json_objects(admin: Api) -> None:
    client, headers = admin.client, admin.headers
    problem(await client.post(STREAMS, content=b"{", headers=headers), 400)
    problem(await client.post(STREAMS, json=[HOOK], headers=headers), 422)
    response = await client.post(
        STREAMS, content=b"{}", headers={**headers, "Content-Type": "application/x-ndjson"}
    )
    problem(response, 415)
    response = await client.post(
        STREAMS, content=b"{}", headers={**headers, "Content-Type": "text/plain"}
    )
    problem(response, 415)


async def test_a_change_that_points_at_the_service_is_refused(admin: Api) -> None:
    made = await create(admin, {"destination": HOOK})
    response = await admin.client.patch(
        f"{STREAMS}/{made['id']}",
        json={"destination": {"url": "http://[::1]:8000/"}},
        headers=admin.headers,
    )
    assert problem(response, 422)["errors"][0]["field"] == "destination.url"
    assert (await get(admin, made["id"])).json()["destination"] == HOOK


@pytest.mark.parametrize("stream_id", ["nope", "st_AAAAAAAAAAAAAAAA", "st_" + "a" * 300, "%00"])
async def test_unknown_ids_are_404(admin: Api, stream_id: str) -> None:
    problem(await get(admin, stream_id), 404)

"""The service audits itself (``auditlog.service.selfaudit``): logins and reads of the log
become events of the tenant concerned, committed before the request is answered.

Logs are read here straight from the store, so that reading them records nothing.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from dataclasses import replace
from typing import Any

import httpx
import orjson
import pytest

from auditlog.config import Settings
from auditlog.errors import StorageError
from auditlog.model.query import parse_query
from auditlog.server.app import AuditlogApp
from auditlog.service.selfaudit import MAX_SHOWN_BYTES, MAX_SHOWN_CHARS
from auditlog.storage.base import AppendOutcome, AppendRequest
from server.api import Api, bearer, problem
from server.conftest import QUIET, ControlledStore, MakeApi
from server.logins import PASSWORD, add_user, login, token_of

pytestmark = pytest.mark.anyio

#: What httpx.ASGITransport gives as the client's address.
ADDRESS = "127.0.0.1"
ULID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")
REQUEST_ID = re.compile(r"[0-9a-f]{32}")
#: The fields of a record that the server fills in and that the tests do not predict.
UNPREDICTED = ("id", "time", "seq", "received_at")


@pytest.fixture
def settings() -> Settings:
    """Reads are recorded (the default); no request rate limits."""
    return replace(QUIET, audit_reads=True)


async def log_of(app: AuditlogApp, tenant: str) -> list[dict[str, Any]]:
    """Every event of the tenant's log, oldest first, read without being recorded."""
    events: list[dict[str, Any]] = []
    while True:
        after = [("seq[gt]", str(events[-1]["seq"]))] if events else []
        query, _ = parse_query([("order", "asc"), ("limit", "1000"), *after])
        page = await app.services.store.query(tenant, query)
        events += [orjson.loads(body) for body in page.bodies]
        if not page.more:
            return events


def record(event: dict[str, Any]) -> dict[str, Any]:
    """A stored self-audit record without the fields the server fills in, checked first
    (the id of the request that caused it is made by the server here: 32 hex digits)."""
    assert ULID.fullmatch(event["id"]), event["id"]
    assert event["time"] <= event["received_at"]
    assert REQUEST_ID.fullmatch(event["data"]["request_id"]), event["data"]
    data = {k: v for k, v in event["data"].items() if k != "request_id"}
    return {**{k: v for k, v in event.items() if k not in UNPREDICTED}, "data": data}


def expected(
    tenant: str,
    type_: str,
    actor: dict[str, str],
    data: dict[str, Any],
    outcome: str = "success",
) -> dict[str, Any]:
    return {
        "type": type_,
        "actor": actor,
        "source": "auditlog",
        "outcome": outcome,
        "data": data,
        "tenant": tenant,
    }


def claims_of(token: str) -> dict[str, Any]:
    body = token.split(".")[1]
    value: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return value


def key_actor(api: Api, name: str = "producer") -> dict[str, str]:
    return {"id": f"key:{api.key_id}", "type": "credential", "name": name}


def user_actor(username: str) -> dict[str, str]:
    return {"id": f"user:{username}", "type": "credential", "name": username}


# -- logins -----------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["/v1/auth/token", "/login"])
async def test_a_login_is_recorded_in_the_users_tenant(
    app: AuditlogApp, client: httpx.AsyncClient, route: str
) -> None:
    await add_user(app, "alice", "acme")
    await add_user(app, "gina", "globex")
    response = await client.post(route, json={"username": "alice", "password": PASSWORD})
    assert response.status_code == 200
    token = response.json().get("access_token") or response.json()["token"]
    [event] = await log_of(app, "acme")
    assert record(event) == expected(
        "acme",
        "auditlog.login.succeeded",
        user_actor("alice"),
        {"address": ADDRESS, "credential_id": claims_of(token)["jti"]},
    )
    assert event["data"]["request_id"] == response.headers["x-request-id"]
    assert event["seq"] == 0
    assert await log_of(app, "globex") == []


async def test_a_failed_login_is_recorded_with_outcome_failure(
    app: AuditlogApp, client: httpx.AsyncClient
) -> None:
    await add_user(app, "alice", "acme")
    problem(await login(client, "alice", "not the password"), 401)
    problem(await client.post("/login", json={"username": "alice", "password": "nope"}), 401)
    events = await log_of(app, "acme")
    assert [record(e) for e in events] == [
        expected(
            "acme",
            "auditlog.login.failed",
            # No credential was proven: the actor is the user the attempt named.
            {"id": "user:alice", "type": "user", "name": "alice"},
            {"address": ADDRESS},
            outcome="failure",
        )
    ] * 2


@pytest.mark.parametrize(
    "username", ["nobody", "Alice", "alice ", "x" * 300, "'; DROP TABLE users; --", ""]
)
async def test_a_failed_login_for_an_unknown_user_records_nothing_anywhere(
    app: AuditlogApp,
    client: httpx.AsyncClient,
    store: ControlledStore,
    monkeypatch: pytest.MonkeyPatch,
    username: str,
) -> None:
    await add_user(app, "alice", "acme")
    appended: list[AppendRequest] = []
    real_append = store.append

    async def spy(requests: list[AppendRequest]) -> list[AppendOutcome]:
        appended.extend(requests)
        return await real_append(requests)

    monkeypatch.setattr(store, "append", spy)
    problem(await login(client, username, PASSWORD), 401)
    assert appended == []  # no commit at all: no tenant's log holds anything of it
    assert await log_of(app, "acme") == []


async def test_a_login_refused_by_the_rate_limit_is_not_checked_nor_recorded(
    app: AuditlogApp, client: httpx.AsyncClient
) -> None:
    await add_user(app, "alice", "acme")
    for _ in range(5):  # login_failures_per_user
        problem(await login(client, "alice", "wrong"), 401)
    problem(await login(client, "alice", PASSWORD), 429)
    assert [e["type"] for e in await log_of(app, "acme")] == ["auditlog.login.failed"] * 5


async def test_a_login_is_answered_only_once_its_record_is_committed(
    app: AuditlogApp, client: httpx.AsyncClient, store: ControlledStore
) -> None:
    await add_user(app, "alice", "acme")
    store.hold_appends()
    answer = asyncio.ensure_future(login(client))
    await store.appending.wait()
    await asyncio.sleep(0.01)
    assert not answer.done()
    assert await log_of(app, "acme") == []
    store.release_appends()
    assert (await answer).status_code == 200
    assert [e["type"] for e in await log_of(app, "acme")] == ["auditlog.login.succeeded"]


@pytest.mark.usefixtures("expect_unavailable")
async def test_no_token_is_given_for_a_login_that_could_not_be_recorded(
    app: AuditlogApp, client: httpx.AsyncClient, store: ControlledStore
) -> None:
    await add_user(app, "alice", "acme")
    store.append_error = StorageError("the disk is gone", 1)
    response = await login(client)
    problem(response, 503)
    assert "access_token" not in response.text
    store.append_error = None
    assert await log_of(app, "acme") == []


# -- reads of the log -------------------------------------------------------------------------


async def test_a_query_is_recorded_with_its_parameters_and_result_count(
    app: AuditlogApp, api: Api
) -> None:
    await api.create_batch([{"id": f"e{i}", "type": "invoice.paid"} for i in range(3)])
    page = await api.page([("type", "invoice.paid"), ("limit", "2"), ("order", "asc")])
    assert [e["id"] for e in page["events"]] == ["e0", "e1"]
    second = await api.page(
        [
            ("type", "invoice.paid"),
            ("limit", "2"),
            ("order", "asc"),
            ("cursor", page["next_cursor"]),
        ]
    )
    assert [e["id"] for e in second["events"]] == ["e2"]  # the first read is not a match
    query = [["type", "invoice.paid"], ["limit", "2"], ["order", "asc"]]
    *_, first_read, second_read = await log_of(app, "acme")
    assert record(first_read) == expected(
        "acme",
        "auditlog.log.read",
        key_actor(api),
        {"route": "GET /v1/events", "query": query, "page": False, "results": 2},
    )
    assert record(second_read) == expected(
        "acme",
        "auditlog.log.read",
        key_actor(api),
        {"route": "GET /v1/events", "query": query, "page": True, "results": 1},
    )
    assert (first_read["seq"], second_read["seq"]) == (3, 4)


async def test_a_read_by_id_is_recorded_found_or_not(app: AuditlogApp, api: Api) -> None:
    await api.create({"id": "e1", "type": "t"})
    assert (await api.get("e1")).status_code == 200
    problem(await api.get("nope"), 404)
    reads = [record(e) for e in (await log_of(app, "acme"))[1:]]
    assert reads == [
        expected(
            "acme",
            "auditlog.log.read",
            key_actor(api),
            {"route": "GET /v1/events/{id}", "id": "e1", "found": True},
        ),
        expected(
            "acme",
            "auditlog.log.read",
            key_actor(api),
            {"route": "GET /v1/events/{id}", "id": "nope", "found": False},
        ),
    ]


async def test_a_read_with_a_login_token_has_the_user_as_actor(
    app: AuditlogApp, client: httpx.AsyncClient
) -> None:
    await add_user(app, "alice", "acme", ("events:read",))
    reader = Api(client, await token_of(client))
    await reader.page([("q", "anything")])
    login_record, read = await log_of(app, "acme")
    assert login_record["type"] == "auditlog.login.succeeded"
    assert record(read) == expected(
        "acme",
        "auditlog.log.read",
        user_actor("alice"),
        {"route": "GET /v1/events", "query": [["q", "anything"]], "page": False, "results": 0},
    )


async def test_the_first_versions_query_is_one_record_however_many_pages(
    app: AuditlogApp, client: httpx.AsyncClient, api: Api
) -> None:
    await api.create_batch([{"type": "bulk", "data": {"i": i}} for i in range(1500)])
    response = await client.get(
        "/event", params={"event_type": "bulk", "other": "x"}, headers=bearer(api.token)
    )
    assert len(response.json()) == 1500
    reads = [e for e in await log_of(app, "acme") if e["type"] == "auditlog.log.read"]
    assert [record(e) for e in reads] == [
        expected(
            "acme",
            "auditlog.log.read",
            key_actor(api),
            {
                "route": "GET /event",
                "query": [["event_type", "bulk"], ["other", "x"]],
                "results": 1500,
            },
        )
    ]


async def test_requests_that_read_no_events_are_not_reads_of_the_log(
    app: AuditlogApp, client: httpx.AsyncClient, api: Api
) -> None:
    await api.create({"id": "e1", "type": "t"})
    assert (await client.get("/v1/auth/whoami", headers=bearer(api.token))).status_code == 200
    assert (await client.get("/auth", headers=bearer(api.token))).status_code == 200
    problem(await api.query([("limit", "0")]), 400)  # refused before anything is read
    assert [e["id"] for e in await log_of(app, "acme")] == ["e1"]


async def test_reads_are_recorded_in_the_readers_tenant_only(
    app: AuditlogApp, make_api: MakeApi
) -> None:
    acme = await make_api("acme")
    globex = await make_api("globex", name="globex-reader")
    await acme.create({"id": "e1", "type": "t"})
    problem(await globex.get("e1"), 404)
    await globex.page()
    assert [e["id"] for e in await log_of(app, "acme")] == ["e1"]
    assert [(e["type"], e["actor"]) for e in await log_of(app, "globex")] == [
        ("auditlog.log.read", key_actor(globex, "globex-reader"))
    ] * 2


async def test_a_read_is_answered_only_once_its_record_is_committed(
    app: AuditlogApp, api: Api, store: ControlledStore
) -> None:
    await api.create({"id": "e1", "type": "t"})
    store.hold_appends()
    answer = asyncio.ensure_future(api.query([("type", "t")]))
    await store.appending.wait()
    await asyncio.sleep(0.01)
    assert not answer.done()
    assert [e["id"] for e in await log_of(app, "acme")] == ["e1"]
    store.release_appends()
    assert [e["id"] for e in (await answer).json()["events"]] == ["e1"]
    assert [e["type"] for e in await log_of(app, "acme")] == ["t", "auditlog.log.read"]


@pytest.mark.usefixtures("expect_unavailable")
async def test_a_read_that_could_not_be_recorded_shows_nothing(
    app: AuditlogApp, client: httpx.AsyncClient, api: Api, store: ControlledStore
) -> None:
    await api.create({"id": "e1", "type": "t", "data": {"marker": "confidential"}})
    store.append_error = StorageError("the disk is gone", 1)
    for response in (
        await api.query(),
        await api.get("e1"),
        await client.get("/event", headers=bearer(api.token)),
    ):
        problem(response, 503)
        assert "confidential" not in response.text
    store.append_error = None
    assert [e["id"] for e in await log_of(app, "acme")] == ["e1"]


async def test_what_a_read_record_shows_of_the_request_is_bounded(
    app: AuditlogApp, client: httpx.AsyncClient, api: Api
) -> None:
    # Whatever a client puts in its request, the record of it fits in an event.
    long_value = "\x01" * 4000  # six bytes each as JSON
    many = [(f"data.f{i}", long_value) for i in range(3)]
    assert (await api.query(many)).status_code == 200
    problem(await api.get("%01" * 15000), 404)
    response = await client.get("/event", params=[("junk", "\x00" * 15000)], headers=api.headers)
    assert response.status_code == 200
    reads = [e["data"] for e in await log_of(app, "acme")]
    assert len(reads) == 3
    for data in reads:
        assert data["truncated"] is True
        assert len(orjson.dumps(data.get("query", []))) <= MAX_SHOWN_BYTES
    # Each value cut, and the parameters in order as far as they fit.
    assert reads[0]["query"] == [[f"data.f{i}", "\x01" * MAX_SHOWN_CHARS] for i in range(2)]
    assert reads[1]["id"] == "\x01" * MAX_SHOWN_CHARS
    assert reads[2]["query"] == [["junk", "\x00" * MAX_SHOWN_CHARS]]
    # A request within the bounds is shown whole, without the mark.
    await api.page([("type", "x" * MAX_SHOWN_CHARS)])
    last = (await log_of(app, "acme"))[-1]["data"]
    assert last["query"] == [["type", "x" * MAX_SHOWN_CHARS]]
    assert "truncated" not in last


# -- the setting ------------------------------------------------------------------------------


@pytest.mark.parametrize("settings", [QUIET], ids=["audit_reads-off"])
async def test_with_audit_reads_off_reads_leave_no_record_but_logins_do(
    app: AuditlogApp, client: httpx.AsyncClient, api: Api
) -> None:
    await api.create({"id": "e1", "type": "t"})
    await api.page()
    assert (await api.get("e1")).status_code == 200
    problem(await api.get("nope"), 404)
    assert (await client.get("/event", headers=bearer(api.token))).status_code == 200
    assert [e["id"] for e in await log_of(app, "acme")] == ["e1"]
    await add_user(app, "alice", "acme")
    assert (await login(client)).status_code == 200
    problem(await login(client, "alice", "wrong"), 401)
    assert [e["type"] for e in await log_of(app, "acme")] == [
        "t",
        "auditlog.login.succeeded",
        "auditlog.login.failed",
    ]


# -- no secrets -------------------------------------------------------------------------------


async def test_no_record_holds_a_password_token_or_key_secret(
    app: AuditlogApp, client: httpx.AsyncClient, make_api: MakeApi
) -> None:
    alice = await add_user(app, "alice", "acme")
    await add_user(app, "gina", "globex")
    api = await make_api("acme")
    near_miss = PASSWORD + "!"
    problem(await login(client, "alice", near_miss), 401)
    problem(await login(client, "gina", near_miss), 401)
    token = await token_of(client)
    gina = await token_of(client, "gina")
    reader = Api(client, token)
    await reader.page([("type", "t")])
    await api.page([("q", "word")])
    problem(await api.get("e-none"), 404)
    await client.get("/event", headers={"Authorization": f"Bearer: {gina}"})
    secrets = [
        PASSWORD,
        near_miss,
        alice.password_hash,
        token,
        token.split(".")[2],  # the signature alone
        gina,
        api.token,
        api.token.split("_", 2)[2],  # the key's secret part (it may hold "_")
    ]
    events = [*await log_of(app, "acme"), *await log_of(app, "globex")]
    assert {e["type"] for e in events} == {
        "auditlog.login.failed",
        "auditlog.login.succeeded",
        "auditlog.log.read",
    }
    stored = b"".join(orjson.dumps(e) for e in events).decode()
    for secret in secrets:
        assert secret not in stored

"""The first version's routes (API.md §8): its README's commands, and the adapter's mapping.

The reference design is the Flask "Audit Log Service" (thomas-um-grant/audit-log-service).
Its README's commands are replayed here as HTTP requests, byte for byte where they send a
body, with its `Authorization: Bearer: <token>` header form.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from auditlog.errors import StorageError
from auditlog.model import times
from auditlog.model.credentials import User
from auditlog.server.app import AuditlogApp
from auditlog.service.passwords import hash_password
from server.api import Api, bearer, problem
from server.conftest import QUIET, ControlledStore, MakeApi
from server.logins import PASSWORD, add_user, token_of

pytestmark = pytest.mark.anyio

SRC = Path(__file__).resolve().parents[2] / "src" / "auditlog"
HEADER_FORMS = ["Bearer: {t}", "Bearer:{t}", "Bearer {t}"]
#: The README's event, as its curl command sends it.
README_EVENT = (
    b'{ "event_type": "account creation", "event_details": {"message": "Thomas created an '
    b'account.", "Interest": ["Sports", "Cooking", "Movies"], "location": { "city": '
    b'"Seattle", "country": "USA" }}}'
)
LEGACY_FIELDS = {"_id", "event_type", "user_id", "timestamp", "event_details"}
#: The record of a login in the user's tenant's log (the service audits itself).
LOGIN_RECORD = "auditlog.login.succeeded"


def old_bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer: {token}"}


async def old_events(
    client: httpx.AsyncClient, token: str, params: list[tuple[str, str]] | None = None
) -> list[dict[str, Any]]:
    response = await client.get("/event", params=params or [], headers=old_bearer(token))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    events: list[dict[str, Any]] = response.json()
    for event in events:
        assert set(event) == LEGACY_FIELDS
    return events


async def post_old(client: httpx.AsyncClient, token: str, body: Any) -> httpx.Response:
    return await client.post("/event", json=body, headers=old_bearer(token))


@pytest.fixture
async def token(app: AuditlogApp, client: httpx.AsyncClient) -> str:
    """A login token of alice (tenant acme, events:read and events:write), via /login.

    The login is recorded in acme's log: its first event is an ``auditlog.login.succeeded``.
    """
    await add_user(app)
    response = await client.post("/login", json={"username": "alice", "password": PASSWORD})
    assert response.status_code == 200
    value: str = response.json()["token"]
    return value


# -- the reference README, command by command -------------------------------------------------


async def test_the_reference_readme_commands(app: AuditlogApp, client: httpx.AsyncClient) -> None:
    await app.services.store.create_user(
        User("canonical_user", "acme", ("events:read", "events:write"),
             hash_password("canonical_pass"), times.now_us())
    )  # fmt: skip

    # curl --request GET --url "http://localhost:5000/ping"
    ping = await client.request("GET", "/ping")
    assert ping.status_code == 200
    assert ping.json() == "pong!"

    # curl --request POST --url "http://localhost:5000/login" --header "Content-Type:
    #   application/json" -d "{\"username\":\"canonical_user\", \"password\":\"canonical_pass\"}"
    login = await client.request(
        "POST",
        "/login",
        headers={"Content-Type": "application/json"},
        content=b'{"username":"canonical_user", "password":"canonical_pass"}',
    )
    assert login.status_code == 200
    assert list(login.json()) == ["token"]
    token = login.json()["token"]

    # curl --request GET --url "http://localhost:5000/auth" --header "Authorization: Bearer:
    #   <BearerToken>"
    auth = await client.request("GET", "/auth", headers={"Authorization": f"Bearer: {token}"})
    assert auth.status_code == 200
    assert auth.text == "JWT is valid"

    # curl --request POST --url "http://localhost:5000/event" --header "Authorization: Bearer:
    #   <BearerToken>" --header "Content-Type: application/json" --data "{ \"event_type\": ...}"
    posted = await client.request(
        "POST",
        "/event",
        headers={"Authorization": f"Bearer: {token}", "Content-Type": "application/json"},
        content=README_EVENT,
    )
    assert posted.status_code == 200
    assert posted.json() == {"status": 200, "message": "Event submitted"}

    # curl --request GET --url "http://localhost:5000/event" --header "Authorization: Bearer:
    #   <BearerToken>"
    everything = await client.request(
        "GET", "/event", headers={"Authorization": f"Bearer: {token}"}
    )
    assert everything.status_code == 200
    [login_record, event] = everything.json()  # the service recorded the login first
    assert login_record["event_type"] == LOGIN_RECORD
    assert login_record["user_id"] == "user:canonical_user"
    assert event["event_type"] == "account creation"
    assert event["user_id"] == "canonical_user"
    assert event["event_details"] == {
        "message": "Thomas created an account.",
        "Interest": ["Sports", "Cooking", "Movies"],
        "location": {"city": "Seattle", "country": "USA"},
    }
    assert isinstance(event["timestamp"], float)
    assert abs(event["timestamp"] - times.now_us() / 1e6) < 60

    # curl --request GET --url "http://localhost:5000/event?event_type=account%20creation&
    #   timeStart=1686250800&keyword=Thomas" --header "Authorization: Bearer: <token>"
    query = await client.request(
        "GET",
        "/event?event_type=account%20creation&timeStart=1686250800&keyword=Thomas",
        headers={"Authorization": f"Bearer: {token}"},
    )
    assert query.status_code == 200
    assert query.json() == [event]


# -- /ping, /login, /auth ---------------------------------------------------------------------


async def test_ping_needs_no_credential(client: httpx.AsyncClient) -> None:
    response = await client.get("/ping")
    assert (response.status_code, response.content) == (200, b'"pong!"')
    assert response.headers["content-type"] == "application/json"
    head = await client.head("/ping")
    assert (head.status_code, head.content) == (200, b"")


async def test_login_gives_the_same_token_as_v1(
    app: AuditlogApp, client: httpx.AsyncClient
) -> None:
    await add_user(app, scopes=("events:read",))
    response = await client.post(
        "/login", json={"username": "alice", "password": PASSWORD, "remember": True}
    )  # other fields are ignored, as before
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    token = response.json()["token"]
    who = await client.get("/v1/auth/whoami", headers=bearer(token))
    assert who.json()["principal"] == "user:alice"
    assert who.json()["scopes"] == ["events:read"]
    assert who.json()["credential"]["kind"] == "jwt"


async def test_login_failures_are_those_of_v1(app: AuditlogApp, client: httpx.AsyncClient) -> None:
    await add_user(app)
    wrong = await client.post("/login", json={"username": "alice", "password": "nope"})
    unknown = await client.post("/login", json={"username": "zed", "password": PASSWORD})
    assert problem(wrong, 401) == problem(unknown, 401)
    assert wrong.headers["www-authenticate"].startswith("Bearer")
    problem(await client.post("/login", json={"username": "alice"}), 400)
    problem(await client.post("/login", json=["alice", PASSWORD]), 400)
    problem(await client.post("/login", content=b"username=alice"), 400)


@pytest.mark.parametrize("form", HEADER_FORMS)
async def test_auth_accepts_both_header_forms(
    client: httpx.AsyncClient, token: str, form: str
) -> None:
    response = await client.get("/auth", headers={"Authorization": form.format(t=token)})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.text == "JWT is valid"


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer:", "Bearer: ", "Bearer: nonsense", "Token x", "Bearer:x.y.z"],
)
async def test_auth_without_a_valid_token_is_401(
    client: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await client.get("/auth", headers=headers)
    problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_auth_accepts_an_api_key_too(api: Api, client: httpx.AsyncClient) -> None:
    response = await client.get("/auth", headers=old_bearer(api.token))
    assert response.text == "JWT is valid"


# -- POST /event ------------------------------------------------------------------------------


@pytest.mark.parametrize("form", HEADER_FORMS)
async def test_an_old_event_is_stored_as_ours(
    client: httpx.AsyncClient, token: str, make_api: MakeApi, form: str
) -> None:
    response = await client.post(
        "/event",
        json={"event_type": "invoice billed", "event_details": {"amount": 120, "tags": ["a"]}},
        headers={"Authorization": form.format(t=token)},
    )
    assert response.status_code == 200
    assert response.json() == {"status": 200, "message": "Event submitted"}
    auditor = await make_api("acme", ("events:read",))
    [login_record, stored] = await auditor.everything()
    assert login_record["type"] == LOGIN_RECORD
    assert stored["type"] == "invoice billed"
    assert stored["data"] == {"amount": 120, "tags": ["a"]}
    assert stored["actor"] == {"id": "alice", "type": "user"}
    assert stored["source"] == "legacy"
    assert stored["tenant"] == "acme"
    assert stored["seq"] == 1
    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{26}", stored["id"])  # a ULID
    assert set(stored) == {"id", "type", "time", "actor", "source", "data", "tenant", "seq",
                           "received_at"}  # fmt: skip


async def test_an_old_event_with_an_api_key_has_the_keys_actor(
    api: Api, client: httpx.AsyncClient
) -> None:
    response = await post_old(client, api.token, {"event_type": "t", "event_details": {}})
    assert response.status_code == 200
    [stored] = await api.everything()
    assert stored["actor"] == {"id": f"key:{api.key_id}", "type": "credential"}
    assert stored["source"] == "legacy"
    [old] = await old_events(client, api.token)
    assert old["user_id"] == f"key:{api.key_id}"


async def test_the_answer_waits_for_the_commit(
    client: httpx.AsyncClient, token: str, store: ControlledStore, make_api: MakeApi
) -> None:
    auditor = await make_api("acme", ("events:read",))
    store.hold_appends()
    posting = asyncio.ensure_future(
        post_old(client, token, {"event_type": "t", "event_details": {"n": 1}})
    )
    await store.appending.wait()
    await asyncio.sleep(0.01)
    assert not posting.done()
    assert [e["type"] for e in await auditor.everything()] == [LOGIN_RECORD]
    store.release_appends()
    response = await posting
    assert response.json() == {"status": 200, "message": "Event submitted"}
    assert [e["type"] for e in await auditor.everything()] == [LOGIN_RECORD, "t"]
    assert (await auditor.everything())[1]["data"] == {"n": 1}


async def test_nothing_is_acknowledged_that_is_not_stored(
    client: httpx.AsyncClient,
    token: str,
    store: ControlledStore,
    make_api: MakeApi,
    expect_unavailable: None,
) -> None:
    store.append_error = StorageError("the disk is gone", 1)
    response = await post_old(client, token, {"event_type": "t", "event_details": {}})
    problem(response, 503)
    assert response.headers["retry-after"] == "1"
    store.append_error = None
    stored = await (await make_api("acme", ("events:read",))).everything()
    assert [e["type"] for e in stored] == [LOGIN_RECORD]


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"event_details": {}}, ["event_type"]),
        ({"event_type": "t"}, ["event_details"]),
        ({}, ["event_type", "event_details"]),
        ({"event_type": 5, "event_details": {}}, ["event_type"]),
        ({"event_type": "t", "event_details": []}, ["event_details"]),
        ({"event_type": "t", "event_details": "x"}, ["event_details"]),
        ({"event_type": "t", "event_details": {}, "user_id": "mallory"}, ["user_id"]),
        ({"event_type": "t", "event_details": {}, "type": "t"}, ["type"]),
        ({"event_type": "", "event_details": {}}, ["event_type"]),
        ({"event_type": "x" * 201, "event_details": {}}, ["event_type"]),
        ({"event_type": "a\nb", "event_details": {}}, ["event_type"]),
    ],
)
async def test_an_event_that_does_not_fit_is_400_in_the_old_names(
    client: httpx.AsyncClient, token: str, body: dict[str, Any], fields: list[str]
) -> None:
    doc = problem(await post_old(client, token, body), 400)
    assert sorted(e["field"] for e in doc["errors"]) == sorted(fields)
    assert doc["detail"].startswith(doc["errors"][0]["field"])


async def test_deep_details_are_400_in_the_old_names(client: httpx.AsyncClient, token: str) -> None:
    details: dict[str, Any] = {}
    inner = details
    for _ in range(40):
        inner["x"] = {}
        inner = inner["x"]
    doc = problem(await post_old(client, token, {"event_type": "t", "event_details": details}), 400)
    assert all(e["field"].startswith("event_details") for e in doc["errors"]), doc


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b"{", "application/json", 400),
        (b'[{"event_type": "t", "event_details": {}}]', "application/json", 400),
        (b'"event"', "application/json", 400),
        (b'{"event_type": "t", "event_details": {"n": 123456789012345678901234}}', None, 400),
        (b'{"event_type": "t", "event_details": {}}', "text/plain", 415),
        (b'{"event_type": "t", "event_details": {}}\n', "application/x-ndjson", 415),
    ],
)
async def test_a_body_that_is_not_one_json_event(
    client: httpx.AsyncClient, token: str, content: bytes, content_type: str | None, status: int
) -> None:
    headers = old_bearer(token)
    if content_type:
        headers["Content-Type"] = content_type
    problem(await client.post("/event", content=content, headers=headers), status)


async def test_a_body_without_content_type_is_json(client: httpx.AsyncClient, token: str) -> None:
    response = await client.post(
        "/event", content=b'{"event_type": "t", "event_details": {}}', headers=old_bearer(token)
    )
    assert response.status_code == 200


@pytest.mark.parametrize("settings", [replace(QUIET, max_event_bytes=1024)])
async def test_an_event_too_large_is_413(client: httpx.AsyncClient, token: str) -> None:
    body = {"event_type": "t", "event_details": {"pad": "x" * 2000}}
    problem(await post_old(client, token, body), 413)


# -- GET /event -------------------------------------------------------------------------------

T0 = 1_686_250_800  # 2023-06-08T19:00:00Z, the README's timeStart


@pytest.fixture
async def catalog(make_api: MakeApi) -> Api:
    """Events of tenant acme written through /v1 with known times and actors, oldest first."""
    producer = await make_api("acme", ("events:write", "events:read"))
    await producer.create_batch(
        [
            {"id": "e1", "type": "account creation", "time": T0 - 10, "actor": "alice",
             "data": {"message": "Thomas created an account.", "amount": 120}},
            {"id": "e2", "type": "account creation", "time": T0, "actor": "bob",
             "data": {"message": "thomas again", "tags": ["Sports", {"deep": "Cooking"}]}},
            {"id": "e3", "type": "invoice billed", "time": T0 + 0.25, "actor": "alice",
             "subject": "inv-1", "data": {"Thomas": "key only", "n": [1, 2]}},
            {"id": "e4", "type": "account deleted", "time": T0 + 3600, "actor": "carol",
             "data": {}},
        ]
    )  # fmt: skip
    return producer


async def ids(client: httpx.AsyncClient, token: str, params: list[tuple[str, str]]) -> list[str]:
    """The ids of the events a query finds, but for the service's own records (the login of
    ``token``): the queries here are about the events the tests wrote."""
    events = await old_events(client, token, params)
    return [e["_id"] for e in events if not e["event_type"].startswith("auditlog.")]


async def test_every_event_in_the_old_form_oldest_first(
    client: httpx.AsyncClient, token: str, catalog: Api
) -> None:
    login_record, *events = await old_events(client, token)
    assert login_record["event_type"] == LOGIN_RECORD  # it came first, whatever its time
    assert [e["_id"] for e in events] == ["e1", "e2", "e3", "e4"]
    assert events[2] == {
        "_id": "e3",
        "event_type": "invoice billed",
        "user_id": "alice",
        "timestamp": T0 + 0.25,
        "event_details": {"Thomas": "key only", "n": [1, 2]},
    }
    assert events[0]["timestamp"] == T0 - 10


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ([("_id", "e2")], ["e2"]),
        ([("_id", "nope")], []),
        ([("event_type", "account creation")], ["e1", "e2"]),
        ([("event_type", "account")], []),
        ([("user_id", "alice")], ["e1", "e3"]),
        ([("user_id", "Alice")], []),
        ([("timeStart", str(T0))], ["e2", "e3", "e4"]),  # inclusive
        ([("timeEnd", str(T0))], ["e1", "e2"]),  # inclusive
        ([("timeStart", str(T0 + 0.25)), ("timeEnd", str(T0 + 0.25))], ["e3"]),
        ([("timeStart", str(T0 + 0.250001))], ["e4"]),
        ([("timeStart", "1.6862508e9")], ["e2", "e3", "e4"]),  # as float() reads it
        ([("timeStart", "2023-06-08T19:00:00Z")], ["e2", "e3", "e4"]),
        ([("timeStart", str(T0 + 1)), ("timeEnd", str(T0))], []),
        ([("event_type", "account creation"), ("user_id", "bob")], ["e2"]),
        ([("event_type", "account creation"), ("timeStart", str(T0)), ("keyword", "Thomas")], []),
        ([("event_type", "account creation"), ("timeStart", str(T0 - 10)), ("keyword", "Thomas")],
         ["e1"]),
        # keyword: a case-sensitive substring of a string value, anywhere, keys excluded
        ([("keyword", "Thomas")], ["e1"]),
        ([("keyword", "homas")], ["e1", "e2"]),
        ([("keyword", "THOMAS")], []),
        ([("keyword", "Cooking")], ["e2"]),  # in an object in an array
        ([("keyword", "key only")], ["e3"]),
        ([("keyword", "message")], []),  # a key, not a value
        ([("keyword", "120")], []),  # numbers are not strings
        ([("keyword", "carol")], ["e4"]),  # user_id
        ([("keyword", "e3")], ["e3"]),  # _id
        ([("keyword", "deleted")], ["e4"]),  # event_type
        ([("keyword", "inv-1")], []),  # the subject is not part of the old form
        ([("keyword", "")], ["e1", "e2", "e3", "e4"]),
        # as before: unknown parameters are ignored, a repeated one counts once
        ([("limit", "1"), ("order", "desc"), ("type", "x"), ("q", "zzz")], ["e1", "e2", "e3", "e4"]),
        ([("user_id", "carol"), ("user_id", "alice")], ["e4"]),
    ],
)  # fmt: skip
async def test_the_old_query_parameters(
    client: httpx.AsyncClient,
    token: str,
    catalog: Api,
    params: list[tuple[str, str]],
    expected: list[str],
) -> None:
    assert await ids(client, token, params) == expected


@pytest.mark.parametrize("name", ["timeStart", "timeEnd"])
@pytest.mark.parametrize("value", ["", "yesterday", "nan", "inf", "1e400", "12:00"])
async def test_a_time_that_is_not_a_time_is_400(
    client: httpx.AsyncClient, token: str, name: str, value: str
) -> None:
    response = await client.get("/event", params={name: value}, headers=old_bearer(token))
    assert name in problem(response, 400)["detail"]


async def test_a_tenant_sees_only_its_own_events(
    app: AuditlogApp, client: httpx.AsyncClient, catalog: Api, make_api: MakeApi
) -> None:
    other = await make_api("globex", ("events:write", "events:read"))
    await other.create({"id": "g1", "type": "account creation", "data": {"m": "Thomas"}})
    await add_user(app, "gina", "globex", ("events:read",))
    gina = await token_of(client, "gina")
    # globex's log: its event, and gina's login; nothing of acme's, not even alice's login.
    everything = await old_events(client, gina)
    assert [(e["event_type"], e["user_id"]) for e in everything] == [
        ("account creation", f"key:{other.key_id}"),
        (LOGIN_RECORD, "user:gina"),
    ]
    assert await ids(client, gina, []) == ["g1"]
    assert await ids(client, gina, [("_id", "e1")]) == []
    assert await ids(client, gina, [("keyword", "Thomas")]) == ["g1"]
    assert await ids(client, other.token, [("user_id", "alice")]) == []


async def test_old_events_read_back_as_they_were_sent(
    client: httpx.AsyncClient, token: str
) -> None:
    details = {"message": "Thomas created an account.", "n": 1.5, "nested": {"l": [1, "two"]}}
    before = times.now_us() / 1e6
    await post_old(client, token, {"event_type": "account creation", "event_details": details})
    [login_record, old] = await old_events(client, token)
    assert login_record["event_type"] == LOGIN_RECORD
    assert old["event_type"] == "account creation"
    assert old["event_details"] == details
    assert old["user_id"] == "alice"
    assert before - 1 <= old["timestamp"] <= times.now_us() / 1e6 + 1
    # The timestamp read back finds the event again, at both ends.
    stamp = repr(old["timestamp"])
    assert await ids(client, token, [("timeStart", stamp), ("timeEnd", stamp)]) == [old["_id"]]
    assert await ids(client, token, [("_id", old["_id"])]) == [old["_id"]]
    assert await ids(client, token, [("user_id", "alice")]) == [old["_id"]]


@pytest.mark.parametrize("settings", [replace(QUIET, legacy_max_events=3)])
async def test_a_query_matching_too_many_is_refused_not_cut(
    client: httpx.AsyncClient, token: str, catalog: Api
) -> None:
    response = await client.get("/event", headers=old_bearer(token))
    assert "more than 3 events match" in problem(response, 400)["detail"]
    assert await ids(client, token, [("user_id", "alice")]) == ["e1", "e3"]


async def test_a_long_log_is_read_across_pages(
    client: httpx.AsyncClient, token: str, api: Api
) -> None:
    await api.create_batch([{"id": f"p{i}", "type": "bulk", "data": {"i": i}} for i in range(2345)])
    events = await old_events(client, token, [("event_type", "bulk")])
    assert [e["_id"] for e in events] == [f"p{i}" for i in range(2345)]
    assert [e["_id"] for e in await old_events(client, token, [("keyword", "p2344")])] == ["p2344"]


# -- scopes -----------------------------------------------------------------------------------


async def test_the_old_routes_need_the_scopes_of_their_v1_counterparts(
    app: AuditlogApp, client: httpx.AsyncClient
) -> None:
    await add_user(app, "reader", "acme", ("events:read",))
    await add_user(app, "writer", "acme", ("events:write",))
    await add_user(app, "auditor", "acme", ("log:read",))
    reader = await token_of(client, "reader")
    writer = await token_of(client, "writer")
    auditor = await token_of(client, "auditor")
    event = {"event_type": "t", "event_details": {}}
    problem(await post_old(client, reader, event), 403)
    assert (await post_old(client, writer, event)).status_code == 200
    problem(await client.get("/event", headers=old_bearer(writer)), 403)
    assert [e["event_type"] for e in await old_events(client, reader)] == [
        *[LOGIN_RECORD] * 3,  # the logins of reader, writer and auditor
        "t",
    ]
    for token in (reader, writer, auditor):
        assert (await client.get("/auth", headers=old_bearer(token))).text == "JWT is valid"
    problem(await post_old(client, auditor, event), 403)
    problem(await client.get("/event", headers=old_bearer(auditor)), 403)


@pytest.mark.parametrize(("method", "path"), [("POST", "/event"), ("GET", "/event")])
async def test_the_event_routes_need_a_credential(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path)
    problem(response, 401)


# -- the old names stay in the adapter ---------------------------------------------------------


def test_the_old_names_exist_only_in_the_adapter() -> None:
    # The adapter documents its routes (and the schemas of the old bodies) itself.
    allowed = {SRC / "server" / "handlers" / "legacy.py"}
    old = re.compile(r"event_type|event_details|timeStart|timeEnd|user_id|[\"']_id[\"']")
    offenders = [
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if path not in allowed and old.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []

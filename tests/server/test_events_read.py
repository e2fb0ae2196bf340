"""``GET /v1/events/{id}`` and ``GET /v1/events`` (API.md §3) through the whole application.

These run on SQLite through its search index too, as a running service queries it.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from server.api import Api, Params, problem
from server.conftest import ALL_BACKENDS

pytestmark = pytest.mark.anyio


@pytest.fixture(params=ALL_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    param: str = request.param
    return param


# Six events, seq 0-5 in this order. Times ascend with the seqs; e4's time is Unix seconds
# (2026-01-04T00:00:00Z) and e5's has an offset (2026-01-04T23:00:00Z). e4 has no source, so
# its source is the key's name, "producer".
EVENTS: list[dict[str, Any]] = [
    {
        "id": "e1",
        "type": "invoice.billed",
        "time": "2026-01-01T00:00:00Z",
        "actor": {"id": "alice", "type": "user"},
        "subject": {"id": "inv-1", "type": "invoice"},
        "source": "billing",
        "outcome": "success",
        "data": {
            "amount": 100,
            "currency": "EUR",
            "location": {"city": "Seattle"},
            "tags": ["red", "blue"],
            "paid": True,
            "note": None,
        },
    },
    {
        "id": "e2",
        "type": "invoice.billed",
        "time": "2026-01-02T00:00:00Z",
        "actor": "bob",
        "subject": {"id": "inv-2", "type": "invoice"},
        "source": "billing",
        "outcome": "failure",
        "data": {
            "amount": 1000,
            "currency": "USD",
            "location": {"city": "Portland"},
            "tags": ["green"],
            "paid": False,
        },
    },
    {
        "id": "e3",
        "type": "account.created",
        "time": "2026-01-03T00:00:00Z",
        "actor": {"id": "alice", "type": "user", "name": "Alice Liddell"},
        "subject": {"id": "acct-9", "type": "account"},
        "source": "accounts",
        "outcome": "unknown",
        "data": {"amount": "150", "plan": "Pro Plan", "location": {"city": "Seattle"}},
    },
    {
        "id": "e4",
        "type": "account creation",
        "time": 1767484800,
        "actor": {"id": "svc-1", "type": "service"},
        "data": {"items": [{"sku": "A1", "qty": 2}, {"sku": "B2", "qty": 5}], "amount": 99.5},
    },
    {
        "id": "e5",
        "type": "login",
        "time": "2026-01-05T00:00:00+01:00",
        "actor": "carol",
        "source": "auth",
        "outcome": "failure",
    },
    {
        "id": "e6",
        "type": "login",
        "time": "2026-01-06T00:00:00Z",
        "actor": {"id": "Bob", "type": "user"},
        "source": "auth",
        "outcome": "success",
        "data": {"ip": "10.0.0.1", "attempts": 3},
    },
]
ALL = ["e6", "e5", "e4", "e3", "e2", "e1"]  # newest first, the default order


@pytest.fixture
async def events(api: Api) -> Api:
    """``api`` with ``EVENTS`` stored in tenant acme, and another tenant's events beside."""
    await api.create_batch(EVENTS)
    return api


# -- GET /v1/events/{id} --------------------------------------------------------------------


async def test_get_an_event(events: Api) -> None:
    response = await events.get("e3")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    event = response.json()
    assert event["id"] == "e3"
    assert event["seq"] == 2
    assert event["actor"] == {"id": "alice", "type": "user", "name": "Alice Liddell"}


@pytest.mark.parametrize("event_id", ["nope", "E1", "e1 ", "e", "x" * 129])
async def test_get_an_unknown_id_is_404(events: Api, event_id: str) -> None:
    doc = problem(await events.get(event_id), 404)
    assert event_id.strip() in doc["detail"]


async def test_get_an_id_with_every_allowed_character(api: Api) -> None:
    event_id = "Az09._:-x"
    await api.create({"id": event_id, "type": "t"})
    assert (await api.get(event_id)).json()["id"] == event_id


# -- GET /v1/events: what matches ---------------------------------------------------------

CASES: list[tuple[Params, list[str]]] = [
    ((), ALL),
    ((("order", "desc"),), ALL),
    ((("order", "asc"),), ALL[::-1]),
    # The envelope's equality parameters; repeated, OR.
    ((("type", "invoice.billed"),), ["e2", "e1"]),
    ((("type", "invoice.billed"), ("type", "login")), ["e6", "e5", "e2", "e1"]),
    ((("type", "account creation"),), ["e4"]),
    ((("type", "Login"),), []),
    ((("source", "billing"),), ["e2", "e1"]),
    ((("source", "producer"),), ["e4"]),
    ((("outcome", "failure"),), ["e5", "e2"]),
    ((("outcome", "success"), ("outcome", "unknown")), ["e6", "e3", "e1"]),
    ((("actor", "alice"),), ["e3", "e1"]),
    ((("actor", "bob"),), ["e2"]),
    ((("actor.type", "user"),), ["e6", "e3", "e1"]),
    ((("actor.type", "service"), ("actor.type", "user")), ["e6", "e4", "e3", "e1"]),
    ((("subject", "inv-1"),), ["e1"]),
    ((("subject.type", "invoice"),), ["e2", "e1"]),
    ((("actor.name", "Alice Liddell"),), ["e3"]),
    # Different parameters, AND.
    ((("actor", "alice"), ("subject.type", "invoice")), ["e1"]),
    ((("type", "login"), ("outcome", "failure")), ["e5"]),
    ((("type", "login"), ("type", "invoice.billed"), ("outcome", "success")), ["e6", "e1"]),
    # Any field path; numbers compare as numbers with numeric fields.
    ((("data.location.city", "Seattle"),), ["e3", "e1"]),
    ((("data.amount", "100"),), ["e1"]),
    ((("data.amount", "100.0"),), ["e1"]),
    ((("data.amount", "1e2"),), ["e1"]),
    ((("data.amount", "150"),), ["e3"]),  # the string "150"
    ((("data.amount[eq]", "99.5"),), ["e4"]),
    ((("data.amount[lt]", "150"),), ["e4", "e1"]),
    ((("data.amount[lte]", "100"),), ["e4", "e1"]),
    ((("data.amount[gt]", "150"),), ["e2"]),
    ((("data.amount[gte]", "150"),), ["e3", "e2"]),  # "150" >= "150" as strings
    ((("data.amount[gt]", "99.5"), ("data.amount[lt]", "1000")), ["e1"]),
    ((("data.amount[in]", "100,1000"),), ["e2", "e1"]),
    ((("data.amount", "100"), ("data.amount", "1000")), ["e2", "e1"]),
    ((("data.attempts[gte]", "3"),), ["e6"]),
    # true, false, null: the JSON literals.
    ((("data.paid", "true"),), ["e1"]),
    ((("data.paid", "false"),), ["e2"]),
    ((("data.note", "null"),), ["e1"]),
    # Arrays: any element.
    ((("data.tags", "blue"),), ["e1"]),
    ((("data.tags[in]", "green,blue"),), ["e2", "e1"]),
    ((("data.tags[ne]", "red"),), ["e2"]),
    ((("data.items.sku", "B2"),), ["e4"]),
    ((("data.items.qty[gt]", "4"),), ["e4"]),
    ((("data.items.qty[gt]", "5"),), []),
    # ne: only events that have the field.
    ((("data.currency[ne]", "EUR"),), ["e2"]),
    ((("outcome[ne]", "success"),), ["e5", "e3", "e2"]),
    # exists
    ((("data.note[exists]", "true"),), ["e1"]),
    ((("data.location[exists]", "false"),), ["e6", "e5", "e4"]),
    ((("subject[exists]", "false"),), ["e6", "e5", "e4"]),
    ((("outcome[exists]", "false"),), ["e4"]),
    ((("data.items.sku[exists]", "true"),), ["e4"]),
    # prefix
    ((("data.plan[prefix]", "Pro"),), ["e3"]),
    ((("type[prefix]", "account"),), ["e4", "e3"]),
    ((("subject[prefix]", "inv-"),), ["e2", "e1"]),
    # The server's fields.
    ((("tenant", "acme"),), ALL),
    ((("tenant", "globex"),), []),
    ((("seq[gte]", "4"),), ["e6", "e5"]),
    ((("seq", "0"),), ["e1"]),
    ((("received_at[lt]", "2000-01-01T00:00:00Z"),), []),
    ((("received_at[exists]", "true"),), ALL),
    # id
    ((("id", "e4"),), ["e4"]),
    ((("id[in]", "e1,e3,nope"),), ["e3", "e1"]),
    ((("id[in]", "e1,e3"), ("type", "account.created")), ["e3"]),
    # time: since inclusive, until exclusive; RFC 3339 with any offset, or Unix seconds.
    ((("since", "2026-01-03T00:00:00Z"),), ["e6", "e5", "e4", "e3"]),
    ((("until", "2026-01-03T00:00:00Z"),), ["e2", "e1"]),
    ((("since", "1767312000"), ("until", "1767484800")), ["e3", "e2"]),
    ((("since", "1767312000.5"),), ["e6", "e5", "e4", "e3"]),
    ((("since", "2026-01-05T00:00:00+01:00"),), ["e6", "e5"]),
    ((("until", "2026-01-04T23:00:00.000001Z"),), ["e5", "e4", "e3", "e2", "e1"]),
    ((("time[gte]", "2026-01-05T00:00:00Z"),), ["e6"]),
    ((("time[lt]", "2026-01-02T00:00:00Z"),), ["e1"]),
    ((("time", "2026-01-04T00:00:00Z"),), ["e4"]),
    ((("time", "1767484800"),), ["e4"]),
    # q: every word, anywhere, case-insensitive; word* is a prefix.
    ((("q", "seattle"),), ["e3", "e1"]),
    ((("q", "SEATTLE"),), ["e3", "e1"]),
    ((("q", "alice"),), ["e3", "e1"]),
    ((("q", "liddell"),), ["e3"]),
    ((("q", "pro plan"),), ["e3"]),
    ((("q", "plan pro"),), ["e3"]),
    ((("q", "seattle portland"),), []),
    ((("q", "bill*"),), ["e2", "e1"]),
    ((("q", "Sea*"),), ["e3", "e1"]),
    ((("q", "carol"),), ["e5"]),
    ((("q", "billing"),), ["e2", "e1"]),
    ((("q", "inv"),), ["e2", "e1"]),
    ((("q", "nowhere"),), []),
    ((("q", "seattle"), ("type", "account.created")), ["e3"]),
    ((("q", "user*"), ("order", "asc")), ["e1", "e3", "e6"]),  # the actor's type
]


@pytest.mark.parametrize(
    ("params", "expected"), CASES, ids=["&".join(f"{k}={v}" for k, v in p) for p, _ in CASES]
)
async def test_query(events: Api, params: Params, expected: list[str]) -> None:
    page = await events.page(params)
    assert [e["id"] for e in page["events"]] == expected
    assert page["next_cursor"] is None


async def test_query_answers_stored_events(events: Api) -> None:
    page = await events.page([("id", "e2")])
    assert page["events"] == [(await events.get("e2")).json()]


async def test_an_empty_tenant_has_no_events(api: Api) -> None:
    assert await api.page() == {"events": [], "next_cursor": None}


# -- limit and cursor ------------------------------------------------------------------------


async def test_limit_and_cursor_walk_every_event_once(events: Api) -> None:
    first = await events.page([("limit", "4")])
    assert [e["id"] for e in first["events"]] == ALL[:4]
    assert isinstance(first["next_cursor"], str)
    second = await events.page([("limit", "4"), ("cursor", first["next_cursor"])])
    assert [e["id"] for e in second["events"]] == ALL[4:]
    assert second["next_cursor"] is None


@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize("limit", ["1", "2", "5", "6", "1000"])
async def test_walk_in_pages(events: Api, order: str, limit: str) -> None:
    ids = await events.ids([("order", order), ("limit", limit)])
    assert ids == (ALL[::-1] if order == "asc" else ALL)


async def test_walk_a_filtered_query(events: Api) -> None:
    params = [("actor.type", "user"), ("limit", "1"), ("order", "asc")]
    assert await events.ids(params) == ["e1", "e3", "e6"]


async def test_limit_defaults_to_100(api: Api) -> None:
    await api.create_batch([{"type": "t", "id": f"n{i}"} for i in range(101)])
    page = await api.page()
    assert len(page["events"]) == 100
    assert page["events"][0]["id"] == "n100"
    assert page["next_cursor"] is not None
    rest = await api.page([("cursor", page["next_cursor"])])
    assert [e["id"] for e in rest["events"]] == ["n0"]
    assert rest["next_cursor"] is None


async def test_limit_1000_is_allowed(events: Api) -> None:
    assert len((await events.page([("limit", "1000")]))["events"]) == 6


@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_a_cursor_neither_skips_nor_repeats_while_events_arrive(api: Api, order: str) -> None:
    await api.create_batch([{"id": f"old{i}", "type": "t"} for i in range(7)])
    counter = itertools.count()

    async def more() -> None:
        n = next(counter)
        if n < 3:  # then stop, or an oldest-first walk would never catch up
            await api.create_batch(
                [{"id": f"new{n}a", "type": "t"}, {"id": f"new{n}b", "type": "u"}]
            )

    found = await api.walk([("order", order), ("limit", "2")], between_pages=more)
    ids = [e["id"] for e in found]
    assert len(ids) == len(set(ids))
    old = [f"old{i}" for i in range(7)]
    if order == "desc":
        # Newest first: the walk covers the log as it was when it started.
        assert ids == old[::-1]
    else:
        # Oldest first: what arrives meanwhile joins the end, so the walk goes on until it
        # catches up; every event stored before the last page is in it, in seq order.
        assert [e["seq"] for e in found] == list(range(13))
        assert ids[:7] == old
        assert sorted(ids[7:]) == [f"new{n}{x}" for n in range(3) for x in "ab"]


async def test_a_cursor_continues_with_another_limit(events: Api) -> None:
    first = await events.page([("limit", "1")])
    rest = await events.page([("limit", "10"), ("cursor", first["next_cursor"])])
    assert [e["id"] for e in rest["events"]] == ALL[1:]


async def test_a_cursor_of_the_same_query_in_another_parameter_order(events: Api) -> None:
    first = await events.page([("type", "login"), ("type", "invoice.billed"), ("limit", "1")])
    rest = await events.page(
        [("type", "invoice.billed"), ("type", "login"), ("cursor", first["next_cursor"])]
    )
    assert [e["id"] for e in first["events"] + rest["events"]] == ["e6", "e5", "e2", "e1"]


async def test_a_cursor_of_another_query_is_400(events: Api) -> None:
    first = await events.page([("type", "login"), ("limit", "1")])
    cursor = first["next_cursor"]
    for params in (
        [("type", "invoice.billed")],
        [("type", "login"), ("order", "asc")],
        [("type", "login"), ("q", "carol")],
        [],
    ):
        doc = problem(await events.query([*params, ("cursor", cursor)]), 400)
        assert "cursor" in doc["detail"]


# -- malformed parameters: 400 naming the parameter -----------------------------------------

BAD: list[tuple[str, str]] = [
    ("limit", "0"),
    ("limit", "1001"),
    ("limit", "-1"),
    ("limit", "ten"),
    ("limit", ""),
    ("limit", "1.5"),
    ("limit", "99999999999999999999999999"),
    ("order", "sideways"),
    ("order", "ASC"),
    ("since", "yesterday"),
    ("since", "2026-13-01T00:00:00Z"),
    ("since", "2026-01-01"),
    ("until", "2026-01-01T25:00:00Z"),
    ("until", ""),
    ("time[gt]", "noon"),
    ("received_at[lt]", "soon"),
    ("time[prefix]", "2026"),
    ("cursor", "garbage"),
    ("cursor", ""),
    ("cursor", "WzEsLTEsIngiXQ"),  # a forged cursor: [1, -1, "x"]
    ("data.amount[between]", "1"),
    ("data.amount[EQ]", "1"),
    ("data.amount[]", "1"),
    ("data.amount[eq", "1"),
    ("data.x[exists]", "maybe"),
    ("data..city", "x"),
    ("data.a b", "x"),
    ("data.city!", "x"),
    (".data", "x"),
    ("data.", "x"),
    ("colour", "red"),
    ("actor.id.x", "x"),
    ("actor.role", "x"),
    ("type.x", "x"),
    ("q", "***"),
    ("q", ""),
]


@pytest.mark.parametrize(("name", "value"), BAD, ids=[f"{n}={v}" for n, v in BAD])
async def test_a_malformed_parameter_is_400_naming_it(events: Api, name: str, value: str) -> None:
    doc = problem(await events.query([(name, value)]), 400)
    assert name in doc["detail"]


@pytest.mark.parametrize("name", ["limit", "order", "since", "until", "cursor"])
async def test_a_single_valued_parameter_given_twice_is_400(events: Api, name: str) -> None:
    values = {
        "limit": ("1", "2"),
        "order": ("asc", "desc"),
        "since": ("1", "2"),
        "until": ("1", "2"),
        "cursor": ("a", "b"),
    }[name]
    doc = problem(await events.query([(name, v) for v in values]), 400)
    assert name in doc["detail"]


async def test_a_query_string_that_is_not_utf8_is_400(events: Api) -> None:
    response = await events.client.get("/v1/events?type=%ff", headers=events.headers)
    problem(response, 400)


# -- numbers beyond 64 bits ------------------------------------------------------------------

BIG = "99999999999999999999999"


@pytest.mark.parametrize(
    "backend",
    [
        "memory",
        "sqlite",
        "sqlite-indexed",
    ],
    indirect=True,
)
@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ((("data.amount", BIG),), []),
        ((("data.amount[in]", f"100,{BIG}"),), ["e1"]),
        ((("data.amount[lt]", BIG),), ["e4", "e3", "e2", "e1"]),
        ((("seq[gt]", BIG),), []),
        ((("data.attempts[ne]", "-" + BIG),), ["e6"]),
    ],
    ids=["eq", "in", "lt", "seq-gt", "ne"],
)
async def test_a_number_beyond_64_bits_compares_as_a_number(
    events: Api, params: Params, expected: list[str]
) -> None:
    assert await events.ids(params) == expected

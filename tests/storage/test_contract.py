"""The storage contract (``auditlog.storage.base``), run against every backend in ``BACKENDS``.

Every test here takes the ``store`` fixture and so runs once per backend. ``MemoryStore`` is the
reference; the last tests compare each backend's query answers with a brute-force filter through
``auditlog.model.matching.event_matches`` over every stored event, for many random queries.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio
import orjson
import pytest

from auditlog.model import cursor
from auditlog.model.canonical import canonical_bytes
from auditlog.model.credentials import ApiKey, User
from auditlog.model.event import Limits, NewEvent, Principal, validate_event
from auditlog.model.fields import leaf_paths
from auditlog.model.matching import event_matches
from auditlog.model.query import Query, parse_query
from auditlog.model.times import format_us, parse_rfc3339
from auditlog.storage.base import (
    Appended,
    AppendOutcome,
    AppendRequest,
    IdConflict,
    Page,
    Store,
    StoredCheckpoint,
)

pytestmark = pytest.mark.anyio

PRINCIPAL = Principal("key:test", "test")
NOW = parse_rfc3339("2026-11-27T00:00:00Z")


def event(**fields: Any) -> NewEvent:
    """A validated event; ``type`` defaults to ``test.event``."""
    return validate_event({"type": "test.event", **fields}, PRINCIPAL, Limits(), NOW)


def events(n: int, prefix: str = "e", **fields: Any) -> tuple[NewEvent, ...]:
    return tuple(event(id=f"{prefix}{i}", **fields) for i in range(n))


async def append_ok(store: Store, tenant: str, *new: NewEvent) -> tuple[Appended, ...]:
    """Append one request and return its outcome, which must not be a conflict."""
    (outcome,) = await store.append([AppendRequest(tenant, new)])
    assert not isinstance(outcome, IdConflict), outcome
    assert len(outcome) == len(new)
    return outcome


def ok(outcome: AppendOutcome) -> tuple[Appended, ...]:
    assert not isinstance(outcome, IdConflict), outcome
    return outcome


def parsed(body: bytes) -> dict[str, Any]:
    value: dict[str, Any] = orjson.loads(body)
    return value


def ids(bodies: Sequence[bytes]) -> list[str]:
    return [parsed(b)["id"] for b in bodies]


def seqs(bodies: Sequence[bytes]) -> list[int]:
    return [parsed(b)["seq"] for b in bodies]


def query_of(*pairs: tuple[str, str]) -> Query:
    query, cursor_text = parse_query(list(pairs))
    assert cursor_text is None
    return query


async def walk(
    store: Store,
    tenant: str,
    query: Query,
    between_pages: Callable[[], Awaitable[None]] | None = None,
) -> list[bytes]:
    """Every page of ``query``, following cursors as the service does."""
    out: list[bytes] = []
    current = query
    for _ in range(100_000):
        page = await store.query(tenant, current)
        assert len(page.bodies) <= query.limit
        if page.bodies:
            assert page.last_seq == parsed(page.bodies[-1])["seq"]
        else:
            assert not page.more
        out.extend(page.bodies)
        if not page.more:
            return out
        assert page.last_seq is not None
        if current.after_seq is not None:  # every page moves on in the query's order
            moved = page.last_seq - current.after_seq
            assert moved > 0 if query.order == "asc" else moved < 0
        if between_pages is not None:
            await between_pages()
        current = cursor.apply(query, cursor.encode(current, page.last_seq))
    raise AssertionError("pagination did not end")


async def everything(store: Store, tenant: str) -> list[bytes]:
    return await walk(store, tenant, query_of(("order", "asc"), ("limit", "1000")))


# -- seq ------------------------------------------------------------------------------------


async def test_first_event_of_a_tenant_has_seq_0(store: Store) -> None:
    (appended,) = await append_ok(store, "acme", event(id="first"))
    assert appended.seq == 0
    assert appended.created
    assert appended.id == "first"
    stored = parsed(appended.body)
    assert stored["seq"] == 0
    assert stored["tenant"] == "acme"


async def test_seq_is_gap_free_per_tenant_in_commit_order(store: Store) -> None:
    rng = random.Random(1234)
    tenants = ["a", "b", "c"]
    expected: dict[str, list[str]] = {t: [] for t in tenants}
    counter = 0
    for _ in range(40):
        group = []
        for _ in range(rng.randint(1, 4)):
            tenant = rng.choice(tenants)
            new = []
            for _ in range(rng.randint(1, 5)):
                new.append(event(id=f"x{counter}"))
                counter += 1
            group.append(AppendRequest(tenant, tuple(new)))
        outcomes = await store.append(group)
        assert len(outcomes) == len(group)
        for request, outcome in zip(group, outcomes, strict=True):
            appended = ok(outcome)
            assert [a.id for a in appended] == [e.id for e in request.events]
            log = expected[request.tenant]
            assert [a.seq for a in appended] == list(range(len(log), len(log) + len(appended)))
            assert all(a.created for a in appended)
            log.extend(a.id for a in appended)
    for tenant in tenants:
        bodies = await everything(store, tenant)
        assert ids(bodies) == expected[tenant]
        assert seqs(bodies) == list(range(len(expected[tenant])))


async def test_concurrent_appends_stay_gap_free(store: Store) -> None:
    results: list[tuple[str, tuple[Appended, ...]]] = []

    async def one(n: int) -> None:
        tenant = "even" if n % 2 == 0 else "odd"
        results.append((tenant, await append_ok(store, tenant, *events(3, prefix=f"c{n}-"))))

    async with anyio.create_task_group() as tg:
        for n in range(30):
            tg.start_soon(one, n)
    for tenant in ("even", "odd"):
        got = sorted(a.seq for t, appended in results if t == tenant for a in appended)
        assert got == list(range(45))
        bodies = await everything(store, tenant)
        assert seqs(bodies) == list(range(45))
        # Each request's events are contiguous and in request order.
        for t, appended in results:
            if t == tenant:
                first = appended[0].seq
                assert [a.seq for a in appended] == [first, first + 1, first + 2]


async def test_group_of_several_requests_in_one_call(store: Store) -> None:
    await append_ok(store, "acme", event(id="before"))
    outcomes = await store.append(
        [
            AppendRequest("acme", (event(id="r1a"), event(id="r1b"))),
            AppendRequest("other", (event(id="r2a"),)),
            AppendRequest("acme", (event(id="r3a"),)),
        ]
    )
    assert [[(a.id, a.seq, a.created) for a in ok(o)] for o in outcomes] == [
        [("r1a", 1, True), ("r1b", 2, True)],
        [("r2a", 0, True)],
        [("r3a", 3, True)],
    ]
    assert ids(await everything(store, "acme")) == ["before", "r1a", "r1b", "r3a"]
    assert ids(await everything(store, "other")) == ["r2a"]


async def test_stored_event_form(store: Store) -> None:
    new = event(
        id="inv-1",
        type="invoice.billed",
        time="2026-01-01T01:00:00+01:00",
        actor={"id": "alice", "type": "user"},
        subject="inv-1",
        outcome="success",
        data={"amount": 100.5, "city": "Zürich", "tags": ["a", "b"], "z": None, "a": {"b": True}},
    )
    (appended,) = await append_ok(store, "acme", new)
    stored = parsed(appended.body)
    received = stored.pop("received_at")
    assert format_us(parse_rfc3339(received)) == received
    assert stored == {**new.content, "tenant": "acme", "seq": 0}
    assert stored["time"] == "2026-01-01T00:00:00.000000Z"
    # The bytes are the canonical bytes: what the Merkle tree hashes.
    assert appended.body == canonical_bytes(parsed(appended.body))
    assert await store.get_event("acme", "inv-1") == appended.body
    page = await store.query("acme", query_of())
    assert page.bodies == (appended.body,)


# -- atomic requests and idempotency --------------------------------------------------------


async def test_a_conflict_refuses_its_whole_request_and_only_that(store: Store) -> None:
    (held,) = await append_ok(store, "acme", event(id="held", data={"v": 1}))
    outcomes = await store.append(
        [
            AppendRequest("acme", (event(id="r1a"), event(id="r1b"))),
            AppendRequest(
                "acme", (event(id="r2a"), event(id="held", data={"v": 2}), event(id="r2c"))
            ),
            AppendRequest("acme", (event(id="r3a"),)),
        ]
    )
    assert [(a.id, a.seq) for a in ok(outcomes[0])] == [("r1a", 1), ("r1b", 2)]
    assert outcomes[1] == IdConflict(1, "held")
    assert [(a.id, a.seq) for a in ok(outcomes[2])] == [("r3a", 3)]
    assert await store.get_event("acme", "r2a") is None
    assert await store.get_event("acme", "r2c") is None
    assert await store.get_event("acme", "held") == held.body
    bodies = await everything(store, "acme")
    assert ids(bodies) == ["held", "r1a", "r1b", "r3a"]
    assert seqs(bodies) == [0, 1, 2, 3]


async def test_refused_request_ids_stay_free(store: Store) -> None:
    await append_ok(store, "acme", event(id="held", data={"v": 1}))
    (outcome,) = await store.append(
        [AppendRequest("acme", (event(id="fresh"), event(id="held", data={"v": 2})))]
    )
    assert outcome == IdConflict(1, "held")
    (appended,) = await append_ok(store, "acme", event(id="fresh", data={"other": True}))
    assert appended.created
    assert appended.seq == 1


async def test_replay_returns_the_original(store: Store) -> None:
    new = event(id="r", time="2026-01-01T00:00:00Z", data={"n": 1, "f": 0.5})
    (first,) = await append_ok(store, "acme", new)
    await append_ok(store, "acme", *events(3))
    (again,) = await append_ok(store, "acme", new)
    assert not again.created
    assert (again.id, again.seq, again.body) == (first.id, first.seq, first.body)
    assert len(await everything(store, "acme")) == 4


async def test_replay_of_a_retry_that_omits_server_defaults(store: Store) -> None:
    (first,) = await append_ok(store, "acme", event(id="r", source="billing", actor="alice"))
    # Validated later (another "now"), without time, actor or source: still the same event.
    retry = validate_event({"id": "r", "type": "test.event"}, PRINCIPAL, Limits(), NOW + 10**9)
    (again,) = await append_ok(store, "acme", retry)
    assert not again.created
    assert again.body == first.body


async def test_replay_in_a_batch_keeps_the_original_seq(store: Store) -> None:
    await append_ok(store, "acme", *events(3))
    outcome = await append_ok(store, "acme", event(id="new1"), event(id="e1"), event(id="new2"))
    assert [(a.id, a.seq, a.created) for a in outcome] == [
        ("new1", 3, True),
        ("e1", 1, False),
        ("new2", 4, True),
    ]
    assert seqs(await everything(store, "acme")) == [0, 1, 2, 3, 4]


async def test_replay_of_a_whole_batch_creates_nothing(store: Store) -> None:
    first = await append_ok(store, "acme", *events(3))
    again = await append_ok(store, "acme", *events(3))
    assert [(a.seq, a.body, a.created) for a in again] == [(a.seq, a.body, False) for a in first]
    assert len(await everything(store, "acme")) == 3


@pytest.mark.parametrize(
    "change",
    [
        {"type": "other.type"},
        {"data": {"n": 2}},
        {"data": {"n": "1"}},
        {"data": {"n": True}},
        {"data": {}},
        {"outcome": "success"},
        {"subject": "s"},
        {"time": "2026-01-01T00:00:00.000001Z"},
        {"actor": "mallory"},
        {"source": "elsewhere"},
    ],
)
async def test_same_id_other_content_is_a_conflict(store: Store, change: dict[str, Any]) -> None:
    base: dict[str, Any] = {"id": "c", "time": "2026-01-01T00:00:00Z", "data": {"n": 1}}
    (first,) = await append_ok(store, "acme", event(**base))
    (outcome,) = await store.append([AppendRequest("acme", (event(**{**base, **change}),))])
    assert outcome == IdConflict(0, "c")
    assert await store.get_event("acme", "c") == first.body
    assert len(await everything(store, "acme")) == 1


async def test_conflict_index_is_the_events_index_in_its_request(store: Store) -> None:
    await append_ok(store, "acme", *events(3))
    (outcome,) = await store.append(
        [AppendRequest("acme", (event(id="n0"), event(id="e0"), event(id="e2", data={"x": 1})))]
    )
    assert outcome == IdConflict(2, "e2")


async def test_duplicate_id_within_one_request(store: Store) -> None:
    outcome = await append_ok(
        store, "acme", event(id="d", data={"v": 1}), event(id="d", data={"v": 1})
    )
    assert [(a.seq, a.created) for a in outcome] == [(0, True), (0, False)]
    assert outcome[0].body == outcome[1].body
    assert seqs(await everything(store, "acme")) == [0]


async def test_duplicate_id_with_other_content_within_one_request(store: Store) -> None:
    (outcome,) = await store.append(
        [
            AppendRequest(
                "acme", (event(id="a"), event(id="d", data={"v": 1}), event(id="d", data={"v": 2}))
            )
        ]
    )
    assert outcome == IdConflict(2, "d")
    assert await everything(store, "acme") == []
    assert await store.get_event("acme", "a") is None


async def test_duplicate_id_across_requests_of_one_group(store: Store) -> None:
    outcomes = await store.append(
        [
            AppendRequest("acme", (event(id="x"), event(id="d", data={"v": 1}))),
            AppendRequest("acme", (event(id="d", data={"v": 1}), event(id="y"))),
        ]
    )
    first, second = ok(outcomes[0]), ok(outcomes[1])
    assert [(a.id, a.seq, a.created) for a in first] == [("x", 0, True), ("d", 1, True)]
    assert [(a.id, a.seq, a.created) for a in second] == [("d", 1, False), ("y", 2, True)]
    assert second[0].body == first[1].body
    assert seqs(await everything(store, "acme")) == [0, 1, 2]


async def test_conflicting_id_across_requests_of_one_group(store: Store) -> None:
    outcomes = await store.append(
        [
            AppendRequest("acme", (event(id="d", data={"v": 1}),)),
            AppendRequest("acme", (event(id="y"), event(id="d", data={"v": 2}))),
            AppendRequest("acme", (event(id="z"),)),
        ]
    )
    assert [(a.id, a.seq) for a in ok(outcomes[0])] == [("d", 0)]
    assert outcomes[1] == IdConflict(1, "d")
    assert [(a.id, a.seq) for a in ok(outcomes[2])] == [("z", 1)]
    assert ids(await everything(store, "acme")) == ["d", "z"]


async def test_a_refused_request_does_not_claim_ids_for_later_requests(store: Store) -> None:
    await append_ok(store, "acme", event(id="held"))
    outcomes = await store.append(
        [
            AppendRequest("acme", (event(id="d", data={"v": 1}), event(id="held", data={"v": 9}))),
            AppendRequest("acme", (event(id="d", data={"v": 2}),)),
        ]
    )
    assert outcomes[0] == IdConflict(1, "held")
    ((appended,),) = [ok(outcomes[1])]
    assert (appended.id, appended.seq, appended.created) == ("d", 1, True)
    assert parsed(appended.body)["data"] == {"v": 2}


# -- tenants --------------------------------------------------------------------------------


async def test_tenants_are_isolated(store: Store) -> None:
    (a,) = await append_ok(store, "acme", event(id="same", type="invoice.billed", data={"v": 1}))
    await append_ok(store, "acme", event(id="only-acme", type="invoice.billed"))
    (b,) = await append_ok(store, "globex", event(id="same", type="invoice.billed", data={"v": 2}))
    assert (a.seq, b.seq) == (0, 0)
    assert b.created
    assert await store.get_event("acme", "same") == a.body
    assert await store.get_event("globex", "same") == b.body
    assert await store.get_event("globex", "only-acme") is None
    assert await store.get_event("nobody", "same") is None
    cases: list[tuple[str, tuple[tuple[str, str], ...], list[str]]] = [
        ("acme", (), ["same", "only-acme"]),
        ("acme", (("type", "invoice.billed"),), ["same", "only-acme"]),
        ("acme", (("q", "invoice"),), ["same", "only-acme"]),
        ("acme", (("id", "same"),), ["same"]),
        ("acme", (("data.v", "2"),), []),
        ("globex", (), ["same"]),
        ("globex", (("type", "invoice.billed"),), ["same"]),
        ("globex", (("q", "invoice"),), ["same"]),
        ("globex", (("id", "only-acme"),), []),
        ("globex", (("data.v", "1"),), []),
    ]
    for tenant, pairs, expected in cases:
        for limit in ("1", "100"):
            bodies = await walk(store, tenant, query_of(("order", "asc"), ("limit", limit), *pairs))
            assert ids(bodies) == expected, (tenant, pairs)
            assert all(parsed(x)["tenant"] == tenant for x in bodies)
    assert await everything(store, "nobody") == []


async def test_tenant_query_parameter_cannot_cross_tenants(store: Store) -> None:
    await append_ok(store, "acme", event(id="a"))
    await append_ok(store, "globex", event(id="g"))
    assert await walk(store, "acme", query_of(("tenant", "globex"))) == []
    assert ids(await walk(store, "acme", query_of(("tenant", "acme")))) == ["a"]


@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize("after", [2**40 - 1, 2**40, 2**41, 2**41 + 5, 2**62])
@pytest.mark.parametrize(
    "pairs",
    [(), (("q", "secret"),), (("data.kind", "secret"),), (("type", "t"),), (("since", "0"),)],
    ids=["walk", "words", "token", "type", "time"],
)
async def test_no_cursor_position_reaches_another_tenant(
    store: Store, order: str, after: int, pairs: tuple[tuple[str, str], ...]
) -> None:
    # Cursors are not signed: a client can write one with any position. Whatever it says,
    # the page holds only the caller's events.
    for tenant in ("acme", "globex", "initech"):
        await append_ok(
            store, tenant, *(event(type="t", data={"kind": "secret"}) for _ in range(3))
        )
    query = dataclasses.replace(query_of(("order", order), *pairs), after_seq=after)
    page = await store.query("globex", query)
    assert all(parsed(b)["tenant"] == "globex" for b in page.bodies)
    assert len(page.bodies) == (3 if order == "desc" else 0)


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ((("seq[gte]", "2"), ("seq[lt]", "5")), [2, 3, 4]),
        ((("seq[gt]", "2.5"), ("seq[lte]", "4.5")), [3, 4]),
        ((("seq", "3"),), [3]),
        ((("seq", "3.5"),), []),
        ((("seq[in]", "1,7,3"),), [1, 3, 7]),
        ((("seq[gt]", "99999999999999999999"),), []),
        ((("seq[lt]", "-1"),), []),
        ((("seq[gte]", "8"), ("type", "t")), [8, 9]),
        ((("seq[lt]", "2"), ("q", "secret")), [0, 1]),
    ],
)
async def test_conditions_on_seq(
    store: Store, pairs: tuple[tuple[str, str], ...], expected: list[int]
) -> None:
    await append_ok(store, "acme", *(event(type="t", data={"w": "secret"}) for _ in range(10)))
    await append_ok(store, "globex", *(event(type="t", data={"w": "secret"}) for _ in range(10)))
    for order in ("asc", "desc"):
        bodies = await walk(store, "acme", query_of(("order", order), ("limit", "2"), *pairs))
        want = expected if order == "asc" else expected[::-1]
        assert seqs(bodies) == want, (pairs, order)


async def test_keys_with_dots_or_separators_are_not_nested_paths(store: Store) -> None:
    await append_ok(
        store,
        "acme",
        event(id="nested", data={"a": {"b": 1}}),
        event(id="dotted", data={"a.b": 1}),
        event(id="separated", data={"a\x1eb": 1, "a\x1fb": 1}),
    )
    assert ids(await walk(store, "acme", query_of(("data.a.b", "1")))) == ["nested"]
    assert ids(await walk(store, "acme", query_of(("data.a.b[exists]", "true")))) == ["nested"]


async def test_get_event_unknown(store: Store) -> None:
    assert await store.get_event("acme", "nope") is None
    await append_ok(store, "acme", event(id="there"))
    assert await store.get_event("acme", "nope") is None
    assert await store.get_event("acme", "THERE") is None


# -- query operators ------------------------------------------------------------------------

CATALOG: list[dict[str, Any]] = [
    {
        "id": "e0",
        "type": "invoice.billed",
        "time": "2026-01-01T00:00:00Z",
        "actor": {"id": "alice", "type": "user", "name": "Alice"},
        "subject": {"id": "inv-1", "type": "invoice"},
        "source": "billing",
        "outcome": "success",
        "data": {
            "amount": 100,
            "currency": "EUR",
            "tags": ["urgent", "vip"],
            "location": {"city": "Seattle"},
            "lines": [{"sku": "A-1", "qty": 2}, {"sku": "B-2", "qty": 1}],
            "paid": False,
            "note": None,
            "code": "100",
        },
    },
    {
        "id": "e1",
        "type": "invoice.billed",
        "time": "2026-01-02T00:00:00Z",
        "actor": "bob",
        "subject": {"id": "inv-2", "type": "invoice"},
        "source": "billing",
        "outcome": "failure",
        "data": {
            "amount": 1000,
            "currency": "USD",
            "tags": ["vip"],
            "location": {"city": "Boston"},
            "lines": [{"sku": "C-3", "qty": 5}],
            "paid": True,
            "code": "1000",
        },
    },
    {
        "id": "e2",
        "type": "invoice.paid",
        "time": "2026-01-03T00:00:00Z",
        "actor": {"id": "alice", "type": "user"},
        "subject": "inv-1",
        "source": "payments",
        "outcome": "success",
        "data": {
            "amount": 100.5,
            "currency": "EUR",
            "location": {"city": "Zürich"},
            "paid": True,
            "matrix": [[1, 2], [3, [150]]],
        },
    },
    {
        "id": "e3",
        "type": "account.created",
        "time": "2026-01-04T00:00:00Z",
        "actor": {"id": "svc-1", "type": "service"},
        "subject": {"id": "acct-9", "type": "account", "name": "Acme Corp"},
        "source": "crm",
        "data": {"plan": "pro", "seats": 5, "tags": [], "location": {"city": "seattle"}},
    },
    {
        "id": "e4",
        "type": "account.deleted",
        "time": "2026-01-05T00:00:00Z",
        "outcome": "unknown",
        "data": {"reason": "Requested by customer", "amount": -5},
    },
    {
        "id": "e5",
        "type": "login failed",
        "time": "2026-01-06T00:00:00Z",
        "actor": {"id": "mallory", "type": "user"},
        "source": "auth",
        "outcome": "failure",
        "data": {"ip": "10.0.0.1", "attempts": 3, "amount": "150"},
    },
    {
        "id": "e6",
        "type": "invoice.billed",
        "time": "2026-01-07T00:00:00Z",
        "actor": {"id": "bob", "type": "user"},
        "subject": {"id": "inv-3", "type": "invoice"},
        "source": "billing",
        "data": {
            "amount": 150,
            "lines": [{"sku": "A-1", "qty": 10}],
            "tags": ["urgent"],
            "location": {"city": "Seattle", "zip": "98101"},
        },
    },
    {
        "id": "e7",
        "type": "café.ouvert",
        "time": "2026-01-08T00:00:00Z",
        "actor": "zoë",
        "source": "pos",
        "data": {
            "note": "Crème brûlée",
            "amount": 0,
            "nested": {"deep": {"deeper": {"value": "treasure"}}},
        },
    },
]
# Another tenant with look-alike events (even the same ids): never visible from "acme".
LOOKALIKES: list[dict[str, Any]] = [
    {**raw, "data": {**raw["data"], "other": True}} for raw in CATALOG[::2]
]
ALL = [f"e{i}" for i in range(8)]
JAN7 = str(parse_rfc3339("2026-01-07T00:00:00Z") // 1_000_000)

OPERATOR_CASES: list[tuple[list[tuple[str, str]], list[str]]] = [
    # envelope
    ([], ALL),
    ([("type", "invoice.billed")], ["e0", "e1", "e6"]),
    ([("type", "invoice.billed"), ("type", "invoice.paid")], ["e0", "e1", "e2", "e6"]),
    ([("type[in]", "login failed,café.ouvert")], ["e5", "e7"]),
    ([("type[ne]", "invoice.billed")], ["e2", "e3", "e4", "e5", "e7"]),
    ([("type[prefix]", "invoice.")], ["e0", "e1", "e2", "e6"]),
    ([("type[prefix]", "account")], ["e3", "e4"]),
    ([("type[gt]", "invoice")], ["e0", "e1", "e2", "e5", "e6"]),
    ([("type[lt]", "b")], ["e3", "e4"]),
    ([("type[gte]", "login failed")], ["e5"]),
    ([("type[lte]", "café.ouvert")], ["e3", "e4", "e7"]),
    ([("source", "billing")], ["e0", "e1", "e6"]),
    ([("source", "test")], ["e4"]),
    ([("outcome", "success")], ["e0", "e2"]),
    ([("outcome", "failure"), ("outcome", "unknown")], ["e1", "e4", "e5"]),
    ([("outcome[exists]", "false")], ["e3", "e6", "e7"]),
    ([("outcome[ne]", "success")], ["e1", "e4", "e5"]),
    ([("actor", "alice")], ["e0", "e2"]),
    ([("actor", "bob")], ["e1", "e6"]),
    ([("actor", "key:test")], ["e4"]),
    ([("actor.id", "zoë")], ["e7"]),
    ([("actor.type", "user")], ["e0", "e2", "e5", "e6"]),
    ([("actor.type", "credential")], ["e4"]),
    ([("actor.type[exists]", "false")], ["e1", "e7"]),
    ([("actor.name", "Alice")], ["e0"]),
    ([("actor[prefix]", "svc")], ["e3"]),
    ([("subject", "inv-1")], ["e0", "e2"]),
    ([("subject.type", "invoice")], ["e0", "e1", "e6"]),
    ([("subject[exists]", "false")], ["e4", "e5", "e7"]),
    ([("subject.name[prefix]", "Acme")], ["e3"]),
    ([("id", "e3")], ["e3"]),
    ([("id[in]", "e1,e5,nope")], ["e1", "e5"]),
    ([("id[prefix]", "e")], ALL),
    ([("seq", "0")], ["e0"]),
    ([("seq[gte]", "6")], ["e6", "e7"]),
    ([("seq[lt]", "2")], ["e0", "e1"]),
    ([("seq[in]", "1,3")], ["e1", "e3"]),
    ([("tenant", "acme")], ALL),
    ([("tenant", "other")], []),
    # data: numbers compare as numbers, strings as strings
    ([("data.amount", "100")], ["e0"]),
    ([("data.amount[lt]", "150")], ["e0", "e2", "e4", "e7"]),
    ([("data.amount[lte]", "150")], ["e0", "e2", "e4", "e5", "e6", "e7"]),
    ([("data.amount[gt]", "150")], ["e1"]),
    ([("data.amount[gte]", "100.5")], ["e1", "e2", "e5", "e6"]),
    ([("data.amount[gt]", "abc")], []),
    ([("data.amount[lt]", "abc")], ["e5"]),
    ([("data.amount", "150")], ["e5", "e6"]),
    ([("data.amount", "150.0")], ["e6"]),
    ([("data.amount", "1e3")], ["e1"]),
    ([("data.amount[in]", "0,-5")], ["e4", "e7"]),
    ([("data.amount[ne]", "100")], ["e1", "e2", "e4", "e5", "e6", "e7"]),
    ([("data.amount[exists]", "false")], ["e3"]),
    ([("data.amount[gt]", "0"), ("data.amount[lt]", "1000")], ["e0", "e2", "e6"]),
    ([("data.code", "100")], ["e0"]),
    ([("data.code[gt]", "99")], []),
    ([("data.code[lt]", "99")], ["e0", "e1"]),
    ([("data.currency", "EUR")], ["e0", "e2"]),
    ([("data.currency[ne]", "EUR")], ["e1"]),
    # data: arrays match when any element does
    ([("data.tags", "vip")], ["e0", "e1"]),
    ([("data.tags", "urgent")], ["e0", "e6"]),
    ([("data.tags[ne]", "vip")], ["e3", "e6"]),
    ([("data.tags[exists]", "true")], ["e0", "e1", "e3", "e6"]),
    ([("data.lines.sku", "A-1")], ["e0", "e6"]),
    ([("data.lines.qty[gte]", "5")], ["e1", "e6"]),
    ([("data.lines.qty[lt]", "2")], ["e0"]),
    ([("data.matrix", "150")], ["e2"]),
    ([("data.matrix[gt]", "2")], ["e2"]),
    # data: nested objects, literals
    ([("data.location.city", "Seattle")], ["e0", "e6"]),
    ([("data.location.city[prefix]", "S")], ["e0", "e6"]),
    ([("data.location.city[gt]", "Z")], ["e2", "e3"]),
    ([("data.location.zip[exists]", "true")], ["e6"]),
    ([("data.nested.deep.deeper.value", "treasure")], ["e7"]),
    ([("data.nested.deep[exists]", "true")], ["e7"]),
    ([("data.paid", "true")], ["e1", "e2"]),
    ([("data.paid", "false")], ["e0"]),
    ([("data.paid", "1")], []),
    ([("data.paid[ne]", "true")], ["e0"]),
    ([("data.note", "null")], ["e0"]),
    ([("data.note[exists]", "true")], ["e0", "e7"]),
    ([("data.note[ne]", "null")], ["e7"]),
    ([("data.seats[gte]", "5")], ["e3"]),
    ([("data.ip[prefix]", "10.")], ["e5"]),
    ([("data.missing", "1")], []),
    ([("data.missing[ne]", "1")], []),
    ([("data[exists]", "true")], ALL),
    # combinations are AND
    ([("type", "invoice.billed"), ("data.amount[gte]", "150")], ["e1", "e6"]),
    ([("actor.type", "user"), ("outcome", "failure")], ["e5"]),
    ([("data.tags", "vip"), ("data.location.city", "Boston")], ["e1"]),
    # time
    ([("since", "2026-01-03T00:00:00Z")], ["e2", "e3", "e4", "e5", "e6", "e7"]),
    ([("until", "2026-01-03T00:00:00Z")], ["e0", "e1"]),
    ([("since", "2026-01-02T00:00:00Z"), ("until", "2026-01-04T00:00:00Z")], ["e1", "e2"]),
    ([("since", JAN7)], ["e6", "e7"]),
    ([("since", "2026-01-02T00:00:00.000001Z"), ("until", "2026-01-02T00:00:00Z")], []),
    ([("time[gte]", "2026-01-07T00:00:00Z")], ["e6", "e7"]),
    ([("time", "2026-01-05T01:00:00+01:00")], ["e4"]),
    ([("time[lt]", "2026-01-02T00:00:00.000001Z")], ["e0", "e1"]),
    ([("time[in]", f"{JAN7},2026-01-01T00:00:00Z")], ["e0", "e6"]),
    # full text
    ([("q", "invoice")], ["e0", "e1", "e2", "e6"]),
    ([("q", "paid")], ["e2"]),
    ([("q", "SEATTLE")], ["e0", "e3", "e6"]),
    ([("q", "zurich")], ["e2"]),
    ([("q", "creme brulee")], ["e7"]),
    ([("q", "cre*")], ["e3", "e4", "e7"]),
    ([("q", "caf*")], ["e7"]),
    ([("q", "acme")], ["e3"]),
    ([("q", "treasure")], ["e7"]),
    ([("q", "1000")], ["e1"]),
    ([("q", "150")], ["e2", "e5", "e6"]),
    ([("q", "alice billing")], ["e0"]),
    ([("q", "zoe")], ["e7"]),
    ([("q", "customer")], ["e4"]),
    ([("q", "nothingmatches")], []),
    ([("q", "inv*"), ("type[ne]", "invoice.billed")], ["e2"]),
]


async def add_catalog(store: Store) -> None:
    def validated(raws: list[dict[str, Any]]) -> tuple[NewEvent, ...]:
        return tuple(validate_event(raw, PRINCIPAL, Limits(), NOW) for raw in raws)

    outcomes = await store.append(
        [
            AppendRequest("acme", validated(CATALOG[:3])),
            AppendRequest("other", validated(LOOKALIKES[:2])),
        ]
    )
    assert all(not isinstance(o, IdConflict) for o in outcomes)
    await append_ok(store, "acme", *validated(CATALOG[3:4]))
    outcomes = await store.append(
        [
            AppendRequest("acme", validated(CATALOG[4:])),
            AppendRequest("other", validated(LOOKALIKES[2:])),
        ]
    )
    assert all(not isinstance(o, IdConflict) for o in outcomes)


@pytest.mark.parametrize(
    ("pairs", "expected"),
    OPERATOR_CASES,
    ids=["&".join(f"{k}={v}" for k, v in pairs) or "everything" for pairs, _ in OPERATOR_CASES],
)
async def test_query_operators(
    store: Store, pairs: list[tuple[str, str]], expected: list[str]
) -> None:
    await add_catalog(store)
    ascending = await store.query("acme", query_of(*pairs, ("order", "asc")))
    assert ids(ascending.bodies) == expected
    assert not ascending.more
    descending = await store.query("acme", query_of(*pairs))
    assert ids(descending.bodies) == expected[::-1]
    assert not descending.more
    for body in ascending.bodies:
        assert await store.get_event("acme", parsed(body)["id"]) == body


async def test_order_and_limit(store: Store) -> None:
    await add_catalog(store)
    page = await store.query("acme", query_of(("limit", "3")))
    assert ids(page.bodies) == ["e7", "e6", "e5"]
    assert (page.last_seq, page.more) == (5, True)
    page = await store.query("acme", query_of(("limit", "3"), ("order", "asc")))
    assert ids(page.bodies) == ["e0", "e1", "e2"]
    assert (page.last_seq, page.more) == (2, True)
    page = await store.query("acme", query_of(("limit", "8"), ("order", "asc")))
    assert len(page.bodies) == 8
    assert (page.last_seq, page.more) == (7, False)
    page = await store.query("acme", query_of(("limit", "1"), ("type", "invoice.billed")))
    assert ids(page.bodies) == ["e6"]
    assert page.more
    page = await store.query("acme", query_of(("limit", "1"), ("type", "nothing")))
    assert (page.bodies, page.last_seq, page.more) == ((), None, False)


async def test_empty_tenant_query(store: Store) -> None:
    assert await store.query("nobody", query_of()) == Page((), None, False)


@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize("limit", [1, 2, 3, 7, 1000])
@pytest.mark.parametrize(
    "pairs",
    [
        [],
        [("type", "invoice.billed")],
        [("data.amount[lte]", "150")],
        [("q", "seattle")],
        [("data.nothing", "x")],
    ],
    ids=["all", "type", "amount", "q", "none"],
)
async def test_pagination_walks_every_match_once(
    store: Store, order: str, limit: int, pairs: list[tuple[str, str]]
) -> None:
    await add_catalog(store)
    expected = ids((await store.query("acme", query_of(*pairs, ("order", order)))).bodies)
    query = query_of(*pairs, ("order", order), ("limit", str(limit)))
    assert ids(await walk(store, "acme", query)) == expected


@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize("limit", [1, 3, 4])
async def test_pagination_while_events_arrive(store: Store, order: str, limit: int) -> None:
    def numbered(start: int, n: int) -> tuple[NewEvent, ...]:
        return tuple(
            event(id=f"n{i}", data={"n": i, "even": i % 2 == 0}) for i in range(start, start + n)
        )

    await append_ok(store, "acme", *numbered(0, 20))
    added = 20
    pages = 0

    async def arrive() -> None:
        nonlocal added, pages
        pages += 1
        if pages <= 4:  # new events, matching and not, in this and another tenant
            await append_ok(store, "acme", *numbered(added, 3))
            await append_ok(store, "other", event(id=f"o{added}", data={"even": True}))
            added += 3

    query = query_of(("data.even", "true"), ("order", order), ("limit", str(limit)))
    got = [parsed(b)["data"]["n"] for b in await walk(store, "acme", query, arrive)]
    if order == "asc":
        # Newer events join the end of an ascending walk.
        assert got == [n for n in range(added) if n % 2 == 0]
    else:
        # A descending walk covers what existed when it started.
        assert got == [n for n in range(19, -1, -1) if n % 2 == 0]
    assert len(got) == len(set(got))


async def test_cursor_past_the_end_gives_an_empty_page(store: Store) -> None:
    await append_ok(store, "acme", *events(3))
    query = query_of(("order", "asc"))
    page = await store.query("acme", cursor.apply(query, cursor.encode(query, 2)))
    assert page == Page((), None, False)
    query = query_of(("order", "desc"))
    page = await store.query("acme", cursor.apply(query, cursor.encode(query, 0)))
    assert page == Page((), None, False)
    page = await store.query("acme", cursor.apply(query, cursor.encode(query, 10**6)))
    assert seqs(page.bodies) == [2, 1, 0]


# -- API keys -------------------------------------------------------------------------------


def api_key(key_id: str, tenant: str, created_us: int, name: str = "k") -> ApiKey:
    return ApiKey(
        key_id=key_id,
        tenant=tenant,
        name=name,
        scopes=("events:write", "events:read"),
        secret_hash=bytes(range(32)),
        created_us=created_us,
    )


async def test_api_keys(store: Store) -> None:
    assert await store.get_api_key("k1") is None
    assert await store.list_api_keys() == []
    k1 = api_key("k1", "acme", NOW, "ingest")
    k2 = api_key("k2", "globex", NOW + 1, "reader")
    k3 = api_key("k3", "acme", NOW + 2, "ünïcode name")
    for key in (k2, k1, k3):
        await store.create_api_key(key)
    assert await store.get_api_key("k1") == k1
    assert await store.get_api_key("k3") == k3
    assert await store.get_api_key("nope") is None
    assert await store.list_api_keys() == [k1, k2, k3]
    assert await store.list_api_keys("acme") == [k1, k3]
    assert await store.list_api_keys("globex") == [k2]
    assert await store.list_api_keys("nobody") == []


async def test_revoking_api_keys(store: Store) -> None:
    key = api_key("k1", "acme", NOW)
    await store.create_api_key(key)
    assert await store.revoke_api_key("k1", NOW + 10)
    revoked = await store.get_api_key("k1")
    assert revoked is not None
    assert revoked.revoked_us == NOW + 10
    assert not revoked.active
    assert not await store.revoke_api_key("k1", NOW + 20)  # revoked already
    again = await store.get_api_key("k1")
    assert again is not None
    assert again.revoked_us == NOW + 10  # the first revocation stands
    assert await store.list_api_keys("acme") == [again]
    assert not await store.revoke_api_key("nope", NOW)
    assert await store.get_api_key("nope") is None


# -- users and secrets ------------------------------------------------------------------------


HASH = "$scrypt$ln=4,r=8,p=1$c2FsdA$ZGlnZXN0"


def user(username: str, tenant: str = "acme", hashed: str = HASH) -> User:
    return User(
        username=username,
        tenant=tenant,
        scopes=("events:read", "log:read"),
        password_hash=hashed,
        created_us=NOW,
    )


async def test_users(store: Store) -> None:
    assert await store.get_user("alice") is None
    alice, bob = user("alice"), user("bob@example.com", "globex")
    assert await store.create_user(alice)
    assert await store.create_user(bob)
    assert await store.get_user("alice") == alice
    assert await store.get_user("bob@example.com") == bob
    # Usernames are exact: no case folding, no prefix matching.
    assert await store.get_user("Alice") is None
    assert await store.get_user("ali") is None
    assert await store.create_user(user("Alice"))
    assert await store.get_user("alice") == alice


async def test_a_username_is_taken_in_every_tenant(store: Store) -> None:
    first = user("alice", "acme", "$scrypt$first")
    assert await store.create_user(first)
    assert not await store.create_user(user("alice", "globex", "$scrypt$second"))
    assert not await store.create_user(user("alice", "acme", "$scrypt$third"))
    assert await store.get_user("alice") == first


async def test_a_secret_is_made_once_and_then_kept(store: Store) -> None:
    assert await store.load_or_create_secret("signing", b"\x00first\xff") == b"\x00first\xff"
    assert await store.load_or_create_secret("signing", b"second") == b"\x00first\xff"
    assert await store.load_or_create_secret("other", b"third") == b"third"
    assert await store.load_or_create_secret("signing", b"fourth") == b"\x00first\xff"


async def test_concurrent_offers_of_a_secret_agree_on_one(store: Store) -> None:
    offers = [bytes([i]) * 32 for i in range(8)]
    results: list[bytes] = [b""] * len(offers)

    async def offer(i: int) -> None:
        results[i] = await store.load_or_create_secret("race", offers[i])

    async with anyio.create_task_group() as tg:
        for i in range(len(offers)):
            tg.start_soon(offer, i)
    assert len(set(results)) == 1
    assert results[0] in offers


async def test_ping(store: Store) -> None:
    await store.ping()


# -- the Merkle tree: leaves, nodes, checkpoints --------------------------------------------


def h(n: int) -> bytes:
    """A distinct 32-byte hash."""
    return n.to_bytes(32, "big")


def checkpoint_of(size: int, root: int = 0, when: int = 1) -> StoredCheckpoint:
    return StoredCheckpoint(size, h(root or size), when, f"note of size {size}\n")


async def test_log_sizes_list_tenants_with_events(store: Store) -> None:
    assert await store.log_sizes() == {}
    await append_ok(store, "acme", *events(3))
    await append_ok(store, "beta", *events(1))
    assert await store.log_sizes() == {"acme": 3, "beta": 1}


async def test_read_leaves_gives_stored_bytes_in_seq_order(store: Store) -> None:
    stored = await append_ok(store, "acme", *events(5))
    await append_ok(store, "beta", *events(2))
    assert await store.read_leaves("acme", 0, 100) == [(a.seq, a.body) for a in stored]
    assert await store.read_leaves("acme", 1, 2) == [(a.seq, a.body) for a in stored[1:3]]
    assert await store.read_leaves("acme", 4, 100) == [(4, stored[4].body)]
    assert await store.read_leaves("acme", 5, 100) == []
    assert await store.read_leaves("acme", 0, 0) == []
    assert await store.read_leaves("nobody", 0, 10) == []
    # The bytes are those GET answers, the leaf of the event.
    assert await store.get_event("acme", stored[2].id) == stored[2].body


async def test_read_leaves_never_reach_another_tenant(store: Store) -> None:
    await append_ok(store, "acme", *events(2))
    await append_ok(store, "beta", *events(3, prefix="b"))
    for start in (0, 1, 2, 3, 2**40 - 1, 2**40, 2**41):
        for seq, body in await store.read_leaves("acme", start, 10):
            assert parsed(body)["tenant"] == "acme"
            assert parsed(body)["seq"] == seq


async def test_nodes_are_stored_once_and_never_changed(store: Store) -> None:
    await append_ok(store, "acme", *events(1))
    nodes = [(0, 0, h(1)), (0, 1, h(2)), (1, 0, h(3))]
    await store.put_nodes("acme", nodes)
    await store.put_nodes("acme", nodes)  # idempotent
    await store.put_nodes("acme", [(0, 0, h(9)), (2, 0, h(4))])
    found = await store.get_nodes("acme", [(0, 0), (0, 1), (1, 0), (2, 0), (0, 2), (5, 5)])
    assert found == {(0, 0): h(1), (0, 1): h(2), (1, 0): h(3), (2, 0): h(4)}
    assert await store.get_nodes("acme", []) == {}
    await store.put_nodes("acme", [])


async def test_nodes_are_per_tenant(store: Store) -> None:
    await append_ok(store, "acme", *events(1))
    await append_ok(store, "beta", *events(1))
    await store.put_nodes("acme", [(0, 0, h(1))])
    await store.put_nodes("beta", [(0, 0, h(2))])
    assert await store.get_nodes("acme", [(0, 0)]) == {(0, 0): h(1)}
    assert await store.get_nodes("beta", [(0, 0)]) == {(0, 0): h(2)}
    assert await store.get_nodes("nobody", [(0, 0)]) == {}


async def test_many_nodes_in_one_call(store: Store) -> None:
    await append_ok(store, "acme", *events(1))
    nodes = [(level, i, h(level * 10_000 + i)) for level in (0, 1) for i in range(1500)]
    await store.put_nodes("acme", nodes)
    keys = [(level, i) for level, i, _ in nodes]
    assert await store.get_nodes("acme", keys) == {(level, i): x for level, i, x in nodes}


async def test_checkpoints_only_grow(store: Store) -> None:
    await append_ok(store, "acme", *events(1))
    assert await store.latest_checkpoint("acme") is None
    assert await store.add_checkpoint("acme", checkpoint_of(3))
    assert not await store.add_checkpoint("acme", checkpoint_of(3, root=7))  # same size
    assert not await store.add_checkpoint("acme", checkpoint_of(2))  # smaller
    assert await store.add_checkpoint("acme", checkpoint_of(5))
    assert await store.latest_checkpoint("acme") == checkpoint_of(5)
    assert await store.list_checkpoints("acme") == [checkpoint_of(3), checkpoint_of(5)]


async def test_checkpoint_lookups(store: Store) -> None:
    await append_ok(store, "acme", *events(1))
    for size in (0, 4, 8, 9):
        assert await store.add_checkpoint("acme", checkpoint_of(size, when=size + 1))
    assert await store.checkpoint_at_least("acme", 0) == checkpoint_of(0, when=1)
    assert await store.checkpoint_at_least("acme", 4) == checkpoint_of(4, when=5)
    assert await store.checkpoint_at_least("acme", 5) == checkpoint_of(8, when=9)
    assert await store.checkpoint_at_least("acme", 10) is None
    listed = await store.list_checkpoints("acme")
    assert [c.size for c in listed] == [0, 4, 8, 9]
    assert [c.size for c in await store.list_checkpoints("acme", after_size=4)] == [8, 9]
    assert [c.size for c in await store.list_checkpoints("acme", after_size=0, limit=2)] == [4, 8]
    assert await store.list_checkpoints("acme", after_size=9) == []
    stored = listed[2]
    assert (stored.size, stored.root_hash, stored.timestamp_us) == (8, h(8), 9)
    assert stored.note == "note of size 8\n"


async def test_lookups_beyond_any_log_find_nothing(store: Store) -> None:
    """Sizes and positions past 64 bits (a client's numbers reach these lookups) and ids no
    event can have are answers of "nothing", never storage errors."""
    await append_ok(store, "acme", *events(2))
    assert await store.add_checkpoint("acme", checkpoint_of(2, when=1))
    huge = 2**70
    assert await store.checkpoint_at_least("acme", huge) is None
    assert await store.list_checkpoints("acme", after_size=huge) == []
    assert [c.size for c in await store.list_checkpoints("acme", limit=huge)] == [2]
    assert await store.read_leaves("acme", huge, 10) == []
    assert await store.get_event("acme", "e\x000") is None
    assert await store.get_event("nobody", "e0") is None


async def test_checkpoints_are_per_tenant(store: Store) -> None:
    await append_ok(store, "acme", *events(1))
    await append_ok(store, "beta", *events(1))
    assert await store.add_checkpoint("acme", checkpoint_of(5))
    assert await store.add_checkpoint("beta", checkpoint_of(2))
    assert (await store.latest_checkpoint("beta")) == checkpoint_of(2)
    assert await store.latest_checkpoint("nobody") is None
    assert await store.checkpoint_at_least("nobody", 0) is None
    assert await store.list_checkpoints("nobody") == []


async def test_concurrent_checkpoints_never_go_backwards(store: Store) -> None:
    await append_ok(store, "acme", *events(1))
    rng = random.Random(7)
    sizes = [rng.randrange(1, 1000) for _ in range(40)]
    stored: list[int] = []

    async def offer(size: int) -> None:
        if await store.add_checkpoint("acme", checkpoint_of(size)):
            stored.append(size)

    async with anyio.create_task_group() as tg:
        for size in sizes:
            tg.start_soon(offer, size)
    listed = [c.size for c in await store.list_checkpoints("acme")]
    assert listed == sorted(set(listed))
    assert sorted(stored) == listed
    latest = await store.latest_checkpoint("acme")
    assert latest is not None
    assert latest.size == max(sizes)


# -- random queries against a brute-force oracle --------------------------------------------

TYPES = [
    "account.created",
    "account.deleted",
    "invoice.billed",
    "invoice.paid",
    "login",
    "Login failed",
    "café.ouvert",
    "user.password_reset",
]
SOURCES = ["billing", "crm", "auth", "pos", "Système"]
ACTORS = ["alice", "bob", "mallory", "svc-1", "zoë", "Alice"]
PARTY_TYPES = ["user", "service", "bot", "invoice", "account"]
SUBJECTS = ["inv-1", "inv-2", "acct-9", "acct-10", "doc"]
OUTCOMES = ["success", "failure", "unknown"]
KEYS = ["amount", "count", "ratio", "city", "name", "tags", "items", "flag", "note", "meta", "x-y"]
WORDS = [
    "alpha",
    "Beta",
    "gamma",
    "Δέλτα",
    "Zürich",
    "zurich",
    "東京",
    "café",
    "CAFE",
    "naïve",
    "x-ray",
    "100",
    "1000",
    "15",
    "1.5",
    "-7",
    "true",
    "null",
    "",
    "Seattle",
    "seattle",
]
NUMBERS: list[int | float] = [0, 1, 2, 7, 15, 100, 150, 1000, -5, 2**53 + 1, -(2**63), 2**63 - 1]
FLOATS = [1.5, 100.0, -0.25, 150.5, 1e-05, 2.5e10]
QUERY_VALUES = [
    "0",
    "1",
    "2",
    "7",
    "15",
    "100",
    "150",
    "1000",
    "-5",
    "1.5",
    "100.0",
    "1e3",
    "150.5",
    "9007199254740993",
    "9007199254740992",
    "-9223372036854775808",
    "true",
    "false",
    "null",
    "alpha",
    "Beta",
    "Zürich",
    "zurich",
    "Z",
    "a",
    "東京",
    "café",
    "x-ray",
    "Seattle",
    "seattle",
    "",
    "alpha Beta",
]
T0 = parse_rfc3339("2026-01-01T00:00:00Z")
DAY = 86_400_000_000


def random_scalar(rng: random.Random) -> Any:
    kind = rng.randrange(9)
    if kind == 0:
        return rng.randint(-3, 12)
    if kind == 1:
        return rng.choice(NUMBERS)
    if kind == 2:
        return rng.choice(FLOATS)
    if kind == 3:
        return rng.choice(WORDS)
    if kind == 4:
        return f"{rng.choice(WORDS)} {rng.choice(WORDS)}"
    if kind == 5:
        return rng.choice([True, False])
    if kind == 6:
        return None
    if kind == 7:
        return str(rng.choice([*NUMBERS, 99, 1.5]))
    return rng.choice(QUERY_VALUES)


#: Most keys hold mostly one kind of value, as real events do; the rest is anything.
TYPED: dict[str, list[Any]] = {
    "amount": [0, 7, 15, 100, 150, 1000, -5, 1.5, 150.5, 2**53 + 1, "100", "150"],
    "count": list(range(-1, 13)),
    "ratio": [0.5, 1.5, -0.25, 100.0, 1e-05, 2.5e10],
    "city": ["Seattle", "seattle", "Zürich", "zurich", "東京", "Boston", "Saint-Étienne"],
    "name": WORDS,
    "flag": [True, False, None, "true"],
    "note": ["alpha Beta", "Crème brûlée", "naïve x-ray", "Δέλτα 100", "1000 Seattle"],
}


def random_value(rng: random.Random, key: str, depth: int) -> Any:
    typed = rng.random() < 0.75
    if typed and key == "tags":
        return [rng.choice(WORDS) for _ in range(rng.randrange(4))]
    if typed and key == "items" and depth < 4:
        return [random_object(rng, depth + 1) for _ in range(rng.randrange(4))]
    if typed and key == "meta" and depth < 4:
        return random_object(rng, depth + 1)
    if typed and key in TYPED:
        return rng.choice(TYPED[key])
    r = rng.random()
    if depth < 4 and r < 0.1:
        return random_object(rng, depth + 1)
    if depth < 4 and r < 0.2:
        return [random_value(rng, key, depth + 1) for _ in range(rng.randrange(4))]
    return random_scalar(rng)


def random_object(rng: random.Random, depth: int) -> dict[str, Any]:
    return {k: random_value(rng, k, depth) for k in rng.sample(KEYS, rng.randrange(0, 6))}


def random_party(rng: random.Random, ids: list[str]) -> Any:
    if rng.random() < 0.3:
        return rng.choice(ids)
    party = {"id": rng.choice(ids)}
    if rng.random() < 0.7:
        party["type"] = rng.choice(PARTY_TYPES)
    if rng.random() < 0.3:
        party["name"] = f"{rng.choice(WORDS) or 'x'} {rng.choice(ACTORS)}"
    return party


def random_event(rng: random.Random, n: int) -> dict[str, Any]:
    raw: dict[str, Any] = {"type": rng.choice(TYPES)}
    if rng.random() < 0.85:
        raw["id"] = f"ev-{n}"
    t = T0 + rng.randrange(30 * DAY)
    form = rng.randrange(4)
    if form == 0:
        raw["time"] = format_us(t)
    elif form == 1:
        raw["time"] = t // 1_000_000
    elif form == 2:
        raw["time"] = round(t / 1_000_000, 3)
    if rng.random() < 0.7:
        raw["actor"] = random_party(rng, ACTORS)
    if rng.random() < 0.6:
        raw["subject"] = random_party(rng, SUBJECTS)
    if rng.random() < 0.7:
        raw["source"] = rng.choice(SOURCES)
    if rng.random() < 0.6:
        raw["outcome"] = rng.choice(OUTCOMES)
    if rng.random() < 0.9:
        raw["data"] = random_object(rng, 1)
    return raw


def random_path(rng: random.Random) -> str:
    envelope = ["type", "source", "outcome", "actor", "actor.type", "actor.name", "subject"]
    envelope += ["subject.type", "subject.name", "id", "seq"]
    if rng.random() < 0.25:
        return rng.choice(envelope)
    return ".".join(["data", *rng.sample(KEYS, rng.choice([1, 1, 1, 1, 2, 2, 3]))])


def random_value_for(rng: random.Random, path: str) -> str:
    pools = {
        "type": TYPES,
        "source": SOURCES,
        "outcome": OUTCOMES,
        "actor": ACTORS,
        "actor.name": ACTORS,
        "subject": SUBJECTS,
        "subject.name": ACTORS,
        "actor.type": PARTY_TYPES,
        "subject.type": PARTY_TYPES,
        "id": ["ev-1", "ev-10", "ev-100", "ev-2"],
        "seq": ["0", "5", "50", "150", "299"],
    }
    if path in pools and rng.random() < 0.8:
        return rng.choice(pools[path])
    last = path.rsplit(".", 1)[-1]
    if last in TYPED and rng.random() < 0.7:
        return raw_form(rng.choice(TYPED[last]))
    return rng.choice(QUERY_VALUES)


def raw_form(scalar: Any) -> str:
    """The query text that finds ``scalar`` by equality."""
    if scalar is None:
        return "null"
    if isinstance(scalar, bool):
        return "true" if scalar else "false"
    if isinstance(scalar, int | float):
        return repr(scalar)
    return str(scalar)


def condition_from(rng: random.Random, event: dict[str, Any]) -> list[tuple[str, str]]:
    """A condition on a field one stored event has, so that queries often match something."""
    found = [
        (path, node)
        for path, node in leaf_paths(event)
        if path[0] not in ("tenant", "received_at") and not isinstance(node, dict | list)
    ]
    path, node = rng.choice(found)
    dotted = ".".join(path)
    value = raw_form(node)
    op = rng.choice(["eq", "eq", "eq", "ne", "gt", "gte", "lt", "lte", "in", "prefix", "exists"])
    if dotted == "time" and op in ("in", "prefix"):  # values of time paths must be times
        op = "lte"
    if op == "exists":
        return [(f"{dotted}[exists]", "true")]
    if op == "in":
        return [(f"{dotted}[in]", f"{random_value_for(rng, dotted)},{value}")]
    if op == "prefix":
        value = value[: rng.randint(0, len(value))]
    return [(dotted if op == "eq" else f"{dotted}[{op}]", value)]


def random_condition(rng: random.Random) -> list[tuple[str, str]]:
    path = random_path(rng)
    op = rng.choice(["eq", "eq", "eq", "ne", "gt", "gte", "lt", "lte", "in", "prefix", "exists"])
    if op == "exists":
        return [(f"{path}[exists]", rng.choice(["true", "false"]))]
    if op == "in":
        values = {random_value_for(rng, path) for _ in range(rng.randint(2, 4))}
        return [(f"{path}[in]", ",".join(sorted(values)))]
    value = random_value_for(rng, path)
    if op == "prefix":
        value = value[: rng.randint(0, len(value))]
    if op == "eq" and rng.random() < 0.2:  # a repeated equality: OR
        return [(path, value), (path, random_value_for(rng, path))]
    name = path if op == "eq" and rng.random() < 0.5 else f"{path}[{op}]"
    return [(name, value)]


def random_query(rng: random.Random, events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for _ in range(rng.choice([0, 1, 1, 1, 1, 2, 2, 3])):
        if rng.random() < 0.6:
            pairs += condition_from(rng, rng.choice(events))
        else:
            pairs += random_condition(rng)
    if rng.random() < 0.2:
        start = T0 + rng.randrange(30 * DAY)
        if rng.random() < 0.5:
            pairs.append(("since", format_us(start)))
        if rng.random() < 0.5:
            pairs.append(("until", str((start + rng.randrange(15 * DAY)) // 1_000_000)))
    if rng.random() < 0.1:
        pairs.append(
            (f"time[{rng.choice(['gt', 'lte'])}]", format_us(T0 + rng.randrange(30 * DAY)))
        )
    if rng.random() < 0.2:
        words = ["zurich", "cafe", "invoice", "inv*", "ca*", "alpha beta", "100", "東京", "Z*"]
        words += ["seattle", "delta", "δελ*", "naive", "billing", "bob", "login", "1*", "x"]
        pairs.append(("q", " ".join(rng.sample(words, rng.choice([1, 1, 2])))))
    pairs.append(("order", rng.choice(["asc", "desc"])))
    pairs.append(("limit", str(rng.choice([1, 2, 5, 17, 50, 1000]))))
    return pairs


async def test_random_queries_agree_with_brute_force(store: Store) -> None:
    rng = random.Random(20261127)
    stored: dict[str, list[bytes]] = {"t1": [], "t2": []}
    n = 0
    while len(stored["t1"]) < 300:
        group = []
        for _ in range(rng.randint(1, 3)):
            tenant = "t1" if rng.random() < 0.8 else "t2"
            raws = [random_event(rng, n + i) for i in range(rng.randint(1, 20))]
            n += len(raws)
            new = tuple(validate_event(raw, PRINCIPAL, Limits(), NOW) for raw in raws)
            group.append(AppendRequest(tenant, new))
        for request, outcome in zip(group, await store.append(group), strict=True):
            for appended in ok(outcome):
                assert appended.created
                assert appended.seq == len(stored[request.tenant])
                stored[request.tenant].append(appended.body)

    rows = [(body, parsed(body)) for body in stored["t1"]]
    matched_counts = []
    for number in range(120):
        pairs = random_query(rng, [e for _, e in rows])
        query = query_of(*pairs)
        expected = [body for body, e in rows if event_matches(e, parse_rfc3339(e["time"]), query)]
        if query.order == "desc":
            expected.reverse()
        first = await store.query("t1", query)
        assert first.more == (len(expected) > query.limit), (number, pairs)
        got = await walk(store, "t1", query)
        assert ids(got) == ids(expected), (number, pairs)
        assert got == expected, (number, pairs)
        matched_counts.append(len(expected))
    # The generator must make queries that discriminate: some match nothing, many match some.
    assert sum(1 for c in matched_counts if c == 0) >= 5
    assert sum(1 for c in matched_counts if 0 < c < len(rows)) >= 50


# -- numeric ranges (the numbers index) ----------------------------------------------------

RANGE_VALUES = [-(2**63), -1e300, -7, -0.5, 0, 1, 2.5, 7, 10, 99, 100, 2**53, 2**53 + 1, 1e19]
RANGE_QUERY_VALUES = ["-1e400", "-7", "-0.5", "0", "1", "2.5", "7", "7.0", "10", "99.5", "1e2"]
RANGE_QUERY_VALUES += ["9007199254740992", "9007199254740993", "1e19", "1e400", "-0"]


def ranged_event(rng: random.Random, n: int, strings: bool) -> dict[str, Any]:
    """An event whose data holds numbers at a few paths: ``n`` one number (or none), ``arr``
    an array of them, ``items.x`` numbers in an array of objects, ``mixed`` a number or,
    when ``strings``, sometimes a string."""
    data: dict[str, Any] = {}
    if rng.random() < 0.9:
        data["n"] = rng.choice(RANGE_VALUES)
    if rng.random() < 0.5:
        data["arr"] = rng.sample(RANGE_VALUES, rng.randint(0, 3))
    if rng.random() < 0.3:
        data["items"] = [{"x": rng.choice(RANGE_VALUES)} for _ in range(rng.randint(1, 2))]
    if rng.random() < 0.7:
        data["mixed"] = rng.choice(["10", "2", "abc", 5]) if strings else rng.choice(RANGE_VALUES)
    return {
        "id": f"r{n}",
        "type": rng.choice(["a", "b"]),
        "time": format_us(T0 + n * 1_000_000),
        "data": data,
    }


def ranged_query(rng: random.Random) -> list[tuple[str, str]]:
    path = rng.choice(["data.n", "data.arr", "data.items.x", "data.mixed"])
    pairs = [
        (f"{path}[{rng.choice(['gt', 'gte', 'lt', 'lte'])}]", rng.choice(RANGE_QUERY_VALUES))
        for _ in range(rng.choice([1, 1, 2, 3]))
    ]
    if rng.random() < 0.2:
        pairs.append(("data.n[gte]", rng.choice(RANGE_QUERY_VALUES)))
    if rng.random() < 0.2:
        pairs.append(("type", rng.choice(["a", "b"])))
    if rng.random() < 0.2:
        pairs.append(("since", format_us(T0 + rng.randrange(200) * 1_000_000)))
    pairs.append(("order", rng.choice(["asc", "desc"])))
    pairs.append(("limit", str(rng.choice([1, 3, 10, 1000]))))
    return pairs


async def test_numeric_ranges_agree_with_brute_force(store: Store) -> None:
    """Ranges where the numbers index may answer them: single numbers and arrays (several
    conditions may hold through different elements), integers past 2^53 and 2^63, and a
    path that holds only numbers until strings arrive (which compare as strings)."""
    rng = random.Random(27112026)
    rows: list[tuple[bytes, dict[str, Any]]] = []
    for phase, strings in enumerate((False, True)):
        raws = [ranged_event(rng, len(rows) + i, strings) for i in range(120 if phase else 200)]
        for start in range(0, len(raws), 40):
            new = tuple(
                validate_event(raw, PRINCIPAL, Limits(), NOW) for raw in raws[start : start + 40]
            )
            for appended in ok((await store.append([AppendRequest("nums", new)]))[0]):
                rows.append((appended.body, parsed(appended.body)))
        matched = []
        for number in range(80):
            pairs = ranged_query(rng)
            query = query_of(*pairs)
            expected = [b for b, e in rows if event_matches(e, parse_rfc3339(e["time"]), query)]
            if query.order == "desc":
                expected.reverse()
            got = await walk(store, "nums", query)
            assert ids(got) == ids(expected), (phase, number, pairs)
            matched.append(len(expected))
        assert sum(1 for c in matched if 0 < c < len(rows)) >= 40

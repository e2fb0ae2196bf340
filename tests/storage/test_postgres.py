"""What only the PostgreSQL store has: its fast and locked commit paths meeting other
processes, migrations run at once, monthly partitions, and values PostgreSQL text cannot hold.

The behaviour every backend shares is in test_contract.py; these tests need a server
(``AUDITLOG_TEST_POSTGRES_URL``) and skip without one.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
import psycopg
import pytest

import pgtest
from auditlog.config import Settings
from auditlog.errors import StorageError
from auditlog.model import times
from auditlog.model.event import Limits, NewEvent, Principal, validate_event
from auditlog.model.query import Query, parse_query
from auditlog.storage.base import Appended, AppendRequest, IdConflict
from auditlog.storage.postgres import database
from auditlog.storage.postgres.store import PostgresStore
from storage.pages import check_first_pages

pytestmark = pytest.mark.anyio

PRINCIPAL = Principal("key:test", "test")
NOW = times.now_us()


def event(raw: dict[str, Any]) -> NewEvent:
    return validate_event(raw, PRINCIPAL, Limits(), NOW)


def request(tenant: str, *raws: dict[str, Any]) -> AppendRequest:
    return AppendRequest(tenant, tuple(event(r) for r in raws))


@pytest.fixture
def url() -> str:
    return pgtest.fresh_url()


@pytest.fixture
async def store(url: str) -> AsyncIterator[PostgresStore]:
    backend = PostgresStore(url)
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()


async def all_bodies(store: PostgresStore, tenant: str) -> list[bytes]:
    return [body for _, body in await store.read_leaves(tenant, 0, 100_000)]


lookups: list[int] = []


def blind_first_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the store's next lookup of stored ids find nothing, as if another process
    committed them just after it; the lookups made are recorded in ``lookups``."""
    real = PostgresStore._existing
    lookups.clear()

    async def blind_first(self: PostgresStore, *args: Any) -> dict[tuple[str, str], bytes]:
        lookups.append(len(lookups))
        return {} if len(lookups) == 1 else await real(self, *args)

    monkeypatch.setattr(PostgresStore, "_existing", blind_first)


async def test_an_id_committed_after_planning_is_replayed_not_stored_twice(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast path plans before it locks; an id another process commits in between is
    caught under the lock and the group is planned again, so it becomes a replay."""
    [first] = await store.append([request("t", {"id": "e-1", "type": "a"})])
    assert not isinstance(first, IdConflict)
    blind_first_lookup(monkeypatch)
    [again, other] = await store.append(
        [request("t", {"id": "e-1", "type": "a"}), request("t", {"id": "e-2", "type": "b"})]
    )
    assert lookups == [0, 1]
    assert again == (Appended("e-1", 0, first[0].body, False),)
    assert not isinstance(other, IdConflict)
    assert other[0].seq == 1
    assert other[0].created
    assert len(await all_bodies(store, "t")) == 2
    assert (await store.log_sizes()) == {"t": 2}


async def test_an_id_committed_after_planning_with_other_content_conflicts(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.append([request("t", {"id": "e-1", "type": "a"})])
    blind_first_lookup(monkeypatch)
    [outcome] = await store.append([request("t", {"id": "e-1", "type": "changed"})])
    assert outcome == IdConflict(0, "e-1")
    assert (await store.log_sizes()) == {"t": 1}


async def test_the_append_function_refuses_an_id_already_stored(
    store: PostgresStore, url: str
) -> None:
    await store.append([request("t", {"id": "e-1", "type": "a"})])
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute("SELECT tenant_id FROM tenants WHERE name = 't'")
        row = await cur.fetchone()
        assert row is not None
        with pytest.raises(psycopg.Error) as caught:
            await conn.execute(
                "SELECT auditlog_append(%s, 0, '[]'::jsonb, %s::jsonb)",
                ([row[0]], f'[[{row[0]}, "e-1"]]'),
            )
        assert caught.value.sqlstate == "AL409"
        # The version with one array per column, and its call that also flushes: the same
        # check, and nothing of the call is committed.
        one = ([0], [0], ["e-1"], ["a"], [0], ["x"], [None], ["s"], [None], [b"{"], [b"}"])
        with pytest.raises(psycopg.Error) as caught:
            await conn.execute(
                "CALL auditlog_append_durably(%s::int4[], %s::int4[], 0, %s::int4[],"
                " %s::int4[], %s::text[], %s::text[], %s::int8[], %s::text[], %s::text[],"
                " %s::text[], %s::text[], %s::bytea[], %s::bytea[], %s::int4[], %s::text[],"
                " NULL)",
                ([row[0]], [1], *one, [row[0]], ["e-1"]),
            )
        assert caught.value.sqlstate == "AL409"
        cur = await conn.execute("SELECT next_seq FROM tenants WHERE name = 't'")
        assert await cur.fetchone() == (1,)


async def test_a_wait_for_a_connection_in_vain_says_what_held_them(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Every pooled connection busy for longer than postgres_connect_timeout: the request
    refused is logged with what held the connections and for how long, and so is the holder
    once it gives its connection back."""
    backend = PostgresStore(url, Settings(postgres_pool_size=1, postgres_connect_timeout=1))
    await backend.open()
    holding = asyncio.Event()

    async def hold() -> None:
        async with backend._connection("a slow step") as conn:
            holding.set()
            await conn.execute("SELECT pg_sleep(1.5)")

    try:
        with caplog.at_level(logging.WARNING, "auditlog.storage.postgres"):
            holder = asyncio.create_task(hold())
            await holding.wait()
            with pytest.raises(StorageError, match="commit: no database connection available"):
                await backend.append([request("t", {"type": "a"})])
            await holder
    finally:
        await backend.close()
    refused, held = (r.getMessage() for r in caplog.records)
    assert refused.startswith("commit: no connection of pool auditlog came free within 1 s")
    assert "1 in use: a slow step for 1." in refused
    assert held.startswith("a slow step held a database connection for 1.")


async def test_two_processes_writing_one_tenant_keep_seq_gap_free(url: str) -> None:
    """Two stores (two pools, as two service processes) append at once to one tenant, some
    groups repeating each other's ids: every id is stored once and seqs have no gap."""
    stores = [PostgresStore(url), PostgresStore(url)]
    for s in stores:
        await s.open()
    try:

        async def writer(s: PostgresStore, worker: int) -> list[Any]:
            out = []
            for i in range(40):
                shared = {"id": f"shared-{i}", "type": "shared", "data": {"i": i}}
                own = {"id": f"own-{worker}-{i}", "type": "own"}
                out += await s.append([request("t", shared, own), request("u", own)])
            return out

        results = await asyncio.gather(*(writer(s, n) for n, s in enumerate(stores)))
        for outcomes in results:
            assert not any(isinstance(o, IdConflict) for o in outcomes)
        for tenant, expected in (("t", 40 + 80), ("u", 80)):
            leaves = await stores[0].read_leaves(tenant, 0, 10_000)
            assert [seq for seq, _ in leaves] == list(range(expected))
        # Both writers were told the same seq for each shared id.
        seqs: dict[str, set[int]] = {}
        for outcomes in results:
            for outcome in outcomes:
                assert not isinstance(outcome, IdConflict)
                for appended in outcome:
                    if appended.id.startswith("shared-"):
                        seqs.setdefault(appended.id, set()).add(appended.seq)
        assert all(len(s) == 1 for s in seqs.values())
    finally:
        for s in stores:
            await s.close()


async def test_migrations_started_at_once_apply_once() -> None:
    url = pgtest.private_url()

    async def migrate() -> list[int]:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            return await database.migrate(conn)

    applied = await asyncio.gather(*(migrate() for _ in range(4)))
    numbers = [n for n, _, _ in database.migrations()]
    assert sorted(n for one in applied for n in one) == numbers
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute("SELECT version FROM schema_migrations ORDER BY version")
        assert [r[0] for r in await cur.fetchall()] == numbers


def test_months_run_across_a_year_end() -> None:
    december = int(dt.datetime(2026, 12, 31, 23, 59, tzinfo=dt.UTC).timestamp() * 1e6)
    names = [name for name, _, _ in database.months_from(december, 3)]
    assert names == ["events_2026_12", "events_2027_01", "events_2027_02"]
    (_, start, end) = database.months_from(december, 1)[0]
    assert start <= december < end
    assert end == database.month_start(2027, 1)


async def test_partitions_are_made_ahead_and_hold_their_month(
    store: PostgresStore, url: str
) -> None:
    await store.append([request("t", {"type": "a"})])
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        later = times.now_us() + 200 * 86_400_000_000
        made = await database.ensure_partitions(conn, later, 1)
        assert len(made) == 2
        assert await database.ensure_partitions(conn, later, 1) == []
        cur = await conn.execute("SELECT tableoid::regclass::text FROM events")
        [(partition,)] = await cur.fetchall()
        this_month = database.months_from(times.now_us(), 1)[0][0]
        assert partition.rsplit(".", 1)[-1] == this_month
        cur = await conn.execute("SELECT count(*) FROM events_default")
        assert await cur.fetchone() == (0,)


def query(*pairs: tuple[str, str]) -> Query:
    parsed, _ = parse_query(pairs)
    return parsed


async def test_nul_characters_are_kept_and_found(store: PostgresStore) -> None:
    """PostgreSQL text cannot hold NUL: the stored bytes keep it, and a query for it is
    answered by checking candidates outside SQL."""
    raw = {
        "type": "a",
        "data": {"note": "x\x00y", "who": {"k\x00ey": "al\x00ice"}},
    }
    [outcome] = await store.append([request("t", raw)])
    assert not isinstance(outcome, IdConflict)
    body = outcome[0].body
    assert b"al\\u0000ice" in body
    assert store.index_pending() == 1
    for params in (
        (("data.note", "x\x00y"),),
        (("data.who[exists]", "true"),),
        (("q", "ice"),),
    ):
        page = await store.query("t", query(*params))
        assert page.bodies == (body,), params
    replaced = await store.query("t", query(("data.note", "x\ufffdy")))
    assert replaced.bodies == ()


async def test_arrays_nested_in_arrays_are_found(store: PostgresStore) -> None:
    """JSON path steps through one level of array; deeper nesting is flagged and checked."""
    [nested] = await store.append([request("t", {"type": "a", "data": {"a": [[{"b": "v"}]]}})])
    [flat] = await store.append([request("t", {"type": "a", "data": {"a": [{"b": "v"}]}})])
    await store.append([request("t", {"type": "a", "data": {"a": [{"b": "w"}]}})])
    assert not isinstance(nested, IdConflict)
    assert not isinstance(flat, IdConflict)
    for indexed in (False, True):
        if indexed:
            assert store.index_pending() == 3
        page = await store.query("t", query(("data.a.b", "v"), ("order", "asc")))
        assert page.bodies == (nested[0].body, flat[0].body)
        exists = await store.query("t", query(("data.a.b[exists]", "true"), ("order", "asc")))
        assert len(exists.bodies) == 3


async def test_a_query_filtered_outside_sql_still_fills_its_page(store: PostgresStore) -> None:
    """Conditions SQL cannot answer are checked per candidate, in growing chunks, until the
    page is full: one match among many candidates is found, with the cursor right."""
    raws = [{"type": "a", "data": {"n": i}} for i in range(300)]
    await store.append([request("t", *raws)])
    page = await store.query("t", query(("data.n[gt]", "297"), ("limit", "1")))
    assert len(page.bodies) == 1
    assert page.more
    assert page.last_seq == 299
    rest = await store.query(
        "t", Query(conditions=page_conditions(), order="desc", limit=5, after_seq=299)
    )
    assert rest.last_seq == 298
    assert not rest.more


def page_conditions() -> Any:
    return query(("data.n[gt]", "297")).conditions


async def test_queries_join_the_indexed_part_and_the_tail(store: PostgresStore) -> None:
    """Half the log indexed, half not: pages in both orders, walked with the cursor, hold
    exactly the matches, the tail's checked one by one and the rest found by the indexes."""
    first = [{"type": "a", "data": {"n": i, "k": "x" if i % 3 == 0 else "y"}} for i in range(150)]
    await store.append([request("t", *first)])
    assert store.index_pending() == 150
    second = [
        {"type": "a", "data": {"n": i, "k": "x" if i % 3 == 0 else "y"}} for i in range(150, 300)
    ]
    await store.append([request("t", *second)])
    assert (await store.stats())["search_index_lag_events"] == 150
    expected = [i for i in range(300) if i % 3 == 0]
    for order in ("asc", "desc"):
        seen: list[int] = []
        after: int | None = None
        while True:
            q = query(("data.k", "x"), ("q", "a"), ("order", order), ("limit", "7"))
            page = await store.query(
                "t", Query(q.conditions, text=q.text, order=q.order, limit=7, after_seq=after)
            )
            seen += [orjson.loads(b)["data"]["n"] for b in page.bodies]
            if not page.more:
                break
            after = page.last_seq
        assert seen == (expected if order == "asc" else expected[::-1])


async def test_one_indexer_at_a_time(store: PostgresStore, url: str) -> None:
    from auditlog.storage.postgres.indexer import Indexer

    await store.append([request("t", {"type": "a"}), request("u", {"type": "b"})])
    leader, standby = Indexer(url), Indexer(url)
    try:
        assert leader.index_batch() == 2
        await store.append([request("t", {"type": "a"})])
        assert standby.index_batch() == 0  # the leader holds the lock
        assert leader.catch_up() == 1
    finally:
        leader.close()
    try:
        await store.append([request("t", {"type": "a"})])
        assert standby.catch_up() == 1  # the leader's session ended: the standby leads
    finally:
        standby.close()
    assert (await store.stats())["search_index_lag_events"] == 0


async def test_one_process_integrates_at_a_time(store: PostgresStore, url: str) -> None:
    """Two processes' integrators: one integrates, the other answers its waiters from the
    checkpoints the first stores, and takes over once the first is gone."""
    from auditlog.service.integrator import Integrator
    from auditlog.service.logkey import LogKey

    other = PostgresStore(url)
    await other.open()
    try:
        leader = Integrator(store, LogKey(store, "log.example"))
        follower = Integrator(other, LogKey(other, "log.example"))
        assert await store.integrating()
        assert not await other.integrating()
        await store.append([request("t", *({"type": "a"} for _ in range(5)))])
        assert await follower.run_once() == 0  # not its turn: nothing signed
        assert await other.latest_checkpoint("t") is None
        waiting = asyncio.ensure_future(follower.wait_for("t", 5, 30))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        assert await leader.run_once() == 1
        await follower.run_once()  # reads the leader's checkpoint for its waiter
        checkpoint = await asyncio.wait_for(waiting, 5)
        assert checkpoint is not None
        assert checkpoint.size == 5
        await store.close()  # the leader's session ends, and its lock with it
        await other.append([request("t", {"type": "a"})])
        assert await other.integrating()
        assert await follower.run_once() == 1
        latest = await other.latest_checkpoint("t")
        assert latest is not None
        assert latest.size == 6
    finally:
        await other.close()


async def test_a_process_that_stops_asking_hands_the_turn_on(
    store: PostgresStore, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A holder that hangs keeps its session but stops using it: the server ends the idle
    session, another process takes the turn, and the first finds it has lost it."""
    from auditlog.storage.postgres import base as pgbase

    monkeypatch.setattr(pgbase, "_LEASE_IDLE_SECONDS", 0.3)
    other = PostgresStore(url)
    await other.open()
    try:
        assert await store.integrating()
        assert not await other.integrating()
        await asyncio.sleep(1.0)  # the holder hangs
        assert await other.integrating()
        assert not await store.integrating()
        for _ in range(3):  # the new holder keeps its turn while it uses it
            await asyncio.sleep(0.15)
            assert await other.integrating()
    finally:
        await other.close()


async def test_a_serving_store_runs_its_indexer_and_listens_for_revocations(url: str) -> None:
    serving = PostgresStore(url, serving=True)
    await serving.open()
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while not serving._listening:  # keys are cached only while revocations are heard
            assert asyncio.get_running_loop().time() < deadline, "not listening"
            await asyncio.sleep(0.05)
        await serving.append([request("t", *({"type": "a", "data": {"i": i}} for i in range(50)))])
        deadline = asyncio.get_running_loop().time() + 30
        while (await serving.stats())["search_index_lag_events"] > 0:
            assert asyncio.get_running_loop().time() < deadline, "the indexer did not catch up"
            await asyncio.sleep(0.1)
    finally:
        await serving.close()


def test_nested_paths_name_where_arrays_hold_arrays() -> None:
    from auditlog.storage.postgres.querysql import nested_prefixes
    from auditlog.storage.postgres.rows import nested_paths

    data = {
        "query": [["type", "a"], ["q", "b"]],
        "flat": [1, 2, {"deep": [[3]]}],
        "plain": {"x": [{"y": 1}]},
    }
    assert nested_paths(data) == {"query", "flat.deep"}
    assert nested_paths({"a": [[[1]]]}) == {"a"}
    assert nested_paths({"a": [1, {"b": 2}]}) == set()
    assert nested_prefixes(("data", "flat", "deep", "z")) == ["flat", "flat.deep", "flat.deep.z"]


def record_common(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Record what the store's walks hear when they ask the indexes how common a value is
    (True: common; False: few, whose candidates are read)."""
    answers: list[bool] = []
    real = PostgresStore._common

    async def counted(self: PostgresStore, *args: Any) -> list[int] | None:
        few = await real(self, *args)
        answers.append(few is None)
        return few

    monkeypatch.setattr(PostgresStore, "_common", counted)
    return answers


async def test_a_run_of_other_events_at_the_head_is_walked_past_or_left_to_the_index(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The newest events do not match: a common value is walked on past them (the indexes
    count at least 1,000 candidates), a rare one is found by the indexes; both pages exact.
    In a table this small PostgreSQL estimates few candidates, so the indexes are asked
    before each walk."""
    common = [{"type": "a", "data": {"k": "common", "n": i}} for i in range(1100)]
    rare = [{"type": "a", "data": {"k": "rare", "n": 1100}}]
    others = [{"type": "b", "data": {"k": "other", "n": 1101 + i}} for i in range(700)]
    await store.append([request("t", *common, *rare, *others)])
    assert store.index_pending() == 1801
    answers = record_common(monkeypatch)
    for value, order, expected in (
        ("common", "desc", [1099, 1098, 1097, 1096, 1095]),
        ("common", "asc", [0, 1, 2, 3, 4]),
        ("rare", "desc", [1100]),
    ):
        page = await store.query("t", query(("data.k", value), ("order", order), ("limit", "5")))
        assert [orjson.loads(b)["data"]["n"] for b in page.bodies] == expected, (value, order)
    assert answers == [True, True, False]


async def test_a_burst_of_matches_at_the_head_does_not_keep_the_walk_going(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Matches dense among the newest events and rare before them: the window after the burst
    falls short of the density seen, the indexes are asked, and they find the rest; a value
    PostgreSQL estimates to be rare is asked for before any walk, and one it estimates to be
    common is walked on instead, up to the walk's bound, never counted. Pages exact either
    way, with or without a column condition."""
    from auditlog.storage.postgres import events as pgevents

    early = [
        {"type": "a" if i % 2 else "b", "data": {"k": "x" if i % 300 == 0 else "y", "n": i}}
        for i in range(3000)
    ]
    burst = [{"type": "a", "data": {"k": "x", "n": 3000 + i}} for i in range(6)]
    await store.append([request("t", *early, *burst)])
    assert store.index_pending() == 3006
    asked = record_common(monkeypatch)
    newest_x = [3005, 3004, 3003, 3002, 3001, 3000, 2700, 2400, 2100, 1800]
    walks: list[int] = []
    real_walk = PostgresStore._walk

    async def walk(self: PostgresStore, *args: Any) -> int | None:
        walks.append(1)
        return await real_walk(self, *args)

    monkeypatch.setattr(PostgresStore, "_walk", walk)
    # Estimated neither rare nor common: the walk starts, and asks after the burst.
    with monkeypatch.context() as m:
        m.setattr(pgevents, "_LIKELY_FEW", 0)
        page = await store.query("t", query(("data.k", "x"), ("limit", "10")))
        assert [orjson.loads(b)["data"]["n"] for b in page.bodies] == newest_x
        assert asked == [False]  # asked once, and few candidates: read where they are
        page = await store.query("t", query(("data.k", "x"), ("type", "b"), ("limit", "3")))
        assert [orjson.loads(b)["data"]["n"] for b in page.bodies] == [2700, 2400, 2100]
    # In a table this small, PostgreSQL estimates few: asked at once, the same page.
    asked.clear()
    page = await store.query("t", query(("data.k", "x"), ("limit", "10")))
    assert [orjson.loads(b)["data"]["n"] for b in page.bodies] == newest_x
    assert asked == [False]
    # Estimated common: walked on without counting, past the walk's first bound (the value
    # is common), to the page.
    asked.clear()
    walks.clear()
    monkeypatch.setattr(pgevents, "_SURELY_COMMON", 0)
    monkeypatch.setattr(pgevents, "_WALK_MAX", 1500)
    page = await store.query("t", query(("data.k", "x"), ("limit", "10")))
    assert [orjson.loads(b)["data"]["n"] for b in page.bodies] == newest_x
    assert asked == []
    assert walks == [1]


async def test_walks_and_hand_overs_agree_with_brute_force(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A log long enough for several windows, with values and words from very common to very
    rare, runs of other events and bursts: every page of every query, in both orders and with
    a column condition or none, is what checking every event says, whichever way the walk
    went (with PostgreSQL's estimate heeded or not)."""
    import random

    from auditlog.storage.postgres import events as pgevents

    rng = random.Random(20261127)
    values = ["v0", "v1", "v2", "v3", "v4", "v5"]  # v0 in ~half the events, v5 in ~1 in 3,000
    weights = [5000, 2500, 1000, 300, 40, 1]
    words = ["common", "usual", "odd", "rare"]
    raws: list[dict[str, Any]] = []
    for n in range(6000):
        if 2000 <= n < 2600 or n >= 5300:  # runs of other events, the newest among them
            raws.append({"type": "noise", "data": {"n": n}})
            continue
        value = rng.choices(values, weights)[0]
        if 4000 <= n < 4040:
            value = "v4"  # a burst of a rare value
        text = " ".join(rng.choices(words, [60, 30, 9, 1], k=2))
        raws.append({"type": rng.choice(["a", "b"]), "data": {"k": value, "m": text, "n": n}})
    for start in range(0, len(raws), 500):
        await store.append([request("t", *raws[start : start + 500])])
    assert store.index_pending() == len(raws)
    bodies = await all_bodies(store, "t")
    events = [(orjson.loads(b), b) for b in bodies]

    async def check(pairs: list[tuple[str, str]]) -> None:
        await check_first_pages(store, "t", events, query(*pairs), pairs)

    # What the walks did: handed over to the indexes or not, and the answers of _common.
    handed: list[bool] = []
    asked = record_common(monkeypatch)
    real_walk = PostgresStore._walk

    async def walk(self: PostgresStore, *args: Any) -> int | None:
        reached = await real_walk(self, *args)
        handed.append(reached is not None)
        return reached

    monkeypatch.setattr(PostgresStore, "_walk", walk)
    cases: list[list[tuple[str, str]]] = []
    for _ in range(40):
        pairs = [("data.k", rng.choice(values))] if rng.random() < 0.6 else []
        if not pairs or rng.random() < 0.3:
            pairs.append(("q", rng.choice(words)))
        if rng.random() < 0.3:
            pairs.append(("type", rng.choice(["a", "b"])))
        pairs += [("order", rng.choice(["asc", "desc"])), ("limit", str(rng.choice([1, 7, 30])))]
        cases.append(pairs)
    for pairs in cases:
        await check(pairs)
    # The indexes were asked with both answers (a few candidates are read where the
    # indexes found them), and walks ended by themselves.
    assert True in asked
    assert False in asked
    assert False in handed
    monkeypatch.setattr(pgevents, "_SURELY_COMMON", 0)  # every estimate says common
    for pairs in cases[:15]:
        await check(pairs)
    # Walks past their bound hand the rest of the segment over to the indexes.
    handed.clear()
    monkeypatch.setattr(pgevents, "_WALK_MAX", 300)
    monkeypatch.setattr(pgevents, "_WALK_COMMON_MAX", 600)
    for pairs in cases[:15]:
        await check(pairs)
    assert True in handed


async def test_an_index_made_before_the_numbers_index_is_made_again(url: str) -> None:
    store = PostgresStore(url)
    await store.open()
    raws = [{"id": f"e{i}", "type": "t", "data": {"n": i, "word": f"w{i}"}} for i in range(30)]
    await store.append([request("acme", *raws)])
    assert store.index_pending() == 30
    await store.close()
    # The schema as the version before the numbers index left it.
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE event_numbers, path_flags")
        conn.execute("ALTER TABLE index_progress RENAME TO search_progress")
        conn.execute("DELETE FROM schema_migrations WHERE version = 2")

    async def found(*pairs: tuple[str, str]) -> list[str]:
        query, _ = parse_query([*pairs, ("order", "asc"), ("limit", "1000")])
        return [orjson.loads(b)["id"] for b in (await store.query("acme", query)).bodies]

    store = PostgresStore(url)
    await store.open()
    try:
        # Emptied, so that every event is indexed again with its numbers; complete meanwhile.
        assert await found(("data.n[gt]", "26")) == ["e27", "e28", "e29"]
        assert store.index_pending() == 30
        assert await found(("data.n[gt]", "26")) == ["e27", "e28", "e29"]
        assert await found(("data.n[gte]", "3"), ("data.n[lt]", "5")) == ["e3", "e4"]
        assert await found(("q", "w12")) == ["e12"]
    finally:
        await store.close()
    # A process of the older version, still running, can no longer record indexing progress.
    with (
        psycopg.connect(url, autocommit=True) as conn,
        pytest.raises(psycopg.errors.UndefinedTable),
    ):
        conn.execute("INSERT INTO search_progress (tenant_id, next_seq) VALUES (1, 1)")

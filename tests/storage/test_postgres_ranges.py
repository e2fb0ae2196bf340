"""PostgreSQL's numeric ranges through the numbers index, rare and common: every page of every
query is what checking every event says, whichever plan the store took.

The contract suite's logs are too small for a range to be common; here the store is told a
smaller bound, so that the same ranges take both plans. Needs ``AUDITLOG_TEST_POSTGRES_URL``.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

import pgtest
from auditlog.model import times
from auditlog.model.event import Limits, Principal, validate_event
from auditlog.model.query import Query, parse_query
from auditlog.storage.base import AppendRequest
from auditlog.storage.postgres import querysql
from auditlog.storage.postgres.store import PostgresStore
from storage.pages import check_first_pages

pytestmark = pytest.mark.anyio

PRINCIPAL = Principal("key:test", "test")
NOW = times.now_us()


@pytest.fixture
async def store() -> AsyncIterator[PostgresStore]:
    backend = PostgresStore(pgtest.fresh_url())
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()


def query(pairs: list[tuple[str, str]]) -> Query:
    parsed, _ = parse_query(pairs)
    return parsed


async def test_rare_and_common_ranges_agree_with_brute_force(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Numbers at two paths (one of them sometimes an array, so several numbers of an event
    may fall in one range), a run of events without numbers at the head, and a tail the
    indexer has not reached: pages in both orders, after a cursor and with a column condition
    or none, with the ranges counted rare and then common."""
    rng = random.Random(20261206)
    raws: list[dict[str, Any]] = []
    for n in range(1500):
        if n >= 1300:  # the newest events hold no numbers at these paths
            raws.append({"type": "noise", "data": {"n": "text", "results": n}})
            continue
        amount: Any = rng.randrange(0, 1000)
        if n % 7 == 0:
            amount = [amount, rng.randrange(0, 1000)]
        raws.append({"type": rng.choice(["a", "b"]), "data": {"amount": amount, "n": n}})
    for start in range(0, 1200, 300):
        events = tuple(validate_event(r, PRINCIPAL, Limits(), NOW) for r in raws[start:][:300])
        await store.append([AppendRequest("t", events)])
    assert store.index_pending() == 1200
    events = tuple(validate_event(r, PRINCIPAL, Limits(), NOW) for r in raws[1200:])
    await store.append([AppendRequest("t", events)])  # the tail: not indexed
    bodies = [body for _, body in await store.read_leaves("t", 0, 100_000)]
    parsed = [(orjson.loads(b), b) for b in bodies]

    async def check(pairs: list[tuple[str, str]]) -> None:
        await check_first_pages(store, "t", parsed, query(pairs), pairs)

    cases: list[list[tuple[str, str]]] = []
    for _ in range(30):
        low = rng.randrange(0, 1000)
        pairs = [("data.amount[gte]", str(low))]
        if rng.random() < 0.5:
            pairs.append(("data.amount[lt]", str(low + rng.choice([5, 50, 500]))))
        if rng.random() < 0.3:
            pairs.append(("type", rng.choice(["a", "b"])))
        if rng.random() < 0.2:
            pairs.append(("data.n[lt]", str(rng.randrange(0, 1500))))
        pairs += [("order", rng.choice(["asc", "desc"])), ("limit", str(rng.choice([1, 7, 40])))]
        cases.append(pairs)
    plans: list[bool] = []
    real = querysql.numbers_query

    def numbers_query(*args: Any) -> querysql.CandidateQuery | None:
        plans.append(bool(args[-1]))
        return real(*args)

    monkeypatch.setattr(querysql, "numbers_query", numbers_query)
    for pairs in cases:
        await check(pairs)
    assert plans
    assert not any(plans)  # every range counted rare
    plans.clear()
    monkeypatch.setattr(store, "number_candidates", 1)  # every range with a number: common
    for pairs in cases:
        await check(pairs)
    assert True in plans

"""The storage contract for ``Query.before_seq``, on every backend: a query sees only the
events below the bound, in either order, through every plan (index, tail, numbers, time), and
its pages continue by cursor under the same bound. Exports and live streams rely on it to fix
the end of what they read.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest

from auditlog.model.event import Limits, validate_event
from auditlog.model.matching import event_matches
from auditlog.model.times import parse_rfc3339
from auditlog.storage.base import AppendRequest, Store
from storage.test_contract import (
    NOW,
    PRINCIPAL,
    append_ok,
    event,
    ids,
    ok,
    parsed,
    query_of,
    random_event,
    random_query,
    seqs,
    walk,
)

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize("bound", [0, 1, 5, 9, 10, 11, 2**40, 2**62])
async def test_before_seq_bounds_a_plain_query(store: Store, order: str, bound: int) -> None:
    await append_ok(store, "acme", *(event(type="t", data={"w": "secret"}) for _ in range(10)))
    await append_ok(store, "globex", *(event(type="t") for _ in range(10)))
    expected = list(range(min(bound, 10)))
    for pairs in ((), (("type", "t"),), (("q", "secret"),), (("data.w", "secret"),)):
        query = dataclasses.replace(
            query_of(("order", order), ("limit", "3"), *pairs), before_seq=bound
        )
        got = seqs(await walk(store, "acme", query))
        assert got == (expected if order == "asc" else expected[::-1]), (pairs, order)


async def test_before_seq_with_a_cursor_past_it_finds_nothing(store: Store) -> None:
    await append_ok(store, "acme", *(event(type="t") for _ in range(10)))
    query = dataclasses.replace(query_of(("order", "asc")), before_seq=4, after_seq=6)
    page = await store.query("acme", query)
    assert (page.bodies, page.more) == ((), False)


async def test_random_bounded_queries_agree_with_brute_force(store: Store) -> None:
    rng = random.Random(20261206)
    stored: list[bytes] = []
    n = 0
    while len(stored) < 200:
        raws = [random_event(rng, n + i) for i in range(rng.randint(1, 20))]
        n += len(raws)
        new = tuple(validate_event(raw, PRINCIPAL, Limits(), NOW) for raw in raws)
        for appended in ok((await store.append([AppendRequest("t1", new)]))[0]):
            stored.append(appended.body)
    rows: list[tuple[bytes, dict[str, Any]]] = [(body, parsed(body)) for body in stored]
    for number in range(80):
        pairs = random_query(rng, [e for _, e in rows])
        bound = rng.choice([0, 1, 17, 100, 199, 200, 500])
        query = dataclasses.replace(query_of(*pairs), before_seq=bound)
        expected = [
            body
            for body, e in rows
            if e["seq"] < bound and event_matches(e, parse_rfc3339(e["time"]), query)
        ]
        if query.order == "desc":
            expected.reverse()
        got = await walk(store, "t1", query)
        assert ids(got) == ids(expected), (number, bound, pairs)

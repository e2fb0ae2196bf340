"""The notifier (``auditlog.service.notifier``) in one process, on the memory and SQLite stores.

Heads only grow and wake whoever waits on them. A live feed offers each subscriber every event
of its tenant from its ``start`` on, in seq order, whether the bodies came with this process's
commits (``committed``) or must be read back from the store (events that "another process"
committed: appended to the store directly, then ``advance``). A subscriber with a filter gets
exactly the events that ``model.matching.event_matches`` says match, whatever shortcut the feed
takes to find them (a property test over random events and §3 filters). A subscriber that
falls too far behind is cut off and its queue emptied, the others go on; one that waits for
events takes a commit whole, however large.

Waits for what the feed task delivers go through a subscriber without a filter (a probe): the
feed offers each event to every subscriber before the next, so once the probe has the last
event, every other subscriber has been offered everything.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from auditlog.errors import BadRequest
from auditlog.model import times
from auditlog.model.event import Limits, NewEvent, Principal, stored_bytes, validate_event
from auditlog.model.matching import event_matches
from auditlog.model.query import Query
from auditlog.model.selection import parse_selection
from auditlog.service.notifier import Notifier, Subscription, _Feed
from auditlog.storage.base import AppendRequest, Store
from auditlog.storage.memory import MemoryStore
from auditlog.storage.sqlite.store import SQLiteStore

NOW = 1_795_000_000_000_000
PRINCIPAL = Principal("key:t", "producer")
#: Seconds any wait in these tests may take at most; none should come near it.
BOUND = 10.0
#: Far enough that the notifier's poll never runs unless a test asks for it.
NO_POLL = 3600.0
ANY = Query()
BIG = 1 << 30

Leaf = tuple[int, bytes]


def new_event(raw: dict[str, Any]) -> NewEvent:
    return validate_event(raw, PRINCIPAL, Limits(), NOW)


async def append(store: Store, tenant: str, raws: Sequence[dict[str, Any]]) -> list[Leaf]:
    """Commit ``raws`` to the store (one request) and return their seqs and stored bytes."""
    outcomes = await store.append([AppendRequest(tenant, tuple(new_event(r) for r in raws))])
    outcome = outcomes[0]
    assert isinstance(outcome, tuple)
    return [(a.seq, a.body) for a in outcome]


def events(n: int, tag: str = "e", **fields: Any) -> list[dict[str, Any]]:
    return [{"type": f"{tag}.{i % 3}", "data": {"n": i, "tag": tag}, **fields} for i in range(n)]


async def receive_until(sub: Subscription, last_seq: int) -> list[Leaf]:
    """Everything the subscription receives until it has ``last_seq`` (bounded)."""
    got: list[Leaf] = []
    async with asyncio.timeout(BOUND):
        while not got or got[-1][0] < last_seq:
            got += await sub.next_events(BOUND)
    return got


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    opened: Store = (
        MemoryStore() if request.param == "memory" else SQLiteStore(str(tmp_path / "audit.db"))
    )
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def notifier(store: Store) -> AsyncIterator[Notifier]:
    made = Notifier(store, poll_seconds=NO_POLL)
    await made.start()
    try:
        yield made
    finally:
        await made.close()


# -- heads ----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_heads_are_learned_from_the_store_and_only_grow(store: Store) -> None:
    await append(store, "a", events(3))
    notifier = Notifier(store, poll_seconds=NO_POLL)
    await notifier.start()
    try:
        assert notifier.known_head("a") == 3  # learned at start
        assert notifier.known_head("b") is None
        assert await notifier.head("b") == 0  # asked of the store: nothing yet
        await append(store, "b", events(2))
        notifier.advance({"b": 2})
        notifier.advance({"a": 7, "b": 1})
        assert (await notifier.head("a"), await notifier.head("b")) == (7, 2)
        notifier.committed("a", [(4, b"{}")])  # an older commit told late
        notifier.advance({"a": 5})
        assert await notifier.head("a") == 7
        notifier.committed("a", [(9, b"{}"), (10, b"{}")])
        assert await notifier.head("a") == 11
    finally:
        await notifier.close()


@pytest.mark.anyio
async def test_wait_returns_once_the_head_passes(notifier: Notifier) -> None:
    notifier.advance({"t": 3})
    assert await notifier.wait("t", 2, BOUND) == 3  # passed already
    waiting = asyncio.create_task(notifier.wait("t", 4, BOUND))
    other = asyncio.create_task(notifier.wait("u", 0, BOUND))
    await asyncio.sleep(0)
    notifier.advance({"t": 4})  # not past 4 yet
    await asyncio.sleep(0)
    assert not waiting.done()
    notifier.committed("t", [(4, b"{}"), (5, b"{}")])
    async with asyncio.timeout(BOUND):
        assert await waiting == 6
    assert not other.done()  # another tenant's head did not wake it
    notifier.advance({"u": 1})
    async with asyncio.timeout(BOUND):
        assert await other == 1
    # Nothing comes: the wait ends after its timeout with the head as it is.
    assert await notifier.wait("t", 6, 0.01) == 6


@pytest.mark.anyio
async def test_the_poll_finds_commits_nobody_announced(store: Store) -> None:
    await append(store, "t", events(1))
    notifier = Notifier(store, poll_seconds=0.01)
    await notifier.start()
    try:
        await append(store, "t", events(4))  # a command wrote to the store directly
        assert await notifier.wait("t", 1, BOUND) == 5
    finally:
        await notifier.close()


@pytest.mark.anyio
async def test_close_ends_every_wait(store: Store) -> None:
    notifier = Notifier(store, poll_seconds=NO_POLL)
    await notifier.start()
    waiting = asyncio.create_task(notifier.wait("t", 10, BOUND * 10))
    await asyncio.sleep(0)
    await notifier.close()
    async with asyncio.timeout(BOUND):
        assert await waiting == 0


# -- feeds ----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_feed_offers_every_event_from_its_start_in_order(
    store: Store, notifier: Notifier
) -> None:
    """Events committed here, by "another process" (announced, or found only because a later
    commit passed them), in commits of every size: each subscriber gets each event from its
    start on once, in order, with the stored bytes, one joining midway too."""
    await append(store, "t", events(3))
    first = await notifier.subscribe("t", ANY, BIG)
    assert first.start == 3
    rng = random.Random(5)
    late: Subscription | None = None
    for round_ in range(40):
        if round_ == 20:
            late = await notifier.subscribe("t", ANY, BIG)
            # A feed already running starts it where the feed is (at most the head): what
            # lies before is the reader's to read from the store.
            assert first.start <= late.start <= await notifier.head("t")
        leaves = await append(store, "t", events(rng.choice((1, 2, 7, 40)), f"r{round_}"))
        how = rng.choice(("here", "there", "silent"))
        if how == "here":  # this process's ingest hands over the bodies
            notifier.committed("t", leaves)
        elif how == "there":  # another process committed and announced it
            notifier.advance({"t": leaves[-1][0] + 1})
        # "silent": nobody tells; the next commit told of carries it (every seq below a
        # durable one is durable too).
        if rng.random() < 0.3:
            await asyncio.sleep(0)  # let the feed run between some commits, not all
    final = await append(store, "t", events(1, "last"))
    notifier.committed("t", final)
    stored = await store.read_leaves("t", 0, 10_000)
    assert await receive_until(first, final[0][0]) == stored[3:]
    assert late is not None
    assert await receive_until(late, final[0][0]) == stored[late.start :]
    notifier.unsubscribe(first)
    notifier.unsubscribe(late)


@pytest.mark.anyio
async def test_events_behind_a_new_feed_are_the_readers_own(
    store: Store, notifier: Notifier
) -> None:
    """A commit told before anyone subscribed is not fed: it lies before ``start``."""
    leaves = await append(store, "t", events(5))
    notifier.committed("t", leaves)
    sub = await notifier.subscribe("t", ANY, BIG)
    assert sub.start == 5
    more = await append(store, "t", events(2, "after"))
    notifier.committed("t", more)
    assert await receive_until(sub, 6) == more
    notifier.unsubscribe(sub)


@pytest.mark.anyio
async def test_filtered_subscriptions_get_exactly_their_matches(
    store: Store, notifier: Notifier
) -> None:
    filters = {
        "type": [("type", "x.1")],
        "types": [("type", "x.0"), ("type", "x.2")],
        "actor": [("actor", "bob")],
        "and": [("type[in]", "x.0,x.1"), ("actor.id", "alice")],
        "data": [("data.n[gte]", "30")],
        "text": [("q", "carol")],
        "none": [("type", "nothing")],
    }
    probe = await notifier.subscribe("t", ANY, BIG)
    subs = {
        name: await notifier.subscribe("t", parse_selection(pairs, ())[0], BIG)
        for name, pairs in filters.items()
    }
    raws = [
        {"type": f"x.{i % 3}", "actor": ("alice", "bob", "carol")[i % 4 % 3], "data": {"n": i}}
        for i in range(60)
    ]
    committed: list[Leaf] = []
    for start in range(0, 60, 15):
        leaves = await append(store, "t", raws[start : start + 15])
        if start % 30:
            notifier.committed("t", leaves)
        else:
            notifier.advance({"t": leaves[-1][0] + 1})
        committed += leaves
    assert await receive_until(probe, committed[-1][0]) == committed
    for name, sub in subs.items():
        query = sub.query
        expected = [
            (seq, body) for seq, body in committed if event_matches(orjson.loads(body), NOW, query)
        ]
        assert await sub.next_events(0) == expected, name
        notifier.unsubscribe(sub)
    notifier.unsubscribe(probe)


@pytest.mark.anyio
async def test_a_reader_too_far_behind_is_cut_off(store: Store, notifier: Notifier) -> None:
    cut: list[str] = []
    slow = await notifier.subscribe("t", ANY, 2000)
    slow.on_overflow = lambda: cut.append("cut")
    steady = await notifier.subscribe("t", ANY, BIG)
    sent: list[Leaf] = []
    for round_ in range(6):
        leaves = await append(store, "t", [{"type": "big", "data": {"pad": "x" * 500}}] * 2)
        notifier.committed("t", leaves)
        sent += leaves
        assert await receive_until(steady, leaves[-1][0]) == leaves
        if round_ == 0:
            assert slow.queued_bytes == sum(len(body) for _, body in leaves)
    assert slow.overflowed
    assert cut == ["cut"]  # told once
    assert slow.queued_bytes == 0  # its queue was let go
    assert await slow.next_events(BOUND) == []  # at once: there is nothing more to wait for
    notifier.unsubscribe(slow)
    # The other subscriber goes on; with the last one gone, the feed stops.
    more = await append(store, "t", events(1))
    notifier.committed("t", more)
    assert await receive_until(steady, more[0][0]) == more
    notifier.unsubscribe(steady)
    await asyncio.sleep(0)
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "auditlog-feed-t"]


@pytest.mark.anyio
async def test_a_reader_that_keeps_up_takes_a_commit_larger_than_its_limit(
    store: Store, notifier: Notifier
) -> None:
    """Behind means events arriving while the reader is busy with what it took: one waiting
    for events takes a whole commit, however large; once it has them, the limit counts."""
    probe = await notifier.subscribe("t", ANY, BIG)
    sub = await notifier.subscribe("t", ANY, 2000)
    waiting = asyncio.create_task(sub.next_events(BOUND))
    await asyncio.sleep(0)
    large = [{"type": "big", "data": {"pad": "x" * 500}}] * 10  # about 6 KB
    leaves = await append(store, "t", large)
    notifier.committed("t", leaves)
    async with asyncio.timeout(BOUND):
        assert await waiting == leaves
    assert not sub.overflowed
    # Busy with those (not waiting), it is sent the same again: too far behind.
    more = await append(store, "t", large)
    notifier.committed("t", more)
    await receive_until(probe, more[-1][0])
    assert sub.overflowed
    assert await sub.next_events(BOUND) == []
    notifier.unsubscribe(sub)
    notifier.unsubscribe(probe)


@pytest.mark.anyio
async def test_feeds_of_tenants_are_apart(store: Store, notifier: Notifier) -> None:
    mine = await notifier.subscribe("t", ANY, BIG)
    theirs = await notifier.subscribe("u", ANY, BIG)
    a = await append(store, "t", events(3))
    b = await append(store, "u", events(2))
    notifier.committed("t", a)
    notifier.advance({"u": 2})
    assert await receive_until(mine, a[-1][0]) == a
    assert await receive_until(theirs, b[-1][0]) == b
    notifier.unsubscribe(mine)
    notifier.unsubscribe(theirs)


# -- the feed's keyed prefilter against the reference semantics ------------------------------

TYPES = ("a", "a.b", "b", "5")
PARTIES = ("alice", "al", "5")
WORDS = ("red", "green")
TIMES = ("2026-01-01T00:00:00Z", "2026-06-01T00:00:00Z", "2027-01-01T00:00:00Z")
SOURCES = ("src", "5")
IDS = ("e1", "e2", "e")

raw_events = st.fixed_dictionaries(
    {"type": st.sampled_from(TYPES), "time": st.sampled_from(TIMES)},
    optional={
        "id": st.sampled_from(IDS),
        "actor": st.sampled_from(PARTIES)
        | st.fixed_dictionaries(
            {"id": st.sampled_from(PARTIES)}, optional={"type": st.sampled_from(WORDS)}
        ),
        "subject": st.fixed_dictionaries(
            {"id": st.sampled_from(PARTIES)}, optional={"name": st.sampled_from(WORDS)}
        ),
        "source": st.sampled_from(SOURCES),
        "outcome": st.sampled_from(("success", "failure", "unknown")),
        "data": st.fixed_dictionaries(
            {},
            optional={
                "n": st.integers(0, 5),
                "tag": st.sampled_from((*WORDS, *TYPES)),
                "tags": st.lists(st.sampled_from((*WORDS, *TYPES)), max_size=3),
            },
        ),
    },
)

#: Paths a subscriber may be keyed on (some under two names), with the values found there.
_KEYED = {
    "type": TYPES,
    "actor": PARTIES,
    "actor.id": PARTIES,
    "subject": PARTIES,
    "subject.id": PARTIES,
    "source": SOURCES,
    "outcome": ("success", "failure", "unknown"),
    "id": IDS,
}
_OTHER = {
    "actor.type": WORDS,
    "subject.name": WORDS,
    "data.tag": (*WORDS, *TYPES),
    "data.tags": (*WORDS, *TYPES),
    "data.n": ("0", "3", "5"),
}
_OPS = ("", "", "[eq]", "[in]", "[in]", "[ne]", "[prefix]", "[exists]", "[gt]", "[lte]")
#: A value found elsewhere in the event, or found nowhere.
_STRAY = ("a", "5", "red", "success", "none")


@st.composite
def filter_pairs(draw: st.DrawFn) -> list[tuple[str, str]]:
    """Parameters of §3: conditions on the keyed paths (most) and others, words, times, with
    values mostly from what the events hold there."""
    pairs: list[tuple[str, str]] = []
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(("keyed", "keyed", "keyed", "other", "q", "time")))
        if kind == "q":
            pairs.append(("q", draw(st.sampled_from((*WORDS, "re*", "al*", "alice", "src")))))
        elif kind == "time":
            name = draw(st.sampled_from(("since", "until", "time[gte]", "time[lt]")))
            pairs.append((name, draw(st.sampled_from(TIMES))))
        else:
            path, found = draw(
                st.sampled_from(sorted((_KEYED if kind == "keyed" else _OTHER).items()))
            )
            values = st.sampled_from(found) | st.sampled_from(_STRAY)
            op = draw(st.sampled_from(_OPS))
            if op == "[exists]":
                value = draw(st.sampled_from(("true", "false")))
            elif op == "[in]":
                value = ",".join(draw(st.lists(values, min_size=1, max_size=3)))
            else:
                value = draw(values)
            pairs.append((path + op, value))
    return pairs


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(raw_events, min_size=1, max_size=25),
    st.lists(filter_pairs(), min_size=1, max_size=6),
    st.data(),
)
def test_the_keyed_prefilter_never_loses_a_match(
    raws: list[dict[str, Any]], filters: list[list[tuple[str, str]]], data: st.DataObject
) -> None:
    """Subscribers with random filters on one feed, some leaving midway: each is offered
    exactly the events that the reference semantics matches, while it is subscribed."""
    queries = []
    for pairs in filters:
        try:
            queries.append(parse_selection(pairs, ())[0])
        except BadRequest:
            continue
    assume(queries)
    bodies = [
        stored_bytes(new_event(raw), "t", seq, times.format_us(NOW)) for seq, raw in enumerate(raws)
    ]
    leaving = data.draw(st.sets(st.integers(0, len(queries) - 1)), label="leaving")
    half = data.draw(st.integers(0, len(bodies)), label="half")

    async def run() -> None:
        feed = _Feed("t", 0)
        subs = [Subscription("t", query, 0, BIG) for query in queries]
        for sub in subs:
            feed.add(sub)
        for seq, body in enumerate(bodies[:half]):
            feed.dispatch(seq, body)
        for index in sorted(leaving):
            feed.remove(subs[index])
        for seq, body in enumerate(bodies[half:], half):
            feed.dispatch(seq, body)
        for index, (sub, query) in enumerate(zip(subs, queries, strict=True)):
            seen = bodies[:half] if index in leaving else bodies
            expected = [
                (seq, body)
                for seq, body in enumerate(seen)
                if event_matches(
                    orjson.loads(body), times.parse_rfc3339(orjson.loads(body)["time"]), query
                )
            ]
            assert await sub.next_events(0) == expected, (query, index in leaving)
        for index, sub in enumerate(subs):
            if index not in leaving:
                feed.remove(sub)
        assert (feed.count, feed.general, feed.keyed) == (0, [], {})

    asyncio.run(run())

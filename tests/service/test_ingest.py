"""The group-commit queue (``service.ingest``): how requests are grouped and handed over.

A store that holds each commit until the test lets it go shows which groups are in flight:
one at a time while few events wait (they gather into the next group), two once at least
``EAGER_EVENTS`` wait, never more than ``PIPELINE``; seqs follow the order of submission.
Requests that arrive turn after turn of the event loop join the group about to be taken,
for at most ``GATHER_SECONDS``; a lone request is not held.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from auditlog.metrics import Metrics
from auditlog.model.event import Limits, NewEvent, Principal, validate_event
from auditlog.service import ingest
from auditlog.service.ingest import EAGER_EVENTS, PIPELINE, Ingestor
from auditlog.storage.base import AppendOutcome, AppendRequest
from auditlog.storage.memory import MemoryStore

pytestmark = pytest.mark.anyio

NOW = 1_795_000_000_000_000


def events(n: int) -> tuple[NewEvent, ...]:
    return tuple(
        validate_event({"type": "t"}, Principal("key:t", "t"), Limits(), NOW) for _ in range(n)
    )


class HeldStore(MemoryStore):
    """A memory store whose commits wait until ``release`` lets one go."""

    def __init__(self) -> None:
        super().__init__()
        self.groups: list[int] = []  # events of each group handed over, in order
        self.inflight = 0
        self.most_inflight = 0
        self._gate = asyncio.Semaphore(0)

    async def append(self, requests: Sequence[AppendRequest]) -> list[AppendOutcome]:
        self.groups.append(sum(len(r.events) for r in requests))
        self.inflight += 1
        self.most_inflight = max(self.most_inflight, self.inflight)
        try:
            await self._gate.acquire()
            return await super().append(requests)
        finally:
            self.inflight -= 1

    def release(self, n: int = 1) -> None:
        for _ in range(n):
            self._gate.release()


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_few_waiting_events_gather_behind_the_commit() -> None:
    store = HeldStore()
    ingestor = Ingestor(
        store, Metrics(), queue_max_events=10_000, commit_max_events=1_000, retry_after=1
    )
    ingestor.start()
    first = asyncio.ensure_future(ingestor.submit(AppendRequest("a", events(1))))
    await settle()
    rest = [asyncio.ensure_future(ingestor.submit(AppendRequest("a", events(1)))) for _ in range(9)]
    await settle()
    assert store.groups == [1]  # the nine wait for the commit in flight
    store.release()
    await first
    await settle()
    assert store.groups == [1, 9]
    store.release()
    outcomes = await asyncio.gather(*rest)
    assert [o[0].seq for o in outcomes] == list(range(1, 10))  # type: ignore[index]
    assert store.most_inflight == 1
    await ingestor.close()


async def test_many_waiting_events_go_to_the_store_at_once() -> None:
    store = HeldStore()
    ingestor = Ingestor(
        store, Metrics(), queue_max_events=100_000, commit_max_events=1_000, retry_after=1
    )
    ingestor.start()
    first = asyncio.ensure_future(ingestor.submit(AppendRequest("a", events(1))))
    await settle()
    big = [
        asyncio.ensure_future(ingestor.submit(AppendRequest("a", events(EAGER_EVENTS))))
        for _ in range(4)
    ]
    await settle()
    assert store.inflight == PIPELINE == 2
    assert store.groups == [1, 3 * EAGER_EVENTS]  # a second group, not a third
    store.release(10)
    await first
    outcomes = await asyncio.gather(*big)
    seqs = [e.seq for outcome in outcomes for e in outcome]  # type: ignore[union-attr]
    assert seqs == list(range(1, 1 + 4 * EAGER_EVENTS))
    assert store.most_inflight == PIPELINE
    await ingestor.close()


async def test_requests_arriving_turn_after_turn_commit_as_one_group() -> None:
    store = HeldStore()
    ingestor = Ingestor(
        store, Metrics(), queue_max_events=10_000, commit_max_events=1_000, retry_after=1
    )
    ingestor.start()
    waiting = [asyncio.ensure_future(ingestor.submit(AppendRequest("a", events(1))))]
    for _ in range(5):  # as a loop reading a burst hands its requests over, a turn apart
        await asyncio.sleep(0)
        waiting.append(asyncio.ensure_future(ingestor.submit(AppendRequest("a", events(1)))))
    await settle()
    assert store.groups == [6]
    store.release()
    await asyncio.gather(*waiting)
    await ingestor.close()


async def test_a_lone_request_is_not_held_for_the_longest_gather(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ingest, "GATHER_SECONDS", 60.0)
    ingestor = Ingestor(
        MemoryStore(), Metrics(), queue_max_events=10_000, commit_max_events=1_000, retry_after=1
    )
    ingestor.start()
    outcome = await asyncio.wait_for(ingestor.submit(AppendRequest("a", events(1))), 10)
    assert outcome[0].seq == 0  # type: ignore[index]
    await ingestor.close()


async def test_a_steady_stream_of_requests_is_cut_into_groups_after_the_longest_gather(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ingest, "GATHER_SECONDS", 0.05)
    monkeypatch.setattr(ingest, "EAGER_EVENTS", 10**9)  # only the time limit ends the gather
    store = HeldStore()
    ingestor = Ingestor(
        store, Metrics(), queue_max_events=10**9, commit_max_events=10**9, retry_after=1
    )
    ingestor.start()
    loop = asyncio.get_running_loop()
    give_up = loop.time() + 10
    waiting = []
    while not store.groups and loop.time() < give_up:  # a request every turn
        waiting.append(asyncio.ensure_future(ingestor.submit(AppendRequest("a", events(1)))))
        await asyncio.sleep(0)
    assert store.groups, "the group was never taken while requests kept coming"
    assert 1 < store.groups[0] < len(waiting)
    store.release(len(waiting))
    await asyncio.gather(*waiting)
    await ingestor.close()

"""The storage contract for log streams, their delivery leases and durable log heads, on
every backend (``auditlog.storage.base``)."""

from __future__ import annotations

import dataclasses

import anyio
import pytest

from auditlog.model.streams import LogStream, new_stream_id
from auditlog.storage.base import Store
from storage.test_contract import append_ok, event

pytestmark = pytest.mark.anyio

#: A lease long enough never to run out during a test.
LONG_MS = 60_000
#: A lease that runs out while a test waits for it (a wait, never an assertion on time).
SHORT_MS = 100


def stream(tenant: str = "acme", created_us: int = 1, paused: bool = False) -> LogStream:
    return LogStream(
        stream_id=new_stream_id(),
        tenant=tenant,
        name="siem",
        destination='{"kind":"webhook","url":"https://example.com/hook"}',
        filter='{"type":"user.login"}',
        start_seq=3,
        paused=paused,
        created_us=created_us,
        updated_us=created_us,
        position=2,
    )


async def test_streams_are_stored_listed_and_deleted_per_tenant(store: Store) -> None:
    first, second, other = stream(created_us=1), stream(created_us=2), stream("globex", 3)
    for s in (second, first, other):
        await store.create_stream(s)
    assert await store.get_stream("acme", first.stream_id) == first
    assert await store.get_stream("globex", first.stream_id) is None
    assert await store.list_streams("acme") == [first, second]
    assert await store.list_streams() == [first, second, other]
    assert await store.delete_stream("acme", first.stream_id)
    assert not await store.delete_stream("acme", first.stream_id)
    assert not await store.delete_stream("acme", other.stream_id)
    assert await store.list_streams() == [second, other]
    assert first.delivered_seq is None


async def test_an_update_changes_the_definition_and_keeps_the_progress(store: Store) -> None:
    s = stream()
    await store.create_stream(s)
    assert await store.claim_streams("a", LONG_MS, 10) == [s]
    assert await store.record_delivery("acme", s.stream_id, "a", 9, 4, 77)
    changed = dataclasses.replace(
        s, name="new", destination="{}", filter="{}", paused=True, updated_us=5, position=0
    )
    assert await store.update_stream(changed)
    got = await store.get_stream("acme", s.stream_id)
    assert got == dataclasses.replace(changed, position=9, deliveries=4, last_success_us=77)
    assert got is not None
    assert got.delivered_seq == 9
    assert not await store.update_stream(dataclasses.replace(s, tenant="globex"))


async def test_one_owner_at_a_time_and_the_lease_moves_when_it_runs_out(store: Store) -> None:
    s = stream()
    await store.create_stream(s)
    assert [x.stream_id for x in await store.claim_streams("a", SHORT_MS, 10)] == [s.stream_id]
    assert await store.claim_streams("b", SHORT_MS, 10) == []
    # "a" renews in time: still its own.
    assert len(await store.claim_streams("a", LONG_MS, 10)) == 1
    assert await store.claim_streams("b", LONG_MS, 10) == []
    assert await store.claim_streams("a", SHORT_MS, 10) != []
    await anyio.sleep(SHORT_MS / 1000 * 3)
    assert [x.stream_id for x in await store.claim_streams("b", LONG_MS, 10)] == [s.stream_id]
    # The old owner's claim no longer returns it, nor may it write progress.
    assert await store.claim_streams("a", LONG_MS, 10) == []
    assert not await store.record_delivery("acme", s.stream_id, "a", 5, 1, 1)
    assert not await store.record_failure("acme", s.stream_id, "a", "boom", 1)
    assert await store.record_delivery("acme", s.stream_id, "b", 5, 1, 1)


async def test_a_released_lease_is_free_at_once(store: Store) -> None:
    s = stream()
    await store.create_stream(s)
    assert await store.claim_streams("a", LONG_MS, 10) != []
    await store.release_streams("b", [s.stream_id])  # not b's to give up
    assert await store.claim_streams("b", LONG_MS, 10) == []
    await store.release_streams("a", [s.stream_id])
    assert await store.claim_streams("b", LONG_MS, 10) != []


async def test_paused_streams_are_not_held(store: Store) -> None:
    running, paused = stream(created_us=1), stream(created_us=2, paused=True)
    await store.create_stream(running)
    await store.create_stream(paused)
    assert [x.stream_id for x in await store.claim_streams("a", LONG_MS, 10)] == [running.stream_id]
    assert await store.update_stream(dataclasses.replace(running, paused=True, updated_us=9))
    assert await store.claim_streams("a", LONG_MS, 10) == []
    assert not await store.record_delivery("acme", running.stream_id, "a", 5, 1, 1)
    assert await store.update_stream(dataclasses.replace(running, paused=False, updated_us=10))
    assert len(await store.claim_streams("b", LONG_MS, 10)) == 1


async def test_a_claim_takes_at_most_limit_new_streams(store: Store) -> None:
    made = [stream(created_us=i) for i in range(5)]
    for s in made:
        await store.create_stream(s)
    assert len(await store.claim_streams("a", LONG_MS, 2)) == 2
    assert len(await store.claim_streams("a", LONG_MS, 2)) == 4  # renews two, takes two
    assert len(await store.claim_streams("b", LONG_MS, 10)) == 1
    assert len(await store.claim_streams("a", LONG_MS, 0)) == 4


async def test_concurrent_claims_hold_each_stream_once(store: Store) -> None:
    for i in range(12):
        await store.create_stream(stream(created_us=i))
    held: dict[str, list[str]] = {}

    async def claim(owner: str) -> None:
        held[owner] = [s.stream_id for s in await store.claim_streams(owner, LONG_MS, 5)]

    async with anyio.create_task_group() as group:
        for owner in "abcd":
            group.start_soon(claim, owner)
    taken = [sid for ids in held.values() for sid in ids]
    assert len(taken) == len(set(taken)) == 12


async def test_progress_only_moves_forward_and_failures_are_counted(store: Store) -> None:
    s = stream()
    await store.create_stream(s)
    await store.claim_streams("a", LONG_MS, 10)
    assert not await store.record_delivery("acme", s.stream_id, "b", 5, 1, 1)  # not its lease
    assert await store.record_failure("acme", s.stream_id, "a", "http 503", 10)
    assert await store.record_failure("acme", s.stream_id, "a", "timeout", 11)
    assert await store.record_delivery("acme", s.stream_id, "a", 10, 3, 12)
    assert not await store.record_delivery("acme", s.stream_id, "a", 9, 1, 13)
    assert await store.record_delivery("acme", s.stream_id, "a", 20, 0, 14)  # nothing matched
    got = await store.get_stream("acme", s.stream_id)
    assert got is not None
    assert (got.position, got.deliveries, got.failures) == (20, 3, 2)
    assert (got.last_success_us, got.last_error, got.last_error_us) == (12, "timeout", 11)
    assert not await store.record_delivery("globex", s.stream_id, "a", 30, 1, 15)


async def test_durable_log_sizes_count_committed_events(store: Store) -> None:
    assert await store.durable_log_sizes() == {}
    await append_ok(store, "acme", event(), event())
    await append_ok(store, "globex", event())
    assert await store.durable_log_sizes() == {"acme": 2, "globex": 1}
    assert await store.durable_log_sizes("acme") == {"acme": 2}
    assert await store.durable_log_sizes("nobody") == {}
    assert await store.durable_log_sizes() == await store.log_sizes()

"""503 with Retry-After (API.md §2): when the ingest queue is full and when storage fails.

The service never acknowledges what it has not stored: after a 503 the event is absent, and a
retry stores it once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import anyio
import httpx
import pytest

from auditlog.errors import StorageError, StorageFull
from auditlog.server.app import AuditlogApp
from server.api import Api, metric_samples, problem, value
from server.conftest import QUIET, ControlledStore

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("expect_unavailable")]

WAIT = 10  # seconds: a bound on waits that should end at once, never an assertion on speed


@pytest.mark.parametrize(
    "settings", [replace(QUIET, queue_max_events=1, retry_after=7)], ids=["queue-1-event"]
)
async def test_a_full_ingest_queue_is_503_with_retry_after(
    api: Api, store: ControlledStore, client: httpx.AsyncClient
) -> None:
    store.hold_appends()
    answers: dict[str, httpx.Response] = {}

    async def post(event_id: str) -> None:
        answers[event_id] = await api.post({"id": event_id, "type": "t"})

    async with anyio.create_task_group() as tg:
        tg.start_soon(post, "first")
        with anyio.fail_after(WAIT):
            await store.appending.wait()  # "first" is being committed: the queue is full
        refused = await api.post({"id": "second", "type": "t"})
        doc = problem(refused, 503)
        assert refused.headers["retry-after"] == "7"
        assert "queue" in doc["detail"]
        problem(await api.post([{"id": "b1", "type": "t"}]), 503)
        # Reads go on while writes are refused.
        assert (await api.get("second")).status_code == 404
        samples = await metric_samples(client)
        assert value(samples, "auditlog_ingest_queue_events") == 1
        store.release_appends()
    assert answers["first"].status_code == 201

    # The refused events were not stored; retried now, they are, once.
    assert (await api.post({"id": "second", "type": "t"})).status_code == 201
    assert [e["id"] for e in await api.everything()] == ["first", "second"]
    samples = await metric_samples(client)
    assert value(samples, "auditlog_ingest_rejected_total", reason="queue_full") == 2
    assert value(samples, "auditlog_ingest_queue_events") == 0


@pytest.mark.parametrize(
    "settings", [replace(QUIET, queue_max_events=1, retry_after=3)], ids=["queue-1-event"]
)
async def test_a_full_queue_refuses_a_write_before_reading_its_body(
    api: Api, store: ControlledStore, client: httpx.AsyncClient
) -> None:
    """Under a flood, refusing costs nothing: the body is not read, parsed nor validated."""
    store.hold_appends()
    answers: list[httpx.Response] = []

    async def post() -> None:
        answers.append(await api.post({"id": "first", "type": "t"}))

    async with anyio.create_task_group() as tg:
        tg.start_soon(post)
        with anyio.fail_after(WAIT):
            await store.appending.wait()
        # Not JSON at all, so it would be a 400 had it been read: it is refused unread.
        unread = await api.post_raw(b"{not json", "application/json")
        assert "queue" in problem(unread, 503)["detail"]
        assert unread.headers["retry-after"] == "3"
        legacy = await client.post("/event", content=b"{not json", headers=api.headers)
        problem(legacy, 503)
        store.release_appends()
    assert [a.status_code for a in answers] == [201]
    # With room in the queue again, the same body is read, and refused for what it is.
    problem(await api.post_raw(b"{not json", "application/json"), 400)


def padded(event_id: str, size: int) -> bytes:
    """An event whose JSON body is ``size`` bytes long."""
    head = b'{"id":"' + event_id.encode() + b'","type":"t","data":{"pad":"'
    tail = b'"}}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


async def chunks(body: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


@pytest.mark.parametrize(
    "settings",
    [replace(QUIET, max_body_bytes=2048, max_bodies_bytes=3000, retry_after=4)],
    ids=["3000-bytes-of-bodies"],
)
async def test_bodies_past_the_memory_budget_are_503_before_they_are_read(
    api: Api, store: ControlledStore, client: httpx.AsyncClient
) -> None:
    store.hold_appends()
    answers: list[httpx.Response] = []

    async def post(body: bytes) -> None:
        answers.append(await api.post_raw(body, "application/json"))

    async with anyio.create_task_group() as tg:
        tg.start_soon(post, padded("first", 2000))
        with anyio.fail_after(WAIT):  # a request that is not refused would wait for good
            await store.appending.wait()  # 2,000 bytes held until "first" is answered
            # 1,500 more would pass 3,000: refused unread (as JSON it would be a 400).
            unread = await api.post_raw(b"{" * 1500, "application/json")
            doc = problem(unread, 503)
            assert "request bodies" in doc["detail"]
            assert unread.headers["retry-after"] == "4"
            # Without Content-Length the bytes are counted as they arrive, and refused too.
            streamed = await api.post_raw(chunks(padded("streamed", 1500), 500), "application/json")
            problem(streamed, 503)
            # Logins have bodies too, and share the budget.
            problem(await client.post("/v1/auth/token", content=b"{" * 1500), 503)
            # What fits is read (here: refused for what it is, not for its size).
            problem(await api.post_raw(b"{" * 900, "application/json"), 400)
        store.release_appends()
    assert [a.status_code for a in answers] == [201]
    # Every body's bytes were given back: the largest bodies are taken again, one after another.
    for n in range(3):
        assert (
            await api.post_raw(padded(f"after-{n}", 2048), "application/json")
        ).status_code == 201
    streamed = await api.post_raw(chunks(padded("streamed", 2048), 300), "application/json")
    assert streamed.status_code == 201
    assert [e["id"] for e in await api.everything()] == [
        "first",
        "after-0",
        "after-1",
        "after-2",
        "streamed",
    ]
    samples = await metric_samples(client)
    assert value(samples, "auditlog_ingest_rejected_total", reason="bodies_full") == 3


@pytest.mark.parametrize(
    "error",
    [
        StorageError("the database is locked", 2),
        StorageFull("the disk is full", 2),
        RuntimeError("a bug in the store"),
    ],
    ids=["storage-error", "storage-full", "unexpected"],
)
async def test_a_failed_commit_is_503_and_stores_nothing(
    api: Api, store: ControlledStore, error: BaseException
) -> None:
    store.append_error = error
    single = await api.post({"id": "e1", "type": "t"})
    problem(single, 503)
    assert single.headers["retry-after"].isdigit()
    batch = await api.post([{"id": "b1", "type": "t"}, {"id": "b2", "type": "t"}])
    problem(batch, 503)
    assert await api.everything() == []
    # Storage is back: the retries are stored, and the log has no gap.
    store.append_error = None
    assert (await api.create({"id": "e1", "type": "t"}))["seq"] == 0
    assert await api.create_batch([{"id": "b1", "type": "t"}, {"id": "b2", "type": "t"}]) == [
        {"id": "b1", "seq": 1},
        {"id": "b2", "seq": 2},
    ]


async def test_a_failing_query_is_503(api: Api, store: ControlledStore) -> None:
    await api.create({"id": "e1", "type": "t"})
    store.query_error = StorageError("the query took too long and was stopped", 1)
    response = await api.query([("type", "t")])
    doc = problem(response, 503)
    assert "too long" in doc["detail"]
    assert response.headers["retry-after"] == "1"


async def test_shutdown_answers_what_is_in_flight_and_refuses_new_writes(
    app: AuditlogApp, api: Api, store: ControlledStore
) -> None:
    store.hold_appends()
    answers: list[httpx.Response] = []

    async def post() -> None:
        answers.append(await api.post({"id": "in-flight", "type": "t"}))

    async with anyio.create_task_group() as tg:
        tg.start_soon(post)
        with anyio.fail_after(WAIT):
            await store.appending.wait()
        tg.start_soon(app.shutdown)
        await anyio.wait_all_tasks_blocked()  # the shutdown waits for the held commit
        refused = await api.post({"id": "late", "type": "t"})
        doc = problem(refused, 503)
        assert "shutting down" in doc["detail"]
        assert refused.headers["retry-after"].isdigit()
        store.release_appends()
    # The request in flight was committed and answered before the store closed.
    assert [r.status_code for r in answers] == [201]
    assert answers[0].json()["id"] == "in-flight"

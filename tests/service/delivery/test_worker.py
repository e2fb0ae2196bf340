"""The delivery worker and its backoff (``service.delivery.worker``), and the deliveries that
run a worker per stream under leases (``service.delivery.deliveries``), in-process on the
memory and SQLite stores.

The worker's tests give it a sink written here, which records every batch and fails as
scripted, and a backoff from 20 ms (so no test sleeps through seconds of it); the deliveries'
tests give streams a webhook destination on a real receiver on
127.0.0.1 (``service.delivery.receiver``). Every wait polls with a deadline; nothing is
asserted about how long anything took. The same behaviour against real ``auditlog serve``
processes is in ``tests/reliability/test_delivery.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, cast

import orjson
import pytest

from auditlog.metrics import Metrics
from auditlog.model import times
from auditlog.model.streams import LogStream, new_stream_id
from auditlog.service.delivery import deliveries as deliveries_module
from auditlog.service.delivery import worker as worker_module
from auditlog.service.delivery.deliveries import Deliveries
from auditlog.service.delivery.destinations import Destination, parse_destination
from auditlog.service.delivery.sink import Batch, DeliveryFailed, Sink
from auditlog.service.delivery.worker import LEASE_MARGIN, Backoff, StreamWorker
from auditlog.service.notifier import Notifier
from auditlog.service.streams import load_destination, stored_destination
from auditlog.storage.base import Store
from auditlog.storage.memory import MemoryStore
from auditlog.storage.sqlite.store import SQLiteStore
from service.delivery.receiver import Receiver
from storage.test_contract import append_ok, event

pytestmark = pytest.mark.anyio

TENANT = "acme"
#: A lease that does not run out during a test.
LONG_MS = 600_000
#: Bound on every wait for something to happen.
WAIT = 20.0
#: How long a test watches for something that must not happen (a bound, not a measurement).
QUIET = 0.5
#: The send timeout the workers are given.
TIMEOUT = 1.0


# -- the store, the notifier -----------------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    backend: Store = (
        MemoryStore() if request.param == "memory" else SQLiteStore(str(tmp_path / "audit.db"))
    )
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()


@pytest.fixture
async def notifier(store: Store) -> AsyncIterator[Notifier]:
    made = Notifier(store, poll_seconds=0.05)
    await made.start()
    try:
        yield made
    finally:
        await made.close()


async def commit(
    store: Store, notifier: Notifier | None, count: int, prefix: str, **fields: Any
) -> list[int]:
    """Append ``count`` events in one commit and tell the notifier, as ingest does; their seqs."""
    appended = await append_ok(
        store, TENANT, *(event(id=f"{prefix}{i}", **fields) for i in range(count))
    )
    if notifier is not None:
        notifier.committed(TENANT, [(a.seq, a.body) for a in appended])
    return [a.seq for a in appended]


async def until(check: Callable[[], bool | Awaitable[bool]], what: str) -> None:
    """Return once ``check`` holds; fail after ``WAIT`` seconds."""
    deadline = time.monotonic() + WAIT
    while True:
        held = check()
        if not isinstance(held, bool):
            held = await held
        if held:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {WAIT} s")
        await asyncio.sleep(0.01)


async def stored(store: Store, stream: LogStream) -> LogStream:
    found = await store.get_stream(stream.tenant, stream.stream_id)
    assert found is not None
    return found


# -- streams and workers ---------------------------------------------------------------------


def webhook(url: str = "https://example.com/hook") -> Destination:
    return parse_destination({"kind": "webhook", "url": url})


async def new_stream(
    store: Store,
    *,
    destination: Destination | None = None,
    filter: str = "{}",
    start: int = 0,
    created_us: int | None = None,
) -> LogStream:
    now = created_us if created_us is not None else times.now_us()
    made = LogStream(
        stream_id=new_stream_id(),
        tenant=TENANT,
        name="siem",
        destination=stored_destination(destination or webhook()),
        filter=filter,
        start_seq=start,
        paused=False,
        created_us=now,
        updated_us=now,
        position=start - 1,
    )
    await store.create_stream(made)
    return made


async def claimed(store: Store, stream: LogStream, owner: str = "a") -> LogStream:
    """``stream`` as ``owner``'s claim returns it (which must hold it)."""
    held = {s.stream_id: s for s in await store.claim_streams(owner, LONG_MS, 100)}
    assert stream.stream_id in held
    return held[stream.stream_id]


Outcome = BaseException | None


class ScriptedSink:
    """Records every batch sent; each send ends as the next scripted outcome says (raise it,
    or None: accepted), accepted when the script is empty. While ``gate`` is cleared a send
    waits on it (``sending`` is set once one waits)."""

    def __init__(self, *outcomes: Outcome) -> None:
        self.sent: list[Batch] = []
        self.sent_at: list[float] = []  # time.monotonic() of each send and each failure
        self.failed_at: list[float] = []
        self.accepted: list[Batch] = []
        self.script: deque[Outcome] = deque(outcomes)
        self.gate = asyncio.Event()
        self.gate.set()
        self.sending = asyncio.Event()
        self.closed = 0

    async def send(self, batch: Batch) -> None:
        self.sent.append(batch)
        self.sent_at.append(time.monotonic())
        self.sending.set()
        await self.gate.wait()
        outcome = self.script.popleft() if self.script else None
        if outcome is not None:
            self.failed_at.append(time.monotonic())
            raise outcome
        self.accepted.append(batch)

    async def close(self) -> None:
        self.closed += 1

    def accepted_seqs(self) -> list[int]:
        return [seq for batch in self.accepted for seq, _ in batch.events]


def failed(reason: Any = "http_5xx", message: str = "answered 503") -> DeliveryFailed:
    return DeliveryFailed(message, reason=reason)


def make_worker(
    store: Store,
    notifier: Notifier,
    stream: LogStream,
    sink: Sink,
    metrics: Metrics | None = None,
    *,
    owner: str = "a",
    batch_events: int = 100,
    batch_bytes: int = 1 << 20,
    linger: float = 0.0,
    backoff_base: float = 0.02,
) -> StreamWorker:
    made = StreamWorker(
        stream,
        load_destination(stream.destination),
        owner,
        store,
        notifier,
        metrics or Metrics(),
        timeout=TIMEOUT,
        batch_events=batch_events,
        batch_bytes=batch_bytes,
        linger=linger,
        backoff_max=1,
        sink=sink,
        backoff=Backoff(1.0, base=backoff_base),  # short waits between retries
    )
    made.renewed(time.monotonic() + LONG_MS / 1000)
    return made


@contextlib.asynccontextmanager
async def running(worker: StreamWorker) -> AsyncIterator[StreamWorker]:
    worker.start()
    try:
        yield worker
    finally:
        await worker.stop()


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


# -- Backoff -----------------------------------------------------------------------------


def test_backoff_doubles_from_the_base_up_to_the_cap_each_wait_drawn_from_its_upper_half() -> None:
    backoff = Backoff(cap=40.0, base=1.0, rng=random.Random(7))
    for failures in range(1, 40):
        ceiling = min(40.0, 2.0 ** (failures - 1))
        wait = backoff.next()
        assert ceiling / 2 <= wait <= ceiling, (failures, wait)
        assert backoff.failures == failures
    backoff.reset()
    assert backoff.failures == 0
    assert 0.5 <= backoff.next() <= 1.0


def test_backoff_waits_are_spread_so_that_streams_failing_together_do_not_retry_in_step() -> None:
    waits = []
    for seed in range(50):
        backoff = Backoff(cap=300.0, rng=random.Random(seed))
        for _ in range(5):
            wait = backoff.next()
        waits.append(wait)
    assert all(8.0 <= w <= 16.0 for w in waits)
    assert len(set(waits)) == len(waits)


def test_retry_after_wins_over_the_backoff_and_is_bounded() -> None:
    backoff = Backoff(cap=1.0, rng=random.Random(3))
    for _ in range(3):
        backoff.next()
    wait = backoff.next(retry_after=30.0)
    assert 30.0 <= wait <= 33.0  # more than the cap: the destination asked for it
    assert 3600.0 <= backoff.next(retry_after=1e9) <= 3960.0
    assert 2.0 <= backoff.next(retry_after=2.0) <= 2.2
    # Less than the backoff's first step is taken as that step: never a tight loop.
    for asked in (0.0, -5.0, 0.1):
        assert 0.5 <= backoff.next(retry_after=asked) <= 1.0
    assert backoff.failures == 9


# -- the worker --------------------------------------------------------------------------


async def test_every_event_is_delivered_once_in_seq_order_in_batches_of_at_most_the_limit(
    store: Store, notifier: Notifier
) -> None:
    seqs = await commit(store, notifier, 7, "early")
    stream = await claimed(store, await new_stream(store))
    sink = ScriptedSink()
    metrics = Metrics()
    async with running(make_worker(store, notifier, stream, sink, metrics, batch_events=3)):
        for round_ in range(4):  # commits while the worker runs, of several sizes
            seqs += await commit(store, notifier, round_ * 2 + 1, f"late{round_}")
        await until(lambda: sink.accepted_seqs() == seqs, "every event delivered")
        await until(
            lambda: _position(store, stream, seqs[-1]), "the position recorded in the store"
        )
    assert sink.sent == sink.accepted
    assert all(1 <= len(b.events) <= 3 for b in sink.sent)
    for batch in sink.sent:
        for seq, body in batch.events:
            assert orjson.loads(body)["seq"] == seq
    state = await stored(store, stream)
    assert (state.delivered_seq, state.deliveries, state.failures) == (seqs[-1], len(seqs), 0)
    assert state.last_success_us is not None
    labels = {"stream": stream.stream_id, "kind": "webhook"}
    assert sample(metrics, "auditlog_stream_events_delivered_total", **labels) == len(seqs)
    assert sample(metrics, "auditlog_stream_lag_events", **labels) == 0
    assert sample(metrics, "auditlog_stream_failing", **labels) == 0


async def _position(store: Store, stream: LogStream, position: int) -> bool:
    return (await stored(store, stream)).position == position


async def _delivered(store: Store, stream: LogStream, seq: int) -> bool:
    return (await stored(store, stream)).delivered_seq == seq


async def test_a_batch_is_bounded_in_bytes_and_an_event_larger_than_that_goes_alone(
    store: Store, notifier: Notifier
) -> None:
    sizes = [100, 100, 3000, 100, 100, 100, 100, 100, 5000, 100]
    seqs: list[int] = []
    for i, size in enumerate(sizes):
        seqs += await commit(store, notifier, 1, f"sized{i}-", data={"pad": "x" * size})
    stream = await claimed(store, await new_stream(store))
    sink = ScriptedSink()
    async with running(make_worker(store, notifier, stream, sink, batch_bytes=1024)):
        await until(lambda: sink.accepted_seqs() == seqs, "every event delivered")
    for batch in sink.sent:
        total = sum(len(body) for _, body in batch.events)
        assert total <= 1024 or len(batch.events) == 1, [len(b) for _, b in batch.events]
    big = [b.events[0][0] for b in sink.sent if sum(len(x) for _, x in b.events) > 1024]
    assert big == [seqs[2], seqs[8]]


async def test_a_failing_batch_is_sent_again_unchanged_until_accepted_and_failures_are_kept(
    store: Store, notifier: Notifier
) -> None:
    seqs = await commit(store, notifier, 5, "e")
    stream = await claimed(store, await new_stream(store))
    sink = ScriptedSink(
        failed("http_5xx", "https://example.com answered 500 Internal Server Error"),
        failed("timeout", "https://example.com did not answer within 1 s"),
        failed("http_429", "https://example.com answered 429 Too Many Requests"),
        failed("closed", "https://example.com closed the connection without answering"),
    )
    metrics = Metrics()
    async with running(make_worker(store, notifier, stream, sink, metrics, batch_events=2)):
        await until(lambda: sink.accepted_seqs() == seqs, "every event delivered")
        await until(lambda: _position(store, stream, seqs[-1]), "the position recorded")
    first = sink.sent[0]
    assert sink.sent[:5] == [first] * 5  # the same batch, until it was accepted
    assert [b.first_seq for b in sink.sent[5:]] == [seqs[2], seqs[4]]
    state = await stored(store, stream)
    assert state.failures == 4
    assert state.last_error == "https://example.com closed the connection without answering"
    assert state.last_error_us is not None
    assert state.deliveries == 5
    labels = {"stream": stream.stream_id, "kind": "webhook"}
    for reason in ("http_5xx", "timeout", "http_429", "closed"):
        assert sample(metrics, "auditlog_stream_delivery_failures_total", **labels, reason=reason)
    assert sample(metrics, "auditlog_stream_last_error_timestamp_seconds", **labels)
    assert sample(metrics, "auditlog_stream_failing", **labels) == 0


async def test_the_retry_waits_as_long_as_retry_after_asks(
    store: Store, notifier: Notifier
) -> None:
    await commit(store, notifier, 1, "e")
    stream = await claimed(store, await new_stream(store))
    sink = ScriptedSink(DeliveryFailed("answered 429", reason="http_429", retry_after=1.0))
    async with running(make_worker(store, notifier, stream, sink)):
        await until(lambda: len(sink.accepted) == 1, "the second attempt")
    # A lower bound (less the event loop's clock resolution): the worker did not come back
    # before it was asked to, although its backoff alone would have let it.
    assert sink.sent_at[1] - sink.failed_at[0] >= 1.0 - 0.01


async def test_a_retry_after_of_nothing_does_not_make_a_tight_loop_of_attempts(
    store: Store, notifier: Notifier
) -> None:
    await commit(store, notifier, 1, "e")
    stream = await claimed(store, await new_stream(store))
    zero = [DeliveryFailed("answered 429", reason="http_429", retry_after=0.0) for _ in range(3)]
    sink = ScriptedSink(*zero)
    async with running(make_worker(store, notifier, stream, sink, backoff_base=0.4)):
        await until(lambda: len(sink.accepted) == 1, "the batch, in the end")
    # Each wait at least the backoff's first step (from half its base, here 0.4 s).
    for failed_at, sent_at in zip(sink.failed_at, sink.sent_at[1:], strict=True):
        assert sent_at - failed_at >= 0.2 - 0.01
    assert (await stored(store, stream)).failures == 3


async def test_events_that_do_not_match_are_passed_over_and_the_position_moves_past_them(
    store: Store, notifier: Notifier
) -> None:
    matching: list[int] = []
    for i in range(4):
        matching += await commit(store, notifier, 2, f"login{i}-", type="user.login")
        await commit(store, notifier, 3, f"read{i}-", type="file.read")
    last = (await commit(store, notifier, 4, "tail", type="file.read"))[-1]
    stream = await claimed(store, await new_stream(store, filter='{"type":"user.login"}'))
    sink = ScriptedSink()
    async with running(make_worker(store, notifier, stream, sink, batch_events=3)):
        await until(lambda: sink.accepted_seqs() == matching, "the matching events delivered")
        await until(lambda: _position(store, stream, last), "the position past the others")
    for batch in sink.sent:
        assert all(orjson.loads(body)["type"] == "user.login" for _, body in batch.events)
    state = await stored(store, stream)
    assert (state.delivered_seq, state.deliveries) == (last, len(matching))


async def test_a_stream_that_starts_later_delivers_from_its_start_on(
    store: Store, notifier: Notifier
) -> None:
    seqs = await commit(store, notifier, 6, "e")
    stream = await claimed(store, await new_stream(store, start=seqs[4]))
    sink = ScriptedSink()
    async with running(make_worker(store, notifier, stream, sink)):
        await until(lambda: sink.accepted_seqs() == seqs[4:], "the events from the start")


async def test_only_events_below_the_durable_head_are_read() -> None:
    store = MemoryStore()
    await store.open()
    notifier = Notifier(store, poll_seconds=3600.0)  # learns heads only when told
    await notifier.start()
    try:
        known = await commit(store, notifier, 3, "told")
        stream = await claimed(store, await new_stream(store))
        sink = ScriptedSink()
        async with running(make_worker(store, notifier, stream, sink)):
            await until(lambda: sink.accepted_seqs() == known, "the events it was told of")
            untold = await commit(store, None, 3, "untold")  # in the store, head not announced
            await asyncio.sleep(QUIET)
            assert sink.accepted_seqs() == known
            notifier.advance({TENANT: untold[-1] + 1})
            await until(lambda: sink.accepted_seqs() == known + untold, "the rest, once durable")
    finally:
        await notifier.close()
        await store.close()


async def test_nothing_is_sent_unless_the_lease_has_a_send_timeout_and_a_margin_left(
    store: Store, notifier: Notifier
) -> None:
    await commit(store, notifier, 2, "e")
    stream = await claimed(store, await new_stream(store))
    sink = ScriptedSink()
    worker = make_worker(store, notifier, stream, sink)
    worker.renewed(time.monotonic() + TIMEOUT + LEASE_MARGIN - 0.2)
    async with running(worker):
        await asyncio.sleep(QUIET)
        assert sink.sent == []
        worker.renewed(time.monotonic() + 60.0)
        await until(lambda: len(sink.accepted_seqs()) == 2, "the events, once renewed")


async def test_a_worker_whose_lease_was_taken_stops_and_the_new_holder_resends_from_the_store(
    store: Store, notifier: Notifier
) -> None:
    seqs = await commit(store, notifier, 4, "e")
    stream = await new_stream(store)
    held = {s.stream_id: s for s in await store.claim_streams("a", 100, 10)}[stream.stream_id]
    sink_a = ScriptedSink()
    sink_a.gate.clear()
    async with running(make_worker(store, notifier, held, sink_a, owner="a")) as worker_a:
        await until(lambda: sink_a.sending.is_set(), "a's first send")
        # a's lease runs out in the store while its batch is on its way, and b takes it.
        await until(lambda: _claim_has(store, "b", stream), "b's claim once a's lease ran out")
        sink_a.gate.set()  # the destination accepts a's batch, but a cannot record it
        await until(lambda: worker_a.task is not None and worker_a.task.done(), "a stopping")
        assert worker_a.task is not None
        assert worker_a.task.exception() is None  # a lost lease ends it quietly
    assert sink_a.accepted_seqs() == seqs
    assert (await stored(store, stream)).delivered_seq is None
    assert not await store.record_delivery(TENANT, stream.stream_id, "a", seqs[-1], 4, 1)
    sink_b = ScriptedSink()
    held_b = await claimed(store, stream, "b")
    async with running(make_worker(store, notifier, held_b, sink_b, owner="b")):
        await until(lambda: sink_b.accepted_seqs() == seqs, "b delivering again: at least once")
        await until(lambda: _position(store, stream, seqs[-1]), "b's position recorded")


async def _claim_has(store: Store, owner: str, stream: LogStream) -> bool:
    held = await store.claim_streams(owner, LONG_MS, 10)
    return any(s.stream_id == stream.stream_id for s in held)


async def test_a_failure_that_cannot_be_recorded_for_want_of_the_lease_stops_the_worker(
    store: Store, notifier: Notifier
) -> None:
    await commit(store, notifier, 2, "e")
    stream = await new_stream(store)
    held = {s.stream_id: s for s in await store.claim_streams("a", 100, 10)}[stream.stream_id]
    sink = ScriptedSink(failed(), failed(), failed())
    sink.gate.clear()
    async with running(make_worker(store, notifier, held, sink, owner="a")) as worker:
        await until(lambda: sink.sending.is_set(), "the first send")
        await until(lambda: _claim_has(store, "b", stream), "b's claim")
        sink.gate.set()
        await until(lambda: worker.task is not None and worker.task.done(), "the worker stopping")
    assert len(sink.sent) == 1  # not sent again by a worker without the lease
    assert (await stored(store, stream)).failures == 0


async def test_stop_abandons_a_batch_on_its_way_and_closes_the_sink(
    store: Store, notifier: Notifier
) -> None:
    await commit(store, notifier, 2, "e")
    stream = await claimed(store, await new_stream(store))
    sink = ScriptedSink()
    sink.gate.clear()
    worker = make_worker(store, notifier, stream, sink)
    worker.start()
    await until(lambda: sink.sending.is_set(), "the send")
    await worker.stop()
    assert sink.accepted == []
    assert sink.closed == 1
    assert (await stored(store, stream)).delivered_seq is None


# -- the deliveries of one process ---------------------------------------------------------


def make_deliveries(store: Store, notifier: Notifier, lease_seconds: float = 3.0) -> Deliveries:
    return Deliveries(
        store,
        notifier,
        Metrics(),
        lease_seconds=lease_seconds,
        timeout=TIMEOUT,
        batch_events=4,
        batch_bytes=1 << 20,
        linger=0.0,
        backoff_max=1,
    )


@contextlib.contextmanager
def receiving() -> Iterator[Receiver]:
    with Receiver() as receiver:
        yield receiver


def received_seqs(receiver: Receiver) -> list[int]:
    return [int(e["seq"]) for request in list(receiver.requests) for e in _events(request.body)]


def _events(body: bytes) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = orjson.loads(body)["events"]
    return events


async def test_deliveries_run_the_held_streams_and_follow_pause_resume_and_delete(
    store: Store, notifier: Notifier
) -> None:
    with receiving() as receiver:
        stream = await new_stream(store, destination=webhook(receiver.url + "/hook"))
        deliveries = make_deliveries(store, notifier)
        deliveries.start()
        try:
            first = await commit(store, notifier, 6, "first")
            await until(lambda: received_seqs(receiver) == first, "the first events")
            # Recorded too: a worker stopped between the two would send them again, rightly.
            await until(lambda: _position(store, stream, first[-1]), "their delivery recorded")
            assert list(deliveries.workers) == [stream.stream_id]

            current = await stored(store, stream)
            paused = dataclasses.replace(current, paused=True, updated_us=times.now_us())
            assert await store.update_stream(paused)
            await deliveries.changed()
            assert deliveries.workers == {}  # stopped by the time the change is followed
            during = await commit(store, notifier, 3, "during")
            await asyncio.sleep(QUIET)
            assert received_seqs(receiver) == first

            resumed = dataclasses.replace(paused, paused=False, updated_us=times.now_us())
            assert await store.update_stream(resumed)
            await deliveries.changed()
            assert list(deliveries.workers) == [stream.stream_id]
            await until(
                lambda: received_seqs(receiver) == first + during, "resumed where it stopped"
            )
            await until(lambda: _position(store, stream, during[-1]), "their delivery recorded")

            assert await store.delete_stream(TENANT, stream.stream_id)
            await deliveries.changed()
            assert deliveries.workers == {}
            await commit(store, notifier, 3, "after")
            await asyncio.sleep(QUIET)
            assert received_seqs(receiver) == first + during
        finally:
            await deliveries.close()


async def test_one_holder_at_a_time_and_a_closing_holder_hands_over_at_once(
    store: Store, notifier: Notifier
) -> None:
    with receiving() as receiver:
        stream = await new_stream(store, destination=webhook(receiver.url + "/hook"))
        one, two = make_deliveries(store, notifier), make_deliveries(store, notifier)
        one.start()
        try:
            await until(lambda: stream.stream_id in one.workers, "the first holder")
            two.start()
            seqs = await commit(store, notifier, 5, "a")
            await until(lambda: received_seqs(receiver) == seqs, "delivered by the first")
            await until(lambda: _position(store, stream, seqs[-1]), "and recorded")
            await two.claim()
            assert two.workers == {}
            await one.close()
            seqs += await commit(store, notifier, 5, "b")
            await until(lambda: stream.stream_id in two.workers, "the second takes over")
            await until(lambda: received_seqs(receiver) == seqs, "delivered by the second")
        finally:
            await one.close()
            await two.close()


async def test_a_worker_that_fails_unexpectedly_is_started_again_and_others_go_on(
    store: Store,
    notifier: Notifier,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken = ScriptedSink(RuntimeError("a sink's own bug"))
    fine = ScriptedSink()
    made: list[Sink] = []

    def open_sink(dest: Destination, timeout: float) -> Sink:
        made.append(broken if dest.url.endswith("/broken") else fine)
        return made[-1]

    monkeypatch.setattr(worker_module, "open_sink", open_sink)
    bad = await new_stream(store, destination=webhook("https://example.com/broken"))
    good = await new_stream(store, destination=webhook("https://example.com/fine"))
    deliveries = make_deliveries(store, notifier)
    deliveries.start()
    try:
        seqs = await commit(store, notifier, 3, "e")
        await until(lambda: broken.accepted_seqs() == seqs, "the broken stream, after a restart")
        await until(lambda: fine.accepted_seqs() == seqs, "the other stream")
        await until(lambda: _position(store, bad, seqs[-1]), "its progress recorded")
        more = await commit(store, notifier, 2, "more")
        await until(lambda: fine.accepted_seqs() == seqs + more, "the others going on")
        await until(lambda: broken.accepted_seqs() == seqs + more, "and the restarted one")
        # A sink accepts a batch before its stream's progress is stored.
        await until(lambda: _delivered(store, good, more[-1]), "the other's progress recorded")
    finally:
        await deliveries.close()
    assert "a sink's own bug" in caplog.text
    assert made.count(broken) == 2


class GatedClaims:
    """A store whose claims, once they have read the streams, wait for ``gate`` to return
    (``waiting`` holds what each waiting claim read): a claim overtaken by progress."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.gate = asyncio.Event()
        self.gate.set()
        self.waiting: list[list[LogStream]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def claim_streams(self, owner: str, lease_ms: int, limit: int) -> list[LogStream]:
        held = await self._store.claim_streams(owner, lease_ms, limit)
        if not self.gate.is_set():
            self.waiting.append(held)
            await self.gate.wait()
        return held


async def test_a_changed_stream_goes_on_from_the_progress_recorded_after_the_claim_read_it(
    store: Store, notifier: Notifier
) -> None:
    with receiving() as receiver:
        stream = await new_stream(store, destination=webhook(receiver.url + "/hook"))
        gated = GatedClaims(store)
        deliveries = make_deliveries(cast(Store, gated), notifier, lease_seconds=60.0)
        deliveries.start()
        try:
            seqs = await commit(store, notifier, 3, "a")
            await until(lambda: _position(store, stream, seqs[-1]), "the first events")
            gated.gate.clear()
            current = await stored(store, stream)
            renamed = dataclasses.replace(current, name="renamed", updated_us=times.now_us())
            assert await store.update_stream(renamed)
            changing = asyncio.create_task(deliveries.changed())
            await until(lambda: bool(gated.waiting), "a claim that read the streams")
            assert gated.waiting[-1][0].position == seqs[-1]
            # The old worker goes on meanwhile: progress the claim did not see.
            seqs += await commit(store, notifier, 3, "b")
            await until(lambda: _position(store, stream, seqs[-1]), "progress after the read")
            gated.gate.set()
            await changing
            await until(
                lambda: _worker_of(deliveries, stream, "renamed"), "a worker for the new name"
            )
            seqs += await commit(store, notifier, 2, "c")
            await until(lambda: _position(store, stream, seqs[-1]), "the last events")
        finally:
            await deliveries.close()
    assert received_seqs(receiver) == seqs  # each once: nothing sent again


def _worker_of(deliveries: Deliveries, stream: LogStream, name: str) -> bool:
    worker = deliveries.workers.get(stream.stream_id)
    return worker is not None and worker.stream.name == name


async def test_a_pause_is_followed_here_before_the_change_returns_however_slow_the_claim(
    store: Store, notifier: Notifier
) -> None:
    with receiving() as receiver:
        stream = await new_stream(store, destination=webhook(receiver.url + "/hook"))
        gated = GatedClaims(store)
        deliveries = make_deliveries(cast(Store, gated), notifier)
        deliveries.start()
        try:
            first = await commit(store, notifier, 3, "a")
            await until(lambda: _position(store, stream, first[-1]), "the first events")
            gated.gate.clear()  # a busy database: the claim takes its time
            current = await stored(store, stream)
            paused = dataclasses.replace(current, paused=True, updated_us=times.now_us())
            assert await store.update_stream(paused)
            changing = asyncio.create_task(deliveries.changed())
            await until(lambda: bool(gated.waiting), "a claim under way")
            await asyncio.sleep(0.05)
            assert not changing.done()  # the change is not answered before it is followed
            gated.gate.set()
            await changing
            assert deliveries.workers == {}
            await commit(store, notifier, 3, "b")  # after the answer: never sent
            await asyncio.sleep(QUIET)
            assert received_seqs(receiver) == first
        finally:
            await deliveries.close()


async def test_a_change_after_close_starts_nothing(store: Store, notifier: Notifier) -> None:
    await new_stream(store)
    deliveries = make_deliveries(store, notifier)
    deliveries.start()
    await until(lambda: bool(deliveries.workers), "the stream held")
    await deliveries.close()
    await deliveries.changed()
    assert deliveries.workers == {}
    assert len(await store.claim_streams("other", LONG_MS, 10)) == 1


async def test_close_gives_the_leases_back(store: Store, notifier: Notifier) -> None:
    stream = await new_stream(store)
    deliveries = make_deliveries(store, notifier, lease_seconds=600.0)
    await deliveries.claim()
    assert list(deliveries.workers) == [stream.stream_id]
    assert await store.claim_streams("other", LONG_MS, 10) == []
    await deliveries.close()
    assert deliveries.workers == {}
    assert [s.stream_id for s in await store.claim_streams("other", LONG_MS, 10)] == [
        stream.stream_id
    ]


def test_owner_names_differ_between_instances() -> None:
    assert deliveries_module.owner_name() != deliveries_module.owner_name()

"""The delivery worker: one per log stream this process holds, pushing its events in order.

Loop: wait until the tenant's durable head passes the stream's position (``Notifier.wait``);
read the next batch of matching events after the position and below the head (one query, in
ascending seq, bounded in events and bytes); send it through the stream's sink until it is
accepted; record the new position in the store; repeat. So delivery is:

* in seq order and never skipping: a batch is sent again, unchanged, until it is accepted,
  and the position moves only past what was accepted (or did not match);
* at least once: a batch accepted by the destination but whose position was not recorded
  (a crash, a lost lease) is sent again by whoever delivers next; receivers drop repeats by
  the events' ``id`` (or ``seq``);
* of durable events only: nothing at or past the durable head is read.

Failures are retried for as long as it takes, after an exponential backoff with jitter (from
one second, doubling, up to ``backoff_max`` seconds, each wait drawn between half and all of
it), or after what the destination's ``Retry-After`` asked (but never less than the backoff's
first step, so that ``Retry-After: 0`` makes no tight loop). Every failure is counted, and its
message kept, in the store and in the metrics.

A worker sends only while its lease has more than a send's timeout (and a margin) left, so
that its lease cannot run out, and another process take over, while a batch is on its way.
The manager (``deliveries``) renews the lease and tells the worker until when it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Sequence

import orjson

from auditlog.errors import Unavailable
from auditlog.metrics import Metrics
from auditlog.model import times
from auditlog.model.query import Query
from auditlog.model.selection import parse_filter
from auditlog.model.streams import LogStream
from auditlog.service.delivery.destinations import Destination
from auditlog.service.delivery.sink import Batch, DeliveryFailed, Sink, open_sink
from auditlog.service.notifier import Notifier
from auditlog.storage.base import Store

log = logging.getLogger("auditlog.delivery")

#: Seconds of lease a send must leave beyond its own timeout.
LEASE_MARGIN = 1.0
#: Seconds between records of progress over events that matched nothing.
_IDLE_RECORD_SECONDS = 1.0
#: Longest wait a Retry-After may ask for.
_RETRY_AFTER_MAX = 3600.0


class LeaseLost(Exception):
    """The store refused to record progress: another process holds the stream now."""


class Backoff:
    """Waits between retries: doubling from ``base`` up to ``cap``, each drawn between half
    and all of it (so that many streams failing at once do not retry in step)."""

    def __init__(self, cap: float, base: float = 1.0, rng: random.Random | None = None) -> None:
        self.cap = cap
        self.base = base
        self.failures = 0
        self._rng = rng or random.Random()

    def next(self, retry_after: float | None = None) -> float:
        """The wait before the next attempt; ``retry_after`` (the destination's) wins, but
        is never taken for less than the backoff's first step: a destination answering
        ``Retry-After: 0`` (or a date gone by) must not be sent the batch again at once, over
        and over, with a failure recorded in the store each time."""
        self.failures += 1
        if retry_after is not None:
            asked = min(max(retry_after, 0.0), _RETRY_AFTER_MAX) * self._rng.uniform(1.0, 1.1)
            return max(asked, self.base * self._rng.uniform(0.5, 1.0))
        ceiling = min(self.cap, self.base * float(2 ** min(self.failures - 1, 30)))
        return ceiling * self._rng.uniform(0.5, 1.0)

    def reset(self) -> None:
        self.failures = 0


class StreamWorker:
    """Delivers one stream while this process holds its lease (``lease_until``, monotonic)."""

    def __init__(
        self,
        stream: LogStream,
        destination: Destination,
        owner: str,
        store: Store,
        notifier: Notifier,
        metrics: Metrics,
        *,
        timeout: float,
        batch_events: int,
        batch_bytes: int,
        linger: float,
        backoff_max: float,
        sink: Sink | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.stream = stream
        self.owner = owner
        self.lease_until = 0.0
        self._store = store
        self._notifier = notifier
        self._metrics = metrics
        self._timeout = timeout
        self._batch_events = batch_events
        self._batch_bytes = batch_bytes
        self._linger = linger
        self._backoff = backoff if backoff is not None else Backoff(backoff_max)
        self._sink = sink if sink is not None else open_sink(destination, timeout)
        self._query, _ = parse_filter(orjson.loads(stream.filter))
        self._position = stream.position
        self._recorded = stream.position
        self._recorded_at = time.monotonic()
        self._labels = (stream.stream_id, destination.kind)
        self._lease_renewed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    @property
    def position(self) -> int:
        return self._position

    def renewed(self, until: float) -> None:
        """The manager renewed the lease: it holds until ``until`` (``time.monotonic``)."""
        self.lease_until = until
        self._lease_renewed.set()

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(
            self._guarded(), name=f"auditlog-stream-{self.stream.stream_id}"
        )

    async def stop(self) -> None:
        """Stop delivering (a batch on its way is abandoned: it will be sent again)."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, LeaseLost):
                await self.task
        await self._sink.close()

    async def _guarded(self) -> None:
        try:
            await self.run()
        except LeaseLost:
            log.info("stream %s: lease lost; another process delivers it", self.stream.stream_id)
        except Exception:
            # A bug (a sink that broke its contract, say): logged with its traceback here,
            # since no one awaits this task for its result; the manager sees the task done
            # and starts the stream afresh from its stored position at its next claim.
            log.exception(
                "stream %s: delivery stopped by an unexpected error; it starts again",
                self.stream.stream_id,
            )

    async def run(self) -> None:
        tenant = self.stream.tenant
        while True:
            try:
                head = await self._notifier.wait(tenant, self._position + 1, self._timeout)
            except Unavailable as exc:
                log.warning("stream %s: %s", self.stream.stream_id, exc)
                await asyncio.sleep(1.0)
                continue
            self._lag(head)
            if head <= self._position + 1:
                await self._record_idle()
                continue
            if head - (self._position + 1) < self._batch_events and self._linger > 0:
                await asyncio.sleep(self._linger)  # let a few more commits join the batch
                head = max(head, self._notifier.known_head(tenant) or head)
            events, reached = await self._read(head)
            if events:
                await self._deliver(events)
            self._position = reached
            if events:
                await self._record(len(events))
            else:
                await self._record_idle()
            self._lag(head)

    async def _read(self, head: int) -> tuple[list[tuple[int, bytes]], int]:
        """The next batch of matching events below ``head``, and the position it reaches."""
        query = Query(
            conditions=self._query.conditions,
            since_us=self._query.since_us,
            until_us=self._query.until_us,
            text=self._query.text,
            order="asc",
            limit=self._batch_events,
            after_seq=self._position,
            before_seq=head,
        )
        while True:
            try:
                page = await self._store.query(self.stream.tenant, query)
                break
            except Unavailable as exc:
                log.warning("stream %s: reading events: %s", self.stream.stream_id, exc)
                await asyncio.sleep(1.0)
        events: list[tuple[int, bytes]] = []
        size = 0
        for body in page.bodies:
            if events and size + len(body) > self._batch_bytes:
                return events, events[-1][0]
            events.append((int(orjson.loads(body)["seq"]), body))
            size += len(body)
        if page.more and page.last_seq is not None:
            return events, page.last_seq
        return events, head - 1

    async def _deliver(self, events: Sequence[tuple[int, bytes]]) -> None:
        batch = Batch(self.stream.stream_id, events)
        while True:
            await self._wait_for_lease()
            try:
                await self._sink.send(batch)
            except DeliveryFailed as failure:
                await self._failed(failure)
                continue
            self._backoff.reset()
            now = time.time()
            self._metrics.stream_delivered.labels(*self._labels).inc(len(events))
            self._metrics.stream_last_success.labels(*self._labels).set(now)
            self._metrics.stream_failing.labels(*self._labels).set(0)
            return

    async def _failed(self, failure: DeliveryFailed) -> None:
        stream_id = self.stream.stream_id
        log.warning("stream %s: delivery failed: %s", stream_id, failure.message)
        self._metrics.stream_failures.labels(*self._labels, failure.reason).inc()
        self._metrics.stream_last_error.labels(*self._labels).set(time.time())
        self._metrics.stream_failing.labels(*self._labels).set(1)
        try:
            kept = await self._store.record_failure(
                self.stream.tenant, stream_id, self.owner, failure.message, times.now_us()
            )
        except Unavailable as exc:
            log.warning("stream %s: recording a failure: %s", stream_id, exc)
        else:
            if not kept:
                raise LeaseLost
        await asyncio.sleep(self._backoff.next(failure.retry_after))

    async def _wait_for_lease(self) -> None:
        """Return once the lease has a send's timeout (and a margin) left."""
        while time.monotonic() + self._timeout + LEASE_MARGIN > self.lease_until:
            self._lease_renewed.clear()
            await self._lease_renewed.wait()

    async def _record(self, delivered: int) -> None:
        while True:
            try:
                stored = await self._store.record_delivery(
                    self.stream.tenant,
                    self.stream.stream_id,
                    self.owner,
                    self._position,
                    delivered,
                    times.now_us(),
                )
                break
            except Unavailable as exc:
                # Delivered but not recorded: kept trying, since giving up would deliver the
                # batch again after a restart (allowed, but avoidable).
                log.warning("stream %s: recording progress: %s", self.stream.stream_id, exc)
                await asyncio.sleep(1.0)
        if not stored:
            raise LeaseLost
        self._recorded = self._position
        self._recorded_at = time.monotonic()

    async def _record_idle(self) -> None:
        """Record progress over events that matched nothing, now and then (not per commit)."""
        if self._position == self._recorded:
            return
        if time.monotonic() - self._recorded_at < _IDLE_RECORD_SECONDS:
            return
        await self._record(0)

    def _lag(self, head: int) -> None:
        self._metrics.stream_lag.labels(*self._labels).set(max(0, head - 1 - self._position))

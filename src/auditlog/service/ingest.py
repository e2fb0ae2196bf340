"""The write path: one group-commit writer between the HTTP handlers and the store.

Handlers validate events and ``submit`` them; the writer task takes whatever has queued (up to
``commit_max_events``, but never splitting a request) and hands it to ``Store.append`` as one
transaction. Each handler's future resolves only after that transaction is durable, so the
answer to a request always follows its commit. While one commit runs the next group gathers, so
the more load arrives the bigger each commit gets and the fewer flushes each event costs.

Before the writer takes a group while none commits, it lets the requests the event loop is
already reading join it (``_gather``): it waits while each turn of the loop brings new
submissions, at most ``GATHER_SECONDS``, and not at all once ``EAGER_EVENTS`` wait. A burst of
requests then commits as one group, not as the few of the first turn and the rest behind them.
Under 64 connections of single events this made groups of 25 events instead of 16 on two
PostgreSQL servers, whose CPU per event fell by about a tenth (each commit has a fixed cost
there), and of 48 instead of 29 on SQLite (bench/RESULTS.md §21). A lone request waits two
turns of an idle loop.

A second group is handed to the store while one commits (``PIPELINE``) only once at least
``EAGER_EVENTS`` events wait: then it is already at the store when the commit ends, so the
store never sits idle while the event loop gets round to collecting the result. With fewer
waiting, they wait for the commit to end and gather more: a group of 10 single events costs
SQLite about 34 µs of CPU an event, one of 50 about 14 (bench/RESULTS.md §15), and handing
over every small group at once had kept single-event groups smaller (22 events on average
under 64 connections, against 32 now). Stores commit
groups in the order they were handed over, so seqs still follow the order of the groups.

The queue is bounded by events: past ``queue_max_events`` a submit fails at once with
``Overloaded`` (503 + Retry-After) rather than holding memory. While the queue is full, ``admit``
refuses a request before its body is even read: under a flood, reading, parsing and validating
requests only to refuse them took the event loop from the commits (bench/overload.py: 1.7k
events/s committed and refusals after 4 s, instead of refusals in milliseconds). ``close`` drains: it stops taking
new work, commits everything queued, resolves every waiter, then returns.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence

from auditlog.errors import Overloaded, StorageError, Unavailable
from auditlog.metrics import Metrics
from auditlog.storage.base import AppendOutcome, AppendRequest, Store

log = logging.getLogger("auditlog.ingest")

PIPELINE = 2
#: Events waiting from which a second group is handed over while one commits.
EAGER_EVENTS = 256
#: How long the writer lets arriving requests join a group, at most (see ``_gather``).
GATHER_SECONDS = 0.002
#: Turns of the event loop without a new submission after which the group is taken.
GATHER_CALM_TURNS = 2


class Ingestor:
    """The group-commit queue and its single writer task."""

    def __init__(
        self,
        store: Store,
        metrics: Metrics,
        *,
        queue_max_events: int,
        commit_max_events: int,
        retry_after: int,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._queue_max = queue_max_events
        self._commit_max = commit_max_events
        self._retry_after = retry_after
        self._queue: deque[tuple[AppendRequest, asyncio.Future[AppendOutcome]]] = deque()
        self._queued_events = 0
        self._waiting_events = 0  # in the queue, not yet taken into a group
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        #: Told of the events each durable commit created, per tenant in seq order (the
        #: notifier, which feeds live streams and wakes delivery workers).
        self.on_commit: Callable[[str, Sequence[tuple[int, bytes]]], None] | None = None

    @property
    def queued_events(self) -> int:
        """Events waiting for (or in) a commit."""
        return self._queued_events

    def start(self) -> None:
        """Start the writer task on the running loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="auditlog-writer")

    def admit(self) -> None:
        """Refuse a write before its body is read when nothing more can be queued now.

        Raises ``Unavailable`` while shutting down and ``Overloaded`` while the queue is full,
        as ``submit`` would; a request admitted may still be refused by ``submit``.
        """
        if self._closing:
            self._metrics.rejected.labels("shutting_down").inc()
            raise Unavailable("the service is shutting down", self._retry_after)
        if self._queued_events >= self._queue_max:
            self._metrics.rejected.labels("queue_full").inc()
            raise Overloaded(
                f"the ingest queue holds {self._queued_events} events; retry shortly",
                self._retry_after,
            )

    async def submit(self, request: AppendRequest) -> AppendOutcome:
        """Queue one request and wait until it is committed (or refused).

        Raises ``Overloaded`` at once when the queue is full, ``Unavailable`` while shutting
        down, and ``StorageError`` when the commit failed (then nothing of it was stored).
        """
        if self._closing:
            self._metrics.rejected.labels("shutting_down").inc()
            raise Unavailable("the service is shutting down", self._retry_after)
        size = len(request.events)
        if self._queued_events and self._queued_events + size > self._queue_max:
            self._metrics.rejected.labels("queue_full").inc()
            raise Overloaded(
                f"the ingest queue holds {self._queued_events} events; retry shortly",
                self._retry_after,
            )
        future: asyncio.Future[AppendOutcome] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_consume)
        self._queue.append((request, future))
        self._queued_events += size
        self._waiting_events += size
        self._metrics.queue_events.set(self._queued_events)
        self._wake.set()
        # If the client goes away, this await is cancelled and so is the future, but the
        # request stays queued and is committed all the same; the writer skips done futures.
        return await future

    def _take_group(self) -> list[tuple[AppendRequest, asyncio.Future[AppendOutcome]]]:
        group = [self._queue.popleft()]
        count = len(group[0][0].events)
        while self._queue and count + len(self._queue[0][0].events) <= self._commit_max:
            item = self._queue.popleft()
            count += len(item[0].events)
            group.append(item)
        self._waiting_events -= count
        return group

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._queue and not self._inflight:
                await self._gather()
                # The submissions that woke it meanwhile are in the queue taken below.
                self._wake.clear()
            while self._queue and (
                not self._inflight
                or (len(self._inflight) < PIPELINE and self._waiting_events >= EAGER_EVENTS)
            ):
                task = loop.create_task(self._commit(self._take_group()))
                self._inflight.add(task)
                task.add_done_callback(self._finished)
            if self._closing and not self._queue and not self._inflight:
                return

    async def _gather(self) -> None:
        """Wait while the event loop's turns bring new submissions (the requests it has read
        and is validating), so that they join the group about to be taken: until
        ``GATHER_CALM_TURNS`` turns in a row bring none, ``EAGER_EVENTS`` wait, the ingestor
        closes, or ``GATHER_SECONDS`` have passed."""
        loop = asyncio.get_running_loop()
        until = loop.time() + GATHER_SECONDS
        seen, calm = self._waiting_events, 0
        while calm < GATHER_CALM_TURNS and seen < EAGER_EVENTS and not self._closing:
            await asyncio.sleep(0)
            if loop.time() >= until:
                return
            if self._waiting_events == seen:
                calm += 1
            else:
                seen, calm = self._waiting_events, 0

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._wake.set()

    async def _commit(
        self, group: list[tuple[AppendRequest, asyncio.Future[AppendOutcome]]]
    ) -> None:
        requests = [request for request, _ in group]
        count = sum(len(r.events) for r in requests)
        started = time.perf_counter()
        try:
            outcomes = await self._store.append(requests)
        except Unavailable as exc:
            log.warning("group commit of %d events failed: %s", count, exc.detail)
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
        except Exception as exc:  # a bug, not a client's doing: fail the group, keep serving
            log.exception("group commit of %d events failed unexpectedly", count)
            error = StorageError(f"storage failed: {type(exc).__name__}", self._retry_after)
            for _, future in group:
                if not future.done():
                    future.set_exception(error)
        else:
            self._metrics.commit_seconds.observe(time.perf_counter() - started)
            self._metrics.commit_events.observe(count)
            created = 0
            new: dict[str, list[tuple[int, bytes]]] = {}
            for (request, future), outcome in zip(group, outcomes, strict=True):
                if isinstance(outcome, tuple):
                    for appended in outcome:
                        if appended.created:
                            created += 1
                            new.setdefault(request.tenant, []).append((appended.seq, appended.body))
                if not future.done():
                    future.set_result(outcome)
            self._metrics.events_ingested.inc(created)
            if self.on_commit is not None:
                for tenant, events in new.items():
                    events.sort()
                    self.on_commit(tenant, events)
        finally:
            self._queued_events -= count
            self._metrics.queue_events.set(self._queued_events)

    async def close(self) -> None:
        """Refuse new work, commit everything queued, and stop the writer."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None


def _consume(future: asyncio.Future[AppendOutcome]) -> None:
    """Mark a waiter's failure as seen even when its client left before hearing it."""
    if not future.cancelled():
        future.exception()

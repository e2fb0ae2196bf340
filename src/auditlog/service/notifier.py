"""The notifier: one per process, it knows how far each tenant's log is durably committed and
hands new events to the live streams, so that no reader polls the store on its own.

Heads
    ``head(tenant)`` is the size of the tenant's log counting only durable commits: every
    event with a smaller seq survives a crash. It advances from three sources:

    * this process's group commits (``committed``), called by the ingest writer once a commit
      is durable, with the events it created;
    * other processes (PostgreSQL): the store tells of their durable heads as they announce
      them (``Store.watch_heads``), and this process announces its own (``announce_heads``),
      a moment after they advance, in one message for every tenant that moved;
    * a slow poll of the store (``Store.durable_log_sizes``), which catches what no message
      told: a command writing directly to the store, a message lost while a connection was
      down.

    A head only grows. Seqs are gap-free in commit order, so when a commit of seq N is durable
    every event below N is too (each store says why in its own terms): a head is a plain
    number, never a set.

Waiting
    ``wait(tenant, beyond, timeout)`` returns as soon as the head passes ``beyond``: the
    delivery workers sleep on it when they have caught up.

Live feeds
    ``subscribe(tenant, query)`` gives a ``Subscription`` that receives, in seq order, every
    event of the tenant from its ``start`` on that matches the query, until it is closed. Each
    tenant with subscribers has one feed task that reads each new event once (from the bodies
    the commit handed over, else from the store) and offers it to every subscriber; a
    subscriber's queue is bounded in bytes, and one that falls further behind (more than its
    limit arrives while it is busy with what it took before) is cut off (``overflowed``)
    rather than buffered without bound. Only durable events are fed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import orjson

from auditlog.errors import Unavailable
from auditlog.model import times
from auditlog.model.matching import event_matches
from auditlog.model.query import Query
from auditlog.storage.base import Store

log = logging.getLogger("auditlog.notifier")

#: Envelope paths whose stored values are always strings: a subscriber with an equality on
#: one of them is offered only the events whose value is among its values.
_KEYED_PATHS: tuple[tuple[str, ...], ...] = (
    ("type",),
    ("actor", "id"),
    ("subject", "id"),
    ("source",),
    ("outcome",),
    ("id",),
)
#: Most events of one commit a feed keeps for its subscribers before it reads them back from
#: the store instead (when the feed task falls behind the commits).
_PENDING_EVENTS = 50_000
#: Events a feed reads from the store at once.
_READ_CHUNK = 1000
#: Seconds between announcements of this process's heads to the others.
_ANNOUNCE_DELAY = 0.005


class Subscription:
    """The live events of one reader: a bounded queue that the tenant's feed fills.

    ``start`` is the first seq the feed offers it; earlier events are the reader's to read from
    the store. ``overflowed`` is set (and the queue emptied) when more than ``limit_bytes``
    were queued while the reader was away (busy with what it took before); it then receives
    nothing more. A reader waiting in ``next_events`` takes what comes whole, however large:
    a commit larger than the limit does not cut off a reader that keeps up. It takes it
    before the feed offers more (the feed lets the loop run between its slices, and the
    reader was woken first), so what it holds is at most the limit or one slice of the feed.
    """

    def __init__(self, tenant: str, query: Query, start: int, limit_bytes: int) -> None:
        self.tenant = tenant
        self.query = query
        self.start = start
        self.limit_bytes = limit_bytes
        self.overflowed = False
        self.closed = False
        #: Called once when the subscription overflows.
        self.on_overflow: Callable[[], None] | None = None
        self._queue: deque[tuple[int, bytes]] = deque()
        self._bytes = 0
        self._ready = asyncio.Event()
        self._waiting = False  # the reader is in next_events
        self._needs_time = query.since_us is not None or query.until_us is not None
        #: A query without conditions: every event matches, none need be parsed.
        self.match_all = not (query.conditions or query.text or self._needs_time)
        #: Its only condition is an equality on a keyed path, which the feed's index of
        #: values decides: every event the index offers it matches (set by the feed).
        self.decided_by_key = False

    def matches(self, event: dict[str, Any]) -> bool:
        time_us = times.parse_rfc3339(event["time"]) if self._needs_time else 0
        return event_matches(event, time_us, self.query)

    def offer(self, seq: int, body: bytes) -> None:
        if self.overflowed or self.closed:
            return
        self._bytes += len(body)
        if self._bytes > self.limit_bytes and not self._waiting:
            self.overflowed = True
            self._queue.clear()
            self._bytes = 0
            if self.on_overflow is not None:
                self.on_overflow()
        else:
            self._queue.append((seq, body))
        self._ready.set()

    def wake(self) -> None:
        """Return from ``next_events`` now (its reader has something else to see to)."""
        self._ready.set()

    async def next_events(self, timeout: float) -> list[tuple[int, bytes]]:
        """The events queued, waiting up to ``timeout`` seconds for one; ``[]`` if none came
        (or the subscription overflowed: check ``overflowed``)."""
        if not self._queue and not self.overflowed:
            self._ready.clear()
            self._waiting = True
            try:
                with contextlib.suppress(TimeoutError):
                    # asyncio.timeout, not wait_for: in 3.11 wait_for can swallow a
                    # cancellation that meets the event being set, and a cancelled reader
                    # would go on.
                    async with asyncio.timeout(timeout):
                        await self._ready.wait()
            finally:
                self._waiting = False
        out = list(self._queue)
        self._queue.clear()
        self._bytes = 0
        return out

    @property
    def queued_bytes(self) -> int:
        return self._bytes


class _Feed:
    """The subscribers of one tenant and the task that offers them its new events in order."""

    def __init__(self, tenant: str, next_seq: int) -> None:
        self.tenant = tenant
        self.next = next_seq  # the next seq to offer
        self.target = next_seq  # the durable head: offer up to here
        self.pending: dict[int, bytes] = {}  # bodies handed over by this process's commits
        self.general: list[Subscription] = []
        self.keyed: dict[tuple[str, ...], dict[str, list[Subscription]]] = {}
        self.count = 0
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def add(self, sub: Subscription) -> None:
        self.count += 1
        for cond in sub.query.conditions:
            if cond.path in _KEYED_PATHS and cond.op in ("eq", "in"):
                by_value = self.keyed.setdefault(cond.path, {})
                for value in {v.raw for v in cond.values}:
                    by_value.setdefault(value, []).append(sub)
                query = sub.query
                sub.decided_by_key = len(query.conditions) == 1 and not (
                    query.text or query.since_us is not None or query.until_us is not None
                )
                return
        self.general.append(sub)

    def remove(self, sub: Subscription) -> None:
        self.count -= 1
        if sub in self.general:
            self.general.remove(sub)
            return
        for path, by_value in list(self.keyed.items()):
            for value, subs in list(by_value.items()):
                if sub in subs:
                    subs.remove(sub)
                    if not subs:
                        del by_value[value]
            if not by_value:
                del self.keyed[path]

    def candidates(self, event: dict[str, Any]) -> Iterable[Subscription]:
        yield from self.general
        for path, by_value in self.keyed.items():
            node: Any = event
            for segment in path:
                node = node.get(segment) if isinstance(node, dict) else None
            if isinstance(node, str):
                yield from by_value.get(node, ())

    def dispatch(self, seq: int, body: bytes) -> None:
        """Offer one event to every subscriber it matches (parsed once, only if needed)."""
        event: dict[str, Any] | None = None
        subs: Iterable[Subscription] = self.general
        if self.keyed:
            event = orjson.loads(body)
            subs = list(self.candidates(event))
        for sub in subs:
            if sub.start > seq:
                continue
            if not (sub.match_all or sub.decided_by_key):
                if event is None:
                    event = orjson.loads(body)
                if not sub.matches(event):
                    continue
            sub.offer(seq, body)


class Notifier:
    """Durable heads per tenant, waiting on them, and live feeds of new events.

    ``poll_seconds``: how often the store is asked for every durable head, to learn what no
    message told.
    """

    def __init__(self, store: Store, poll_seconds: float = 1.0) -> None:
        self._store = store
        self._poll_seconds = poll_seconds
        self._heads: dict[str, int] = {}
        self._waiters: dict[str, asyncio.Event] = {}
        self._feeds: dict[str, _Feed] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._announce: dict[str, int] = {}
        self._announce_wake = asyncio.Event()
        self._refreshing: asyncio.Task[None] | None = None
        self._closed = False

    # -- life -------------------------------------------------------------------------

    async def start(self) -> None:
        """Learn every durable head, listen for other processes' heads, and start polling."""
        self._closed = False
        with contextlib.suppress(Unavailable):
            self.advance(await self._store.durable_log_sizes())
        self._store.watch_heads(self.advance)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._poll(), name="auditlog-notifier-poll"),
            loop.create_task(self._announcer(), name="auditlog-notifier-announce"),
        ]

    async def close(self) -> None:
        """Stop every task; subscriptions still open receive nothing more."""
        self._closed = True
        tasks = [*self._tasks, *(f.task for f in self._feeds.values() if f.task is not None)]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        self._feeds.clear()
        for event in self._waiters.values():
            event.set()
        self._waiters.clear()

    # -- heads ------------------------------------------------------------------------

    def known_head(self, tenant: str) -> int | None:
        """The tenant's durable head as last learned, without asking the store."""
        return self._heads.get(tenant)

    async def head(self, tenant: str) -> int:
        """The tenant's durable head; asks the store when this process has not learned it."""
        known = self._heads.get(tenant)
        if known is not None:
            return known
        sizes = await self._store.durable_log_sizes(tenant)
        self.advance(sizes)
        return self._heads.get(tenant, 0)

    def committed(self, tenant: str, events: Sequence[tuple[int, bytes]]) -> None:
        """This process durably committed ``events`` (seq and stored bytes, in seq order) to
        the tenant's log: every event below the last one is durable too."""
        if not events:
            return
        feed = self._feeds.get(tenant)
        if feed is not None and len(feed.pending) < _PENDING_EVENTS:
            for seq, body in events:
                if seq >= feed.next:
                    feed.pending[seq] = body
        size = events[-1][0] + 1
        if self._raise(tenant, size):
            self._announce[tenant] = max(self._announce.get(tenant, 0), size)
            self._announce_wake.set()

    def advance(self, heads: Mapping[str, int]) -> None:
        """Durable heads learned from elsewhere (the store, other processes)."""
        for tenant, size in heads.items():
            self._raise(tenant, size)

    def _raise(self, tenant: str, size: int) -> bool:
        if size <= self._heads.get(tenant, 0) and tenant in self._heads:
            return False
        self._heads[tenant] = size
        waiter = self._waiters.pop(tenant, None)
        if waiter is not None:
            waiter.set()
        feed = self._feeds.get(tenant)
        if feed is not None and size > feed.target:
            feed.target = size
            feed.wake.set()
        return True

    async def wait(self, tenant: str, beyond: int, timeout: float) -> int:
        """The tenant's head once it is more than ``beyond``, or after ``timeout`` seconds."""
        head = await self.head(tenant)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                # Every rise of the head wakes the waiters: one that is not yet past
                # ``beyond`` waits again.
                while head <= beyond and not self._closed:
                    await self._waiters.setdefault(tenant, asyncio.Event()).wait()
                    head = self._heads.get(tenant, 0)
        return self._heads.get(tenant, 0)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._poll_seconds)
            try:
                self.advance(await self._store.durable_log_sizes())
            except Unavailable as exc:
                log.warning("reading the log heads: %s; trying again", exc)

    async def _announcer(self) -> None:
        while True:
            await self._announce_wake.wait()
            await asyncio.sleep(_ANNOUNCE_DELAY)  # one message for the commits of a moment
            self._announce_wake.clear()
            heads, self._announce = self._announce, {}
            try:
                await self._store.announce_heads(heads)
            except Unavailable as exc:
                log.warning("announcing the log heads: %s (the others' poll will see them)", exc)

    # -- live feeds -------------------------------------------------------------------

    async def subscribe(self, tenant: str, query: Query, limit_bytes: int) -> Subscription:
        """A subscription to the tenant's events matching ``query`` from the current durable
        head on (``Subscription.start``)."""
        feed = self._feeds.get(tenant)
        if feed is None:
            head = await self.head(tenant)
            feed = self._feeds.get(tenant)  # another subscriber may have made it meanwhile
            if feed is None:
                feed = _Feed(tenant, head)
                feed.target = max(head, self._heads.get(tenant, 0))
                self._feeds[tenant] = feed
                feed.task = asyncio.get_running_loop().create_task(
                    self._run_feed(feed), name=f"auditlog-feed-{tenant}"
                )
                if feed.target > feed.next:
                    feed.wake.set()
        sub = Subscription(tenant, query, feed.next, limit_bytes)
        feed.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop feeding ``sub``; the tenant's feed stops with its last subscriber."""
        sub.closed = True
        feed = self._feeds.get(sub.tenant)
        if feed is None:
            return
        feed.remove(sub)
        if feed.count == 0:
            del self._feeds[sub.tenant]
            if feed.task is not None:
                feed.task.cancel()

    async def _run_feed(self, feed: _Feed) -> None:
        while True:
            await feed.wake.wait()
            feed.wake.clear()
            while feed.next < feed.target:
                try:
                    await self._feed_some(feed)
                except Unavailable as exc:
                    log.warning("reading new events for live streams: %s; retrying", exc)
                    await asyncio.sleep(1.0)
                # Let the loop serve others between chunks of a long catch-up.
                await asyncio.sleep(0)

    async def _feed_some(self, feed: _Feed) -> None:
        started = time.perf_counter()
        body = feed.pending.pop(feed.next, None)
        if body is not None:
            while body is not None and feed.next < feed.target:
                feed.dispatch(feed.next, body)
                feed.next += 1
                if time.perf_counter() - started > 0.05:
                    break
                body = feed.pending.pop(feed.next, None)
            return
        # Not handed over by this process (another one, or a command, committed it): read it.
        want = min(feed.target - feed.next, _READ_CHUNK)
        leaves = await self._store.read_leaves(feed.tenant, feed.next, want)
        before = feed.next
        for seq, stored in leaves:
            if seq != feed.next:
                break
            feed.dispatch(seq, stored)
            feed.next += 1
        if feed.next == before:
            # The head says the event is committed, yet it cannot be read: a damaged log (see
            # auditlog verify). Never skip it; look again in a while.
            log.error(
                "live streams of %s wait for seq %d, which cannot be read", feed.tenant, before
            )
            await asyncio.sleep(1.0)
        for seq in [s for s in feed.pending if s < feed.next]:
            del feed.pending[seq]

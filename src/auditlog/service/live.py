"""Live tail (API.md §10): a tenant's matching events as Server-Sent Events, as they commit.

A stream begins after a position: the reader's ``Last-Event-ID`` (or ``after_seq``), else the
durable head when it connects. It first replays what the reader missed from the store, page by
page through the query indexes, then subscribes to the notifier's live feed of the tenant and
replays the few events between where it stopped and where the feed starts
(``Subscription.start``): the replay ends at that seq exactly and the feed begins there, so the
seam neither loses nor repeats an event. Events the reader already has (a ``Last-Event-ID``
ahead of the feed) are skipped. Only durable events are read or fed. A position before the
tenant's horizon (its events pruned by retention, API.md §14) replays from the first kept
event, after a comment ``: pruned before seq H``.

A reader that falls more than ``buffer_bytes`` behind is cut off: its subscription stops
filling and the response ends (after a last comment, if the reader still reads at all); it
reconnects with ``Last-Event-ID`` and loses nothing. Behind means events arriving while the
reader is still busy sending what it took before: one that waits for events takes a commit
whole, however large (``Subscription``). A comment line goes out whenever nothing
else has for ``keepalive`` seconds. Open streams are capped per credential and per process
(429 with ``Retry-After`` past either).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass

import orjson

from auditlog.errors import BadRequest, RateLimited, Unavailable
from auditlog.metrics import Metrics
from auditlog.model.credentials import EVENTS_READ, Credential
from auditlog.model.query import Query
from auditlog.model.selection import parse_selection, parse_seq
from auditlog.service.auth import bind, require
from auditlog.service.chunks import Chunks
from auditlog.service.notifier import Notifier, Subscription
from auditlog.service.pruned import reaches_below
from auditlog.service.selfaudit import SelfAudit
from auditlog.storage.base import Store

#: Events read from the store per query while replaying: a page and its frames are what a
#: replaying stream holds (at most 200 events of 64 KiB, ~13 MB; ~100 KB for typical events).
REPLAY_PAGE = 200
#: How far behind the head a replay may stop before it subscribes: the rest is replayed
#: after, while the feed's events wait in the subscription's queue.
REPLAY_SEAM = 2000
OPENING = b"retry: 2000\n"
KEEPALIVE = b": keep-alive\n\n"
TOO_SLOW = b": too slow; reconnect with Last-Event-ID to continue\n\n"
CLOSING = b": the server is shutting down; reconnect with Last-Event-ID to continue\n\n"


def pruned_comment(horizon: int) -> bytes:
    """The comment that tells a reader its stream began before the tenant's horizon: the
    events before it are pruned (API.md §14), and the stream goes on from it."""
    return b": pruned before seq %d\n\n" % horizon


def frame(seq: int, body: bytes) -> bytes:
    """One event as an SSE event: its seq as the id, the stored event as the data."""
    return b"id: %d\nevent: audit\ndata: %s\n\n" % (seq, body)


@dataclass(frozen=True, slots=True)
class LiveStream:
    """A live stream opened: its bytes, and the event that cuts off a reader too slow."""

    chunks: Chunks
    abort: asyncio.Event


class LiveStreams:
    """Opens live streams and keeps count of them."""

    def __init__(
        self,
        store: Store,
        notifier: Notifier,
        audit: SelfAudit | None,
        metrics: Metrics,
        *,
        per_credential: int,
        per_process: int,
        buffer_bytes: int,
        keepalive: float,
        retry_after: int = 1,
    ) -> None:
        self._store = store
        self._notifier = notifier
        self._audit = audit
        self._metrics = metrics
        self._per_credential = per_credential
        self._per_process = per_process
        self._buffer_bytes = buffer_bytes
        self._keepalive = keepalive
        self._retry_after = retry_after
        self._open: dict[str, int] = {}
        self.open_count = 0
        self._subscriptions: set[Subscription] = set()
        self._aborts: set[asyncio.Event] = set()
        self._closing = False

    def drain(self) -> None:
        """End every open stream (the server is stopping) and refuse new ones.

        A stream waiting for events ends at once; one whose reader has stopped reading is cut
        off as a reader too slow is (``LiveStream.abort``), else it would hold the shutdown up
        until its graceful timeout.
        """
        self._closing = True
        for sub in self._subscriptions:
            sub.wake()
        for abort in self._aborts:
            abort.set()

    async def open(
        self,
        credential: Credential,
        params: Sequence[tuple[str, str]],
        last_event_id: str | None,
    ) -> LiveStream:
        """Check the request, take a place among the open streams, record the read."""
        require(credential, EVENTS_READ)
        if self._closing:
            raise Unavailable("the server is shutting down", self._retry_after)
        query, _ = parse_selection(params, ("after_seq",))
        query = bind(credential, query)
        after = query.after_seq
        if last_event_id is not None and last_event_id.strip():
            # The header wins: it is what the reader last received.
            after = parse_seq("Last-Event-ID", last_event_id.strip())
        elif last_event_id is not None:
            raise BadRequest("header 'Last-Event-ID' is empty; send the id of the last event")
        who = credential.principal if credential.kind == "jwt" else credential.credential_id
        held = self._open.get(who, 0)
        if held >= self._per_credential:
            self._metrics.live_refused.labels("credential").inc()
            raise RateLimited(
                f"this credential has {held} live streams open, as many as it may; close one "
                "or retry later",
                self._retry_after,
            )
        if self.open_count >= self._per_process:
            self._metrics.live_refused.labels("server").inc()
            raise RateLimited(
                "this server has as many live streams open as it may; retry shortly",
                self._retry_after,
            )
        self._open[who] = held + 1
        self.open_count += 1
        self._metrics.live_streams.inc()
        abort = asyncio.Event()
        self._aborts.add(abort)

        def release() -> None:
            left = self._open.get(who, 1) - 1
            if left > 0:
                self._open[who] = left
            else:
                self._open.pop(who, None)
            self.open_count -= 1
            self._metrics.live_streams.dec()
            self._aborts.discard(abort)

        try:
            if self._audit is not None:
                shown = [[name, value] for name, value in params]
                await self._audit.read(
                    credential,
                    "GET /v1/events/stream",
                    {"query": shown, "after_seq": after},
                )
            # Fixed before the answer begins: whatever the reader writes once it has the
            # answer's head is committed after this and reaches it.
            if after is None:
                after = await self._notifier.head(credential.tenant) - 1
            horizon = await self._store.horizon(credential.tenant)
        except BaseException:
            release()
            raise
        query = dataclasses.replace(query, after_seq=None, limit=REPLAY_PAGE)
        reached = dataclasses.replace(query, after_seq=after, order="asc")
        pruned = horizon if reaches_below(reached, horizon) else None
        chunks = self._chunks(credential.tenant, query, after, abort, pruned)
        return LiveStream(Chunks(chunks, release), abort)

    async def _chunks(
        self,
        tenant: str,
        query: Query,
        position: int,
        abort: asyncio.Event,
        pruned: int | None = None,
    ) -> AsyncGenerator[bytes, None]:
        """The stream's bytes: the events after ``position``, replayed, then live; first a
        comment saying so when ``position`` is before the tenant's horizon ``pruned``."""
        # The position as the first block's id: a reader cut off before its first event
        # resumes from there (a block without data sets the last event id all the same).
        yield OPENING + (b"id: %d\n\n" % position if position >= 0 else b"\n")
        if pruned is not None:
            yield pruned_comment(pruned)
        # Replay what was missed while it is more than a seam away from the head.
        while not self._closing:
            head = await self._notifier.head(tenant)
            if head - (position + 1) <= REPLAY_SEAM:
                break
            async for chunk, reached in self._replay(tenant, query, position, head):
                position = reached
                if chunk:
                    yield chunk
        if self._closing:  # checked between pages: a long replay ends with the server too
            yield CLOSING
            return
        sub = await self._notifier.subscribe(tenant, query, self._buffer_bytes)
        metrics = self._metrics

        def cut_off() -> None:
            # Counted here, once: the stream may end in its loop (TOO_SLOW) or, stuck sending
            # to the reader, by the abort dropping its connection, where the loop never runs.
            metrics.live_cut.inc()
            abort.set()

        sub.on_overflow = cut_off
        self._subscriptions.add(sub)
        try:
            async for chunk, reached in self._replay(tenant, query, position, sub.start):
                position = reached
                if chunk:
                    yield chunk
            sent = time.monotonic()
            while not self._closing:
                quiet = time.monotonic() - sent
                events = await sub.next_events(max(self._keepalive - quiet, 0.0))
                if self._closing:
                    break
                if sub.overflowed:
                    yield TOO_SLOW
                    return
                fresh = [frame(seq, body) for seq, body in events if seq > position]
                if fresh:
                    position = events[-1][0]
                    yield b"".join(fresh)
                    sent = time.monotonic()
                elif time.monotonic() - sent >= self._keepalive:
                    # Nothing sent for a while (none came, or only events the reader has).
                    yield KEEPALIVE
                    sent = time.monotonic()
            yield CLOSING
        finally:
            self._subscriptions.discard(sub)
            self._notifier.unsubscribe(sub)

    async def _replay(
        self, tenant: str, query: Query, position: int, end: int
    ) -> AsyncGenerator[tuple[bytes, int], None]:
        """The matching events after ``position`` and before ``end``, a page at a time, each
        page's frames with the position it reaches (``end - 1`` after the last; the frames
        may be empty where a page matched nothing). Stops early when the server drains."""
        while position + 1 < end and not self._closing:
            page = await self._store.query(
                tenant, dataclasses.replace(query, after_seq=position, before_seq=end)
            )
            more = page.more and page.last_seq is not None
            position = page.last_seq if more and page.last_seq is not None else end - 1
            frames = [frame(int(orjson.loads(body)["seq"]), body) for body in page.bodies]
            yield b"".join(frames), position
            if not more:
                return

"""The deliveries of one process: which log streams it holds, and a worker for each.

Every ``lease / 6`` seconds (and when this process changes a stream, before the change is
answered: ``changed``) it claims streams from the store (``Store.claim_streams``): that
renews the leases it holds, takes free ones (whose deliverer stopped, or died and let its
lease run out) and gives up paused ones.
For every stream held it runs a ``StreamWorker``, and tells it until when its lease holds
(measured from before the claim was sent, so never later than the store's own clock says);
a stream that is no longer held (another process took it, it was deleted or paused) has its
worker stopped; one whose definition changed gets a new worker, made by a round that follows
at once so that it starts from the position its predecessor last recorded; one whose worker
stopped by itself (its lease found lost, or an error it logged) gets a new one a round later.

With several processes on one PostgreSQL database, each stream is therefore delivered by one
process at a time, and moves to another ``lease`` seconds after its deliverer died. On
shutdown the leases are given back so that another process takes over at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time

from auditlog.errors import Unavailable
from auditlog.metrics import Metrics
from auditlog.model.streams import LogStream
from auditlog.service.delivery.worker import StreamWorker
from auditlog.service.notifier import Notifier
from auditlog.service.streams import load_destination
from auditlog.storage.base import Store

log = logging.getLogger("auditlog.delivery")

#: Streams a claim takes at most, beyond those already held: processes starting together
#: share the streams between them rather than the first taking them all.
CLAIM_LIMIT = 16


def owner_name() -> str:
    """This process's name as a lease owner: host, pid and a random part (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Deliveries:
    """Claims log streams and runs their workers, in one process."""

    def __init__(
        self,
        store: Store,
        notifier: Notifier,
        metrics: Metrics,
        *,
        lease_seconds: float,
        timeout: float,
        batch_events: int,
        batch_bytes: int,
        linger: float,
        backoff_max: float,
    ) -> None:
        self._store = store
        self._notifier = notifier
        self._metrics = metrics
        self._lease = lease_seconds
        self._timeout = timeout
        self._batch_events = batch_events
        self._batch_bytes = batch_bytes
        self._linger = linger
        self._backoff_max = backoff_max
        self.owner = owner_name()
        self.workers: dict[str, StreamWorker] = {}
        self._wake = asyncio.Event()
        # One claim round at a time: the loop's and those of changes made here.
        self._round = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="auditlog-deliveries"
            )

    async def changed(self) -> None:
        """A stream was created, changed or deleted here: claim again now, and return once
        this process follows the change. So when the change is answered, a paused or deleted
        stream's worker here has stopped (nothing more goes out from this process) and a new
        stream's has started; other processes follow at their next claim."""
        async with self._round:
            if self._task is None:
                return  # not started, or closed: nothing to follow
            try:
                await self._claim()
            except Unavailable as exc:
                # The change is stored; the loop's next round follows it.
                log.warning("claiming log streams after a change: %s", exc)
            except Exception:
                log.exception("claiming log streams after a change failed")

    async def close(self) -> None:
        """Stop every worker and give the leases back."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        async with self._round:  # after a change's round, if one is under way
            held = list(self.workers)
            for worker in list(self.workers.values()):
                await worker.stop()
            self.workers.clear()
            try:
                await self._store.release_streams(self.owner, held)
            except Unavailable as exc:
                log.warning("giving the stream leases back: %s (they run out by themselves)", exc)

    async def _run(self) -> None:
        while True:
            try:
                await self.claim()
            except Unavailable as exc:
                log.warning("claiming log streams: %s; trying again", exc)
            except Exception:
                # Never let one round's bug end the loop: every lease would run out unrenewed
                # and this process would deliver nothing more, silently.
                log.exception("claiming log streams failed; trying again")
            with contextlib.suppress(TimeoutError):
                # asyncio.timeout, not wait_for: in 3.11 wait_for can swallow a cancellation
                # that meets the event being set, and close() would wait for ever.
                async with asyncio.timeout(self._lease / 6):
                    await self._wake.wait()
            self._wake.clear()

    async def claim(self) -> None:
        """One round: renew, take and give up leases, and start and stop workers to match."""
        async with self._round:
            await self._claim()

    async def _claim(self) -> None:
        sent = time.monotonic()
        held = await self._store.claim_streams(self.owner, int(self._lease * 1000), CLAIM_LIMIT)
        until = sent + self._lease
        by_id = {stream.stream_id: stream for stream in held}
        stale: set[str] = set()
        for stream_id, running in list(self.workers.items()):
            now_held = by_id.get(stream_id)
            finished = running.task is not None and running.task.done()
            if now_held is None or now_held.updated_us != running.stream.updated_us or finished:
                # Gone, changed, or stopped by itself (its lease was found lost, or an error
                # it logged). A worker may have recorded progress after the claim read the
                # streams, so a successor starts from the next round's fresh read: at once
                # for a changed definition, after the usual pause for one that stopped (an
                # error on every start must not spin).
                del self.workers[stream_id]
                await running.stop()
                if now_held is not None:
                    stale.add(stream_id)
                    if not finished:
                        self._wake.set()
        for stream in held:
            if stream.stream_id in stale:
                continue
            worker = self.workers.get(stream.stream_id)
            if worker is None:
                made = self._worker(stream)
                if made is None:
                    continue
                self.workers[stream.stream_id] = worker = made
                worker.renewed(until)
                worker.start()
            else:
                worker.renewed(until)

    def _worker(self, stream: LogStream) -> StreamWorker | None:
        try:
            return StreamWorker(
                stream,
                load_destination(stream.destination),
                self.owner,
                self._store,
                self._notifier,
                self._metrics,
                timeout=self._timeout,
                batch_events=self._batch_events,
                batch_bytes=self._batch_bytes,
                linger=self._linger,
                backoff_max=self._backoff_max,
            )
        except Exception:  # a stored definition this version cannot read: say so, go on
            log.exception("stream %s: its stored definition cannot be read", stream.stream_id)
            return None

"""The background half of ``log``: a bounded queue, one sender thread that batches it, and
what happens at fork and at exit.

The queue is bounded in events and in bytes, counting every event not yet acknowledged
(queued or in flight). When it is full, ``on_full="block"`` makes ``log`` wait up to
``block_timeout`` seconds for room, then drop the event; ``on_full="drop"`` drops it at
once; ``on_full="raise"`` raises ``QueueFullError``. Dropped events are counted.

The sender thread takes a batch once it holds ``batch_events`` events or ``batch_bytes``
bytes, or ``linger`` seconds after its first event was queued, or at once when a flush
waits. It sends one batch at a time, in order, so the log holds the events in the order they
were queued (one producer thread: in the order it logged them). With ``max_in_flight`` N > 1,
N threads send a batch each at once: more events/s where one request at a time leaves the
service idle between them, but batches may then be stored in another order than queued. It is a daemon thread,
started with the first event; an ``atexit`` hook flushes what is left for up to
``exit_timeout`` seconds when the interpreter ends.

After ``os.fork`` the child has no sender thread (threads do not survive a fork), so each
``Sender`` in the child starts afresh: a new lock, an empty queue, zero counters, a new HTTP
client and, with a spool, a spool file of its own. The child never sends its parent's queue;
the parent still does.
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import httpx

from auditlog_client.delivery import Deliverer, Outcome
from auditlog_client.errors import AuditlogError, ClosedError, QueueFullError
from auditlog_client.retry import Backoff, RetryPolicy
from auditlog_client.spool import Spool

log = logging.getLogger("auditlog_client")

OnFull = Literal["block", "drop", "raise"]
#: One queued event: its encoded line and its id in the spool (None without a spool).
Item = tuple[bytes, int | None]


@dataclass(frozen=True, slots=True)
class Stats:
    """Counters since the client was made (or, in a forked child, since the fork).

    ``sent``: events the service acknowledged. ``retried``: events sent again after a failed
    attempt. ``dropped``: events not taken because the queue was full. ``failed``: events the
    service refused (a ``409``, ``422``...) or that were given up on. ``queued``: events not
    yet acknowledged now.
    """

    sent: int = 0
    retried: int = 0
    dropped: int = 0
    failed: int = 0
    queued: int = 0


@dataclass(frozen=True, slots=True)
class Failure:
    """Events the service did not take, and why: what ``on_error`` is given."""

    lines: tuple[bytes, ...]
    error: AuditlogError


@dataclass(frozen=True, slots=True)
class SenderSettings:
    batch_events: int = 500
    batch_bytes: int = 1 << 20
    linger: float = 0.2
    max_queue_events: int = 100_000
    max_queue_bytes: int = 64 << 20
    on_full: OnFull = "block"
    block_timeout: float = 1.0
    exit_timeout: float = 5.0
    max_in_flight: int = 1
    adopt_interval: float = 30.0

    def __post_init__(self) -> None:
        if self.batch_events < 1 or self.batch_bytes < 1 or self.linger < 0:
            raise ValueError("batch_events and batch_bytes must be positive, linger not negative")
        if self.max_queue_events < 1 or self.max_queue_bytes < 1:
            raise ValueError("max_queue_events and max_queue_bytes must be positive")
        if self.max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        if self.on_full not in ("block", "drop", "raise"):
            raise ValueError("on_full must be 'block', 'drop' or 'raise'")


class Sender:
    """The queue and the thread that empties it. Thread-safe; fork-safe."""

    def __init__(
        self,
        settings: SenderSettings,
        make_http: Callable[[], httpx.Client],
        policy: RetryPolicy,
        *,
        spool_dir: str | os.PathLike[str] | None = None,
        spool_sync: str = "normal",
        on_error: Callable[[Failure], None] | None = None,
    ) -> None:
        self.settings = settings
        self._make_http = make_http
        self._policy = policy
        self._spool_dir = spool_dir
        self._spool_sync = spool_sync
        self._on_error = on_error
        self._spool: Spool | None = None
        self._start()
        if spool_dir is not None:
            self._open_spool()
        _LIVE.add(self)

    def _start(self) -> None:
        """The state of a new sender (also in a forked child)."""
        self._cond = threading.Condition(threading.Lock())
        self._items: collections.deque[Item] = collections.deque()
        self._queued_bytes = 0  # in _items
        self._held_events = 0  # queued or in flight
        self._held_bytes = 0
        self._first_at = 0.0  # when the oldest queued event was queued
        # Events are numbered in queue order from 0: ``_taken`` is the number the next queued
        # event gets, ``_next_take`` the number of the event at the queue's front, and
        # ``_in_flight`` maps the first number of each batch being sent to its length.
        self._taken = 0
        self._next_take = 0
        self._in_flight: dict[int, int] = {}
        self._flush_to = 0  # a flush waits until every event numbered below this is done
        self._next_adoption = time.monotonic() + self.settings.adopt_interval
        self._closing = False
        self._closed = False
        self._stop = threading.Event()  # ends backoff waits at close
        self._threads: list[threading.Thread] = []
        self._http: httpx.Client | None = None
        self._http_lock = threading.Lock()
        self._sent = self._retried = self._dropped = self._failed = 0
        self._pid = os.getpid()

    def _open_spool(self) -> None:
        assert self._spool_dir is not None
        self._spool = Spool(self._spool_dir, sync=self._spool_sync)
        self._queue_spooled(self._spool.pending())  # a predecessor's events go first
        if self._items:
            self._ensure_thread()

    def _queue_spooled(self, rows: list[tuple[int, bytes]]) -> None:
        """Queue events read from the spool (under the lock, or before any thread runs)."""
        if rows and not self._items:
            self._first_at = time.monotonic()
        for spool_id, line in rows:
            self._items.append((line, spool_id))
            self._queued_bytes += len(line)
            self._held_events += 1
            self._held_bytes += len(line)
            self._taken += 1

    def _adopt(self) -> None:
        """Take over the spools of clients that have ended since this one started (a worker
        killed, say), queueing their events (under the lock)."""
        if self._spool is None:
            return
        try:
            last = self._spool.last_id()
            if self._spool.adopt_orphans():
                self._queue_spooled(self._spool.pending_after(last))
        except Exception:
            log.exception("auditlog_client: adopting the spools of ended clients failed")

    # -- the producer's side -----------------------------------------------------------------

    def put(self, line: bytes) -> bool:
        """Queue an encoded event (and spool it first, with a spool); whether it was taken."""
        size = len(line)
        s = self.settings
        with self._cond:
            if self._closing:
                raise ClosedError("the client is closed")
            if self._spool is None and self._spool_dir is not None:
                self._open_spool()  # a forked child's own spool, made when it first logs
            full = self._held_events >= s.max_queue_events or (
                self._held_bytes + size > s.max_queue_bytes and self._held_events > 0
            )
            if full and not self._wait_for_room(size):
                self._dropped += 1
                if s.on_full == "raise":
                    raise QueueFullError(
                        f"the queue holds {self._held_events} events, "
                        f"{self._held_bytes} bytes not yet acknowledged"
                    )
                return False
            spool_id = self._spool.append(line) if self._spool is not None else None
            items = self._items
            if not items:
                self._first_at = time.monotonic()
                notify = True
            else:
                notify = (
                    len(items) + 1 == s.batch_events
                    or self._queued_bytes < s.batch_bytes <= self._queued_bytes + size
                )
            items.append((line, spool_id))
            self._queued_bytes += size
            self._held_events += 1
            self._held_bytes += size
            self._taken += 1
            if not self._threads:
                self._ensure_thread()
            elif notify:
                self._cond.notify_all()
        return True

    def _wait_for_room(self, size: int) -> bool:
        s = self.settings
        if s.on_full != "block" or s.block_timeout <= 0:
            return False
        deadline = time.monotonic() + s.block_timeout
        while self._held_events >= s.max_queue_events or (
            self._held_bytes + size > s.max_queue_bytes and self._held_events > 0
        ):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._closing:
                return False
            self._cond.wait(remaining)
        return True

    # -- the sender thread ---------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        """Start the sender threads (``max_in_flight`` of them) that are not running."""
        if self._closed:
            return
        self._threads = [t for t in self._threads if t.is_alive()]
        while len(self._threads) < self.settings.max_in_flight:
            thread = threading.Thread(
                target=_run, args=(weakref.ref(self),), name="auditlog-sender", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _take(self) -> tuple[int, list[Item]] | None:
        """The next batch and the number of its first event, once it is due; None when
        closing with nothing left."""
        s = self.settings
        with self._cond:
            while True:
                items = self._items
                if items:
                    due = (
                        len(items) >= s.batch_events
                        or self._queued_bytes >= s.batch_bytes
                        or self._flush_to > self._next_take
                        or self._closing
                    )
                    wait = self._first_at + s.linger - time.monotonic()
                    if due or wait <= 0:
                        break
                    self._cond.wait(wait)
                elif self._closing:
                    return None
                elif self._spool is not None:  # idle: now and then, look for orphaned spools
                    wait = self._next_adoption - time.monotonic()
                    if wait <= 0:
                        self._next_adoption = time.monotonic() + s.adopt_interval
                        self._adopt()
                    else:
                        self._cond.wait(wait)
                else:
                    self._cond.wait()
            batch: list[Item] = []
            size = 0
            while items and len(batch) < s.batch_events:
                line = items[0][0]
                if batch and size + len(line) > s.batch_bytes:
                    break
                batch.append(items.popleft())
                size += len(line)
            self._queued_bytes -= size
            if items:
                self._first_at = time.monotonic()
            start = self._next_take
            self._next_take += len(batch)
            self._in_flight[start] = len(batch)
            return start, batch

    def _finish(self, start: int, acked: list[Item], refused: int, unsent: list[Item]) -> None:
        done = len(acked) + refused + len(unsent)
        size = sum(len(i[0]) for i in acked) + sum(len(i[0]) for i in unsent)
        with self._cond:
            self._sent += len(acked)
            self._failed += refused
            self._held_events -= done
            self._held_bytes -= size
            del self._in_flight[start]
            self._cond.notify_all()

    def _flushed(self, target: int) -> bool:
        """Whether every event numbered below ``target`` is done (held under the lock)."""
        return self._next_take >= target and all(start >= target for start in self._in_flight)

    def _loop(self) -> None:
        deliverer: Deliverer[Item] = Deliverer(
            self._http_client, lambda item: item[0], Backoff(self._policy), self._pause
        )
        while True:
            taken = self._take()
            if taken is None:
                return
            start, batch = taken
            while True:
                try:
                    outcome = deliverer.deliver(batch)
                    break
                except Exception:  # a bug must not kill the thread with events held
                    log.exception("auditlog_client: sending a batch failed unexpectedly")
                    if not self._pause(1.0):
                        outcome = Outcome(unsent=list(batch))
                        break
            try:
                self._forget(outcome)
            except Exception:  # a spool that fails (a full disk) resends them next time
                log.exception("auditlog_client: the spool could not record what was sent")
            finally:
                refused_size = sum(len(item[0]) for item, _ in outcome.refused)
                with self._cond:
                    self._retried += outcome.retried
                    self._held_bytes -= refused_size
                self._finish(start, outcome.acked, len(outcome.refused), outcome.unsent)
            self._report([(item[0], error) for item, error in outcome.refused])

    def _forget(self, outcome: Outcome[Item]) -> None:
        """Remove acknowledged events from the spool; move refused ones to its failures."""
        if self._spool is None:
            return
        self._spool.remove([i[1] for i in outcome.acked if i[1] is not None])
        for item, error in outcome.refused:
            if item[1] is not None:
                self._spool.fail([item[1]], str(error))

    def _report(self, refused: list[tuple[bytes, AuditlogError]]) -> None:
        by_error: dict[int, list[bytes]] = {}
        errors: dict[int, AuditlogError] = {}
        for line, error in refused:
            by_error.setdefault(id(error), []).append(line)
            errors[id(error)] = error
        for key, lines in by_error.items():
            failure = Failure(tuple(lines), errors[key])
            log.error("auditlog_client: %d event(s) not stored: %s", len(lines), failure.error)
            if self._on_error is not None:
                try:
                    self._on_error(failure)
                except Exception:
                    log.exception("auditlog_client: the on_error callback failed")

    def _pause(self, seconds: float) -> bool:
        """Wait ``seconds`` before a retry; False when the sender must stop waiting."""
        return not self._stop.wait(seconds)

    def _http_client(self) -> httpx.Client:
        with self._http_lock:
            if self._http is None:
                self._http = self._make_http()
            return self._http

    # -- flush, close, stats -------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event queued before this call is acknowledged or refused; False
        if ``timeout`` seconds passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = self._taken
            self._flush_to = max(self._flush_to, target)
            self._cond.notify_all()
            while not self._flushed(target):
                if self._items and not any(t.is_alive() for t in self._threads):
                    self._ensure_thread()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining if remaining is None else min(remaining, 1.0))
        return True

    def close(self, timeout: float | None = None) -> bool:
        """Send what is queued (waiting up to ``timeout`` seconds), stop the thread, close
        the HTTP client and the spool. Whether everything was sent. Idempotent."""
        if self._closed:
            return True
        flushed = self.flush(timeout)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._stop.set()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=5.0)
        self._closed = True
        if self._http is not None:
            self._http.close()
        if self._spool is not None:
            self._spool.close()
        _LIVE.discard(self)
        return flushed

    def stats(self) -> Stats:
        with self._cond:
            return Stats(self._sent, self._retried, self._dropped, self._failed, self._held_events)

    @property
    def spool(self) -> Spool | None:
        return self._spool

    def _after_fork_in_child(self) -> None:
        if self._closed:
            return
        http, spool = self._http, self._spool
        self._start()
        if http is not None:
            _ABANDONED.append(http)  # its sockets are the parent's
        if spool is not None:
            # The child writes a spool of its own, made when it first logs (a child that
            # never logs leaves no file); the parent's stays locked by the parent.
            spool.abandon()
            self._spool = None


def _run(ref: weakref.ReferenceType[Sender]) -> None:
    sender = ref()
    if sender is not None:
        sender._loop()


_LIVE: weakref.WeakSet[Sender] = weakref.WeakSet()
_ABANDONED: list[object] = []


def _after_fork() -> None:
    for sender in list(_LIVE):
        sender._after_fork_in_child()


def _at_exit() -> None:
    for sender in list(_LIVE):
        if sender._pid != os.getpid():
            continue
        try:
            if not sender.close(sender.settings.exit_timeout):
                log.warning("auditlog_client: %d event(s) not sent at exit", sender.stats().queued)
        except Exception:
            log.exception("auditlog_client: flushing at exit failed")


os.register_at_fork(after_in_child=_after_fork)
atexit.register(_at_exit)

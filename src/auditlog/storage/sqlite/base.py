"""The base of the SQLite store: its connections, lifecycle, writer thread and reader pool.

``SQLiteBase`` opens and closes the two database files, owns the write connection (used by
one thread at a time, through ``_write`` and ``_transact``), the loop's read connection
(``_r``) and the reader threads' connections (``_thread_conn``, through ``_on_pool``), and
looks tenants up (``_tenant_id``).

Where writes run. The writes that requests wait for, group commits and the integrator's
rounds, run on the event loop's own thread whenever the writer thread has nothing to do and
the write lock is free at once (``_transact``). Their statements then need no hand-off of the
GIL between threads, each of which costs a switch of threads while the loop is busy: on a
two-core machine the server used about a fifth less CPU per single event, and less per
batched event too, although the loop pauses for each commit's flush (see
docs/design/write-path.md). Everything else, and any write while the writer thread has work or
another process holds the lock, runs on the writer thread in submission order, so a long
transaction or a wait for a lock never stops the loop.

Each part of the store (``events``, ``credentials``, ``merkle``) subclasses it; ``store.py``
composes them and says how they share the database.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import mmap
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import orjson

from auditlog.config import Settings
from auditlog.errors import StorageError
from auditlog.model.fields import condition_matches
from auditlog.model.matching import text_matches
from auditlog.model.text import event_words
from auditlog.storage import records
from auditlog.storage.childprocess import IndexerProcess
from auditlog.storage.sqlite import database, querysql
from auditlog.storage.sqlite.indexer import Indexer

log = logging.getLogger("auditlog.storage.sqlite")

GENERATION_BYTES = 16
_ROWS_PER_STATEMENT = (256, 64, 16, 4, 1)
_spec_cache: dict[str, Any] = {}
_T = TypeVar("_T")


def _al_match(body: bytes, spec: str) -> int:
    """SQL function: whether a stored event satisfies the encoded conditions and words.

    Every statement puts the cheap tests of ``prechecks`` before it (``querysql.matched``),
    the words' test of ``matching.may_hold_text`` among them, so it is not made again here."""
    parsed = _spec_cache.get(spec)
    if parsed is None:
        parsed = querysql.parse_residual_spec(spec)
        if len(_spec_cache) > 256:
            _spec_cache.clear()
        _spec_cache[spec] = parsed
    conditions, text = parsed
    event = orjson.loads(body)
    for path, op, values in conditions:
        if not condition_matches(event, path, op, values):
            return 0
    return int(not text or text_matches(event_words(event), text))


def insert_rows(
    conn: sqlite3.Connection, target: str, rows: Sequence[tuple[Any, ...]], verb: str = "INSERT"
) -> None:
    """INSERT many rows with few statements: one multi-row VALUES per chunk.

    ``executemany`` steps once per row, and each step lets go of the GIL and must win it back
    from the busy event loop; one statement per chunk of up to 256 rows costs one hand-off.
    Chunk sizes are fixed so that the statement cache holds every shape.
    """
    width = len(rows[0])
    tuple_marks = "(" + ",".join("?" * width) + ")"
    start = 0
    while start < len(rows):
        size = next(n for n in _ROWS_PER_STATEMENT if n <= len(rows) - start)
        chunk = rows[start : start + size]
        values = ",".join([tuple_marks] * size)
        sql = f"{verb} INTO {target} VALUES {values}"  # constant fragments only
        conn.execute(sql, [v for row in chunk for v in row])
        start += size


@contextlib.contextmanager
def immediate(conn: sqlite3.Connection, begun: bool = False) -> Iterator[None]:
    """A write transaction (``BEGIN IMMEDIATE``: the write lock from its start, unless
    ``begun`` already), committed when the block ends and rolled back if it raises."""
    if not begun:
        conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


class SQLiteBase:
    """What every part of ``SQLiteStore`` stands on: connections, lifecycle, the writer thread.

    Parts write through ``_write`` (on the writer thread, with ``_w()``), read points on the
    loop's connection ``_r()``, and run longer reads with ``_on_pool`` on ``_thread_conn()``.
    """

    def __init__(self, path: str, settings: Settings | None = None, indexer: str = "off") -> None:
        self.path = path
        self.terms_path = database.terms_path(path)
        self._settings = settings or Settings()
        self._retry = self._settings.retry_after
        self._indexer_mode = indexer
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._write_thread: _WriteThread | None = None
        self._local = threading.local()
        self._thread_conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._tenant_ids: dict[str, int] = {}
        self._indexer: IndexerProcess | None = None
        #: A time range holding fewer events than this is read through the time index.
        self.narrow_events = querysql.NARROW_EVENTS
        #: ... and its search index read over its events' keys when they span fewer than this.
        self.span_keys = querysql.SPAN_KEYS
        #: A numeric range holding fewer numbers than this is read through the numbers index.
        self.number_candidates = querysql.NUMBER_CANDIDATES
        # API keys are read on every request; they are cached, and the cache is dropped when
        # the "keys generation" changes. Every revocation, from this process or another one
        # (``auditlog keys revoke`` while the server runs), writes new random bytes to that
        # small file after its commit; the server sees them through a memory map, without a
        # system call, so a revoked key is refused from the next request on.
        self._generation_path = self.path + "-keys"
        self._generation: mmap.mmap | None = None
        self._cached_generation = b""
        # Entries also expire, in case a revoking process died between its commit and the
        # generation write.
        self._key_cache = records.KeyCache()

    # -- connections -------------------------------------------------------------------

    def _connect(self, readonly: bool = False) -> sqlite3.Connection:
        s = self._settings
        conn = database.connect(
            self.path,
            synchronous=s.sqlite_synchronous,
            cache_mb=s.sqlite_cache_mb,
            readonly=readonly,
        )
        conn.create_function("al_match", 2, _al_match, deterministic=True)
        if readonly:
            conn.execute("ATTACH DATABASE ? AS t", (self.terms_path,))
        return conn

    async def open(self) -> None:
        if self._writer is not None:
            return
        try:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            writer = self._connect()
            database.use_wal(writer, self.path)
            database.migrate(writer, "events", self.path)
            index = database.connect(self.terms_path, synchronous="NORMAL")
            try:
                database.use_wal(index, self.terms_path)
                database.migrate(index, "terms", self.terms_path)
                self._check_index(index)
            finally:
                index.close()
            self._writer = writer
            self._reader = self._connect(readonly=True)
            self._generation = self._map_generation()
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, f"opening {self.path}") from exc
        except OSError as exc:
            raise StorageError(f"opening {self.path}: {exc}", self._retry) from exc
        self._pool = ThreadPoolExecutor(self._settings.read_threads, thread_name_prefix="al-read")
        self._write_thread = _WriteThread()
        if self._indexer_mode == "process":
            self._indexer = IndexerProcess(
                "auditlog.storage.sqlite.indexer", self.path, log_format=self._settings.log_format
            )
            self._indexer.start()

    def _check_index(self, index: sqlite3.Connection) -> None:
        """Drop a search index that is ahead of the events it indexes.

        That happens when the events database was restored from a backup, or lost its last
        commits to a power cut under ``synchronous = NORMAL``, while the index kept them:
        the index would then describe events that are not (or no longer) there. It is
        rebuilt from the events by the indexer; queries stay complete meanwhile.
        """
        index.execute("ATTACH DATABASE ? AS ev", (self.path,))
        try:
            ahead = index.execute(
                "SELECT count(*) FROM progress AS p LEFT JOIN ev.tenants AS n"
                " ON n.tenant_id = p.tenant_id WHERE n.tenant_id IS NULL OR p.next_seq > n.size"
            ).fetchone()[0]
            if ahead:
                log.warning(
                    "the search index of %s is ahead of its events (restored or truncated "
                    "database?); dropping it to rebuild from the events",
                    self.path,
                )
                index.execute("BEGIN IMMEDIATE")
                index.execute("INSERT INTO events_terms (events_terms) VALUES ('delete-all')")
                index.execute("DELETE FROM numbers")
                index.execute("DELETE FROM path_flags")
                index.execute("DELETE FROM progress")
                index.execute("COMMIT")
        finally:
            index.execute("DETACH DATABASE ev")

    def _map_generation(self) -> mmap.mmap:
        with contextlib.suppress(FileExistsError), open(self._generation_path, "xb") as fh:
            fh.write(os.urandom(GENERATION_BYTES))
        with open(self._generation_path, "rb") as fh:
            return mmap.mmap(fh.fileno(), GENERATION_BYTES, access=mmap.ACCESS_READ)

    async def close(self) -> None:
        if self._indexer is not None:
            self._indexer.stop()
            self._indexer = None
        if self._write_thread is not None:
            self._write_thread.stop()
            self._write_thread = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        with self._conns_lock:
            for conn in self._thread_conns:
                conn.close()
            self._thread_conns.clear()
        for own in (self._reader, self._writer):
            if own is not None:
                own.close()
        self._reader = self._writer = None
        if self._generation is not None:
            self._generation.close()
            self._generation = None
        self._key_cache.clear()
        self._tenant_ids.clear()

    def _w(self) -> sqlite3.Connection:
        if self._writer is None:
            raise StorageError("the store is not open", self._retry)
        return self._writer

    def _r(self) -> sqlite3.Connection:
        if self._reader is None:
            raise StorageError("the store is not open", self._retry)
        return self._reader

    def _thread_conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect(readonly=True)
            self._local.conn = conn
            with self._conns_lock:
                self._thread_conns.append(conn)
        return conn

    async def ping(self) -> None:
        try:
            self._r().execute("SELECT 1 FROM tenants LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "ping") from exc

    async def stats(self) -> dict[str, float]:
        try:
            lag = (
                self._r()
                .execute(
                    "SELECT coalesce(sum(n.size - coalesce(p.next_seq, 0)), 0) FROM tenants AS n"
                    " LEFT JOIN t.progress AS p ON p.tenant_id = n.tenant_id"
                )
                .fetchone()[0]
            )
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "stats") from exc
        return {"search_index_lag_events": float(lag)}

    def index_pending(self) -> int:
        """Index every committed event not yet in the search index (in this process)."""
        indexer = Indexer(self.path)
        try:
            return indexer.catch_up()
        finally:
            indexer.close()

    # -- the writer thread, the reader pool and tenants ----------------------------------

    async def _transact(
        self, work: Callable[[sqlite3.Connection], _T], what: str, *, urgent: bool = False
    ) -> _T:
        """``work(conn)`` in one write transaction on the write connection: here, on the
        event loop's thread, when the writer thread is idle and the write lock is free at
        once; otherwise on the writer thread, in order (``urgent``: as for ``_write``)."""
        thread = self._write_thread
        if thread is None:
            raise StorageError("the store is not open", self._retry)
        if thread.idle and self._begin_now():
            return self._in_transaction(work, what, begun=True)
        return await thread.submit(self._in_transaction, work, what, urgent=urgent)

    def _begin_now(self) -> bool:
        """``BEGIN IMMEDIATE`` on the write connection if no other connection holds the
        write lock; ``False`` (and no transaction) if one does, or on any error, which the
        writer thread then meets and reports."""
        conn = self._writer
        if conn is None:
            return False
        try:
            conn.execute("PRAGMA busy_timeout = 0")
            try:
                conn.execute("BEGIN IMMEDIATE")
            finally:
                conn.execute(f"PRAGMA busy_timeout = {database.BUSY_TIMEOUT_MS}")
        except sqlite3.Error:
            with contextlib.suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            return False
        return True

    def _in_transaction(
        self, work: Callable[[sqlite3.Connection], _T], what: str, begun: bool = False
    ) -> _T:
        """``work(conn)`` in one write transaction (``begun``: already begun), committed,
        or rolled back if it raises; SQLite's errors as ``StorageError``, naming ``what``."""
        conn = self._w()
        try:
            try:
                with immediate(conn, begun):
                    return work(conn)
            except BaseException:
                self._tenant_ids.clear()  # ids made in the rolled-back transaction are gone
                raise
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, what) from exc

    async def _write(self, work: Callable[..., _T], *args: Any, urgent: bool = False) -> _T:
        """Run ``work(*args)`` on the writer thread, which uses ``_w()`` whenever it has work
        (``_transact`` uses it on the loop's thread only when it has none), in submission
        order; ``urgent`` work goes before group commits still waiting."""
        if self._write_thread is None:
            raise StorageError("the store is not open", self._retry)
        return await self._write_thread.submit(work, *args, urgent=urgent)

    async def _on_pool(self, work: Callable[..., _T], *args: Any) -> _T:
        """Run ``work(*args)`` on a reader thread, where ``_thread_conn()`` is its connection."""
        if self._pool is None:
            raise StorageError("the store is not open", self._retry)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, work, *args)

    def _tenant_id(self, conn: sqlite3.Connection, tenant: str) -> int:
        """The tenant's id, its row made if it has none: on the writer thread, inside a write
        transaction whose rollback must clear ``_tenant_ids`` (the ids made in it are gone)."""
        tenant_id = self._tenant_ids.get(tenant)
        if tenant_id is None:
            row = conn.execute("SELECT tenant_id FROM tenants WHERE name = ?", (tenant,)).fetchone()
            if row is None:
                row = conn.execute(
                    "INSERT INTO tenants (name, size) VALUES (?, 0) RETURNING tenant_id", (tenant,)
                ).fetchone()
            tenant_id = int(row[0])
            self._tenant_ids[tenant] = tenant_id
        return tenant_id


_URGENT = ("urgent",)


class _WriteThread:
    """The thread that uses the write connection whenever it has work, in submission order.

    Urgent work (the integrator's tree nodes and checkpoints: small, and what the checkpoint
    lag waits on) goes before any group commit still waiting, never before one running.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._urgent: collections.deque[tuple[Any, ...]] = collections.deque()
        #: Work submitted and not yet settled on its loop: counted up when submitted and down
        #: when its result reaches the loop, both on the loop's thread.
        self._unsettled = 0
        self._thread = threading.Thread(target=self._run, name="al-write", daemon=True)
        self._thread.start()

    @property
    def idle(self) -> bool:
        """Whether every piece of work submitted has finished and been settled: the write
        connection is then free for the loop's thread."""
        return self._unsettled == 0

    def submit(
        self, work: Callable[..., _T], *args: Any, urgent: bool = False
    ) -> asyncio.Future[_T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        self._unsettled += 1
        if urgent:
            self._urgent.append((work, args, loop, future))
            self._queue.put(_URGENT)  # wakes the thread if it waits
        else:
            self._queue.put((work, args, loop, future))
        return future

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            while self._urgent:
                self._do(self._urgent.popleft())
            if item is None:
                return
            if item is not _URGENT:
                self._do(item)

    def _do(self, item: tuple[Any, ...]) -> None:
        work, args, loop, future = item
        try:
            result = work(*args)
        except BaseException as exc:
            loop.call_soon_threadsafe(self._settle, future, None, exc)
        else:
            loop.call_soon_threadsafe(self._settle, future, result, None)

    def _settle(self, future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
        self._unsettled -= 1
        if future.done():  # its caller went away; the work itself was done all the same
            return
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join()

"""The SQLite store: WAL, one writer thread, reader threads, and a search indexer process.

Concurrency model (the one place it is written down for this backend):

* One write connection, used only by one dedicated writer thread, to which the group-commit
  writer hands each group. The thread spends most of a commit in SQLite's C code and in the
  flush to disk with the GIL released, so the event loop keeps parsing and validating the next
  group meanwhile. Rows go in as multi-row INSERTs: every SQLite call gives up the GIL and has
  to win it back from the busy loop, so the writer makes few calls per group.
* Queries run on a pool of reader threads, each with its own connection; in WAL mode readers
  see the last committed state and never block the writer nor each other.
* Point lookups the request path needs (an event by id, an API key on a cache miss) use one
  more read connection on the loop's thread: each is a single B-tree probe.
* ``BEGIN IMMEDIATE`` takes the database write lock at the start of each transaction, so a
  second process (``auditlog keys revoke`` while the server runs) is serialised by SQLite, and
  ``seq`` is read from and written to the ``tenants`` row inside that same transaction, so it
  stays gap-free whoever writes.
* The search index is built by a separate process (``indexer``) in a database file of its own
  (``<path>-terms``), attached to every reader connection as ``t``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import heapq
import logging
import mmap
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import orjson

from auditlog.config import Settings
from auditlog.errors import StorageError
from auditlog.model import times
from auditlog.model.credentials import ApiKey, User
from auditlog.model.fields import condition_matches
from auditlog.model.matching import text_matches
from auditlog.model.query import Query
from auditlog.model.text import event_words
from auditlog.storage import numbers, records
from auditlog.storage.base import (
    AppendOutcome,
    AppendRequest,
    GroupPlan,
    Page,
    StoredCheckpoint,
    TreeNode,
)
from auditlog.storage.childprocess import IndexerProcess
from auditlog.storage.sqlite import database, querysql
from auditlog.storage.sqlite.indexer import Indexer

log = logging.getLogger("auditlog.storage.sqlite")

_ID_CHUNK = 500
_GENERATION_BYTES = 16
_ROWS_PER_STATEMENT = (256, 64, 16, 4, 1)
_SELECT_CHECKPOINTS = (
    records.SELECT_CHECKPOINTS + " WHERE tenant_id = (SELECT tenant_id FROM tenants WHERE name = ?)"  # noqa: S608
)
#: Most (level, index) pairs looked up by one statement.
_NODE_CHUNK = 400
#: Node lookups up to this many run on the loop's own connection (a proof's few probes).
_NODES_INLINE = 64
#: Leaf reads up to this many run on the loop's own connection.
_LEAVES_INLINE = 20_000
_spec_cache: dict[str, Any] = {}
_T = TypeVar("_T")


def _al_match(body: bytes, spec: str) -> int:
    """SQL function: whether a stored event satisfies the encoded conditions and words."""
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


def _insert_rows(
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


class SQLiteStore:
    """``Store`` on one SQLite database file (and its search index beside it).

    ``indexer``: ``"process"`` runs the search indexer as a child process (what ``serve``
    does); ``"off"`` leaves indexing to whoever calls ``index_pending`` (commands and tests).
    Queries are complete either way: unindexed events are checked directly.
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
            self._indexer = IndexerProcess("auditlog.storage.sqlite.indexer", self.path)
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
            fh.write(os.urandom(_GENERATION_BYTES))
        with open(self._generation_path, "rb") as fh:
            return mmap.mmap(fh.fileno(), _GENERATION_BYTES, access=mmap.ACCESS_READ)

    def _bump_generation(self) -> None:
        with open(self._generation_path, "r+b") as fh:
            fh.write(os.urandom(_GENERATION_BYTES))

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

    # -- writing -----------------------------------------------------------------------

    async def append(self, requests: Sequence[AppendRequest]) -> list[AppendOutcome]:
        return await self._write(self._append_sync, requests)

    async def _write(self, work: Callable[..., _T], *args: Any, urgent: bool = False) -> _T:
        if self._write_thread is None:
            raise StorageError("the store is not open", self._retry)
        return await self._write_thread.submit(work, *args, urgent=urgent)

    def _append_sync(self, requests: Sequence[AppendRequest]) -> list[AppendOutcome]:
        conn = self._w()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                outcomes = self._append(conn, requests)
                conn.execute("COMMIT")
            except BaseException:
                self._tenant_ids.clear()  # ids made in the rolled-back transaction are gone
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "commit") from exc
        return outcomes

    def _tenant_id(self, conn: sqlite3.Connection, tenant: str) -> int:
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

    def _append(
        self, conn: sqlite3.Connection, requests: Sequence[AppendRequest]
    ) -> list[AppendOutcome]:
        plan = GroupPlan(requests)
        existing: dict[tuple[str, str], bytes] = {}
        tenant_ids: dict[str, int] = {}
        for tenant, wanted in plan.wanted().items():
            tenant_id = tenant_ids[tenant] = self._tenant_id(conn, tenant)
            id_list = list(wanted)
            for start in range(0, len(id_list), _ID_CHUNK):
                chunk = id_list[start : start + _ID_CHUNK]
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT id, body FROM events WHERE tenant_id = ? AND id IN ({marks})"  # noqa: S608
                for event_id, body in conn.execute(sql, (tenant_id, *chunk)):
                    existing[(tenant, event_id)] = body
        plan.plan(existing)
        if not plan.new:
            return plan.outcomes()
        sizes: dict[str, int] = {}
        for tenant in {p.tenant for p in plan.new}:
            row = conn.execute(
                "SELECT size FROM tenants WHERE tenant_id = ?", (tenant_ids[tenant],)
            ).fetchone()
            sizes[tenant] = int(row[0])
        plan.assign(sizes, times.now_us())
        rows = []
        for p in plan.new:
            tenant_id = tenant_ids[p.tenant]
            key = querysql.key_of(tenant_id, p.seq)
            rows.append((key, tenant_id, p.event.id, p.event.type, p.event.time_us, p.body))
        _insert_rows(conn, "events (key, tenant_id, id, type, time_us, body)", rows)
        for tenant, size in sizes.items():
            conn.execute(
                "UPDATE tenants SET size = ? WHERE tenant_id = ?", (size, tenant_ids[tenant])
            )
        return plan.outcomes()

    # -- reading -----------------------------------------------------------------------

    async def get_event(self, tenant: str, event_id: str) -> bytes | None:
        try:
            row = (
                self._r()
                .execute(
                    "SELECT e.body FROM events AS e JOIN tenants AS n ON e.tenant_id = n.tenant_id"
                    " WHERE n.name = ? AND e.id = ?",
                    (tenant, event_id),
                )
                .fetchone()
            )
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "reading an event") from exc
        return None if row is None else bytes(row[0])

    async def query(self, tenant: str, query: Query) -> Page:
        if self._pool is None:
            raise StorageError("the store is not open", self._retry)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._query, tenant, query)

    def _query(self, tenant: str, query: Query) -> Page:
        conn = self._thread_conn()
        try:
            conn.execute("BEGIN")  # one snapshot of both files for the whole page
            try:
                row = conn.execute(
                    "SELECT n.tenant_id, coalesce(p.next_seq, 0) FROM tenants AS n"
                    " LEFT JOIN t.progress AS p ON p.tenant_id = n.tenant_id WHERE n.name = ?",
                    (tenant,),
                ).fetchone()
                if row is None:
                    return Page((), None, False)
                tenant_id, indexed_upto = int(row[0]), int(row[1])
                flags = None
                path = numbers.range_path(query.conditions)
                if path is not None:
                    flags = frozenset(
                        flag
                        for (flag,) in conn.execute(
                            "SELECT flag FROM t.path_flags WHERE tenant_id = ? AND path = ?",
                            (tenant_id, numbers.path_id(path)),
                        )
                    )
                compiled = querysql.compile_query(tenant, tenant_id, query, indexed_upto, flags)
                with self._deadline(conn):
                    for narrow in compiled.narrows:
                        count = conn.execute(*narrow.probe).fetchone()[0]
                        limit = (
                            self.number_candidates
                            if narrow.kind == "numbers"
                            else self.narrow_events
                        )
                        if count < limit:
                            compiled = narrow.plan
                            break
                    rows = self._run(conn, compiled)
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "query") from exc
        more = len(rows) > compiled.limit
        rows = rows[: compiled.limit]
        last = rows[-1][0] & querysql.SEQ_MASK if rows else None
        return Page(tuple(bytes(body) for _, body in rows), last, more)

    @staticmethod
    def _run(conn: sqlite3.Connection, compiled: querysql.CompiledQuery) -> list[tuple[int, bytes]]:
        fetch = compiled.limit + 1
        if compiled.merge:
            results = [conn.execute(sql, params).fetchall() for sql, params in compiled.statements]
            merged = heapq.merge(*results, key=lambda r: r[0], reverse=compiled.descending)
            return list(merged)[:fetch]
        rows: list[tuple[int, bytes]] = []
        for sql, params in compiled.statements:
            wanted = fetch - len(rows)
            if wanted <= 0:
                break
            rows += conn.execute(sql, (*params[:-1], wanted)).fetchall()
        return rows

    @contextlib.contextmanager
    def _deadline(self, conn: sqlite3.Connection) -> Iterator[None]:
        deadline = time.monotonic() + self._settings.query_timeout_ms / 1000

        def check() -> int:
            return 1 if time.monotonic() > deadline else 0

        conn.set_progress_handler(check, 10_000)
        try:
            yield
        finally:
            conn.set_progress_handler(None, 0)

    # -- API keys ----------------------------------------------------------------------

    async def create_api_key(self, key: ApiKey) -> None:
        await self._write(self._create_api_key, key)

    def _create_api_key(self, key: ApiKey) -> None:
        try:
            self._w().execute(
                "INSERT INTO api_keys (key_id, tenant, name, scopes, secret_hash, created_us)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    key.key_id,
                    key.tenant,
                    key.name,
                    records.scopes_text(key.scopes),
                    key.secret_hash,
                    key.created_us,
                ),
            )
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "creating an API key") from exc

    async def get_api_key(self, key_id: str) -> ApiKey | None:
        if self._generation is None:
            raise StorageError("the store is not open", self._retry)
        generation = self._generation[:_GENERATION_BYTES]  # read before the database
        if generation != self._cached_generation:
            self._key_cache.clear()
            self._cached_generation = generation
        cached = self._key_cache.get(key_id)
        if cached is not None:
            return cached
        try:
            row = self._r().execute(records.SELECT_KEYS + " WHERE key_id = ?", (key_id,)).fetchone()
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "reading an API key") from exc
        if row is None:
            return None
        key = records.api_key(row)
        self._key_cache.put(key)
        return key

    async def list_api_keys(self, tenant: str | None = None) -> list[ApiKey]:
        sql = records.SELECT_KEYS
        params: tuple[str, ...] = ()
        if tenant is not None:
            sql += " WHERE tenant = ?"
            params = (tenant,)
        try:
            rows = self._r().execute(sql + " ORDER BY created_us, key_id", params).fetchall()
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "listing API keys") from exc
        return [records.api_key(r) for r in rows]

    async def revoke_api_key(self, key_id: str, revoked_us: int) -> bool:
        return await self._write(self._revoke_api_key, key_id, revoked_us)

    def _revoke_api_key(self, key_id: str, revoked_us: int) -> bool:
        try:
            cur = self._w().execute(
                "UPDATE api_keys SET revoked_us = coalesce(revoked_us, ?) WHERE key_id = ?",
                (revoked_us, key_id),
            )
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "revoking an API key") from exc
        self._bump_generation()
        return cur.rowcount > 0

    # -- users and secrets ----------------------------------------------------------------

    async def create_user(self, user: User) -> bool:
        return await self._write(self._create_user, user)

    def _create_user(self, user: User) -> bool:
        try:
            cur = self._w().execute(
                "INSERT INTO users (username, tenant, scopes, password_hash, created_us)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (username) DO NOTHING",
                (
                    user.username,
                    user.tenant,
                    records.scopes_text(user.scopes),
                    user.password_hash,
                    user.created_us,
                ),
            )
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "creating a user") from exc
        return cur.rowcount > 0

    async def get_user(self, username: str) -> User | None:
        try:
            row = (
                self._r()
                .execute(
                    records.SELECT_USERS + " WHERE username = ?",
                    (username,),
                )
                .fetchone()
            )
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "reading a user") from exc
        if row is None:
            return None
        return records.user(row)

    async def load_or_create_secret(self, name: str, value: bytes) -> bytes:
        return await self._write(self._load_or_create_secret, name, value)

    def _load_or_create_secret(self, name: str, value: bytes) -> bytes:
        # Another process may insert between our statements; the write lock taken by BEGIN
        # IMMEDIATE makes the insert-if-absent and the read one step.
        conn = self._w()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    "INSERT INTO secrets (name, value, created_us) VALUES (?, ?, ?)"
                    " ON CONFLICT (name) DO NOTHING",
                    (name, value, times.now_us()),
                )
                row = conn.execute("SELECT value FROM secrets WHERE name = ?", (name,)).fetchone()
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, f"storing the secret {name!r}") from exc
        return bytes(row[0])

    # -- the Merkle tree ------------------------------------------------------------------

    async def integrating(self) -> bool:
        return True  # a SQLite database is served by one process

    async def log_sizes(self) -> dict[str, int]:
        try:
            rows = self._r().execute("SELECT name, size FROM tenants WHERE size > 0").fetchall()
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "reading the log sizes") from exc
        return {str(name): int(size) for name, size in rows}

    async def _on_pool(self, work: Callable[..., _T], *args: Any) -> _T:
        if self._pool is None:
            raise StorageError("the store is not open", self._retry)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, work, *args)

    async def read_leaves(self, tenant: str, start: int, limit: int) -> list[tuple[int, bytes]]:
        # A key range scan that costs about 2 us an event. On the loop's own connection up to
        # a few thousand: a reader thread would take longer, fighting the loop for the GIL.
        if limit <= _LEAVES_INLINE:
            return self._read_leaves(tenant, start, limit, self._r())
        return await self._on_pool(self._read_leaves, tenant, start, limit)

    def _read_leaves(
        self, tenant: str, start: int, limit: int, conn: sqlite3.Connection | None = None
    ) -> list[tuple[int, bytes]]:
        conn = conn or self._thread_conn()
        try:
            row = conn.execute("SELECT tenant_id FROM tenants WHERE name = ?", (tenant,)).fetchone()
            if row is None or limit <= 0 or start > querysql.SEQ_MASK:
                return []
            tenant_id = int(row[0])
            rows = conn.execute(
                "SELECT key, body FROM events WHERE key >= ? AND key <= ? ORDER BY key LIMIT ?",
                (
                    querysql.key_of(tenant_id, max(start, 0)),
                    querysql.key_of(tenant_id, querysql.SEQ_MASK),
                    limit,
                ),
            ).fetchall()
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "reading leaves") from exc
        # A body rewritten by hand may come back as TEXT: its bytes are its UTF-8.
        return [
            (key & querysql.SEQ_MASK, body.encode() if isinstance(body, str) else bytes(body))
            for key, body in rows
        ]

    async def put_nodes(self, tenant: str, nodes: Sequence[TreeNode]) -> None:
        if nodes:
            await self._write(self._put_nodes, tenant, nodes, urgent=True)

    def _put_nodes(self, tenant: str, nodes: Sequence[TreeNode]) -> None:
        conn = self._w()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                tenant_id = self._tenant_id(conn, tenant)
                rows = [(tenant_id, level, index, h) for level, index, h in nodes]
                _insert_rows(
                    conn, "tree_nodes (tenant_id, level, idx, hash)", rows, "INSERT OR IGNORE"
                )
                conn.execute("COMMIT")
            except BaseException:
                self._tenant_ids.clear()
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "storing tree nodes") from exc

    async def get_nodes(
        self, tenant: str, keys: Sequence[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        if not keys:
            return {}
        if len(keys) <= _NODES_INLINE:
            return self._get_nodes(self._r(), tenant, keys)
        return await self._on_pool(self._get_nodes, None, tenant, keys)

    def _get_nodes(
        self, conn: sqlite3.Connection | None, tenant: str, keys: Sequence[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        conn = conn or self._thread_conn()
        found: dict[tuple[int, int], bytes] = {}
        try:
            row = conn.execute("SELECT tenant_id FROM tenants WHERE name = ?", (tenant,)).fetchone()
            if row is None:
                return found
            tenant_id = int(row[0])
            by_level: dict[int, list[int]] = {}
            for level, index in keys:
                by_level.setdefault(level, []).append(index)
            for level, indexes in by_level.items():
                for start in range(0, len(indexes), _NODE_CHUNK):
                    chunk = indexes[start : start + _NODE_CHUNK]
                    marks = ",".join("?" * len(chunk))
                    sql = (
                        "SELECT idx, hash FROM tree_nodes WHERE tenant_id = ? AND level = ?"  # noqa: S608
                        f" AND idx IN ({marks})"
                    )
                    for index, h in conn.execute(sql, (tenant_id, level, *chunk)):
                        found[(level, int(index))] = bytes(h)
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "reading tree nodes") from exc
        return found

    async def add_checkpoint(self, tenant: str, checkpoint: StoredCheckpoint) -> bool:
        return await self._write(self._add_checkpoint, tenant, checkpoint, urgent=True)

    def _add_checkpoint(self, tenant: str, checkpoint: StoredCheckpoint) -> bool:
        # The write lock (BEGIN IMMEDIATE) makes "larger than the latest" and the insert one
        # step, also against other processes on this database.
        conn = self._w()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                tenant_id = self._tenant_id(conn, tenant)
                latest = conn.execute(
                    "SELECT max(size) FROM checkpoints WHERE tenant_id = ?", (tenant_id,)
                ).fetchone()[0]
                stored = latest is None or checkpoint.size > latest
                if stored:
                    conn.execute(
                        "INSERT INTO checkpoints (tenant_id, size, root_hash, timestamp_us, note)"
                        " VALUES (?, ?, ?, ?, ?)",
                        (
                            tenant_id,
                            checkpoint.size,
                            checkpoint.root_hash,
                            checkpoint.timestamp_us,
                            checkpoint.note,
                        ),
                    )
                conn.execute("COMMIT")
            except BaseException:
                self._tenant_ids.clear()
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "storing a checkpoint") from exc
        return stored

    def _checkpoints(self, where: str, params: tuple[Any, ...]) -> list[StoredCheckpoint]:
        try:
            rows = self._r().execute(_SELECT_CHECKPOINTS + where, params).fetchall()
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "reading checkpoints") from exc
        return [records.checkpoint(r) for r in rows]

    async def latest_checkpoint(self, tenant: str) -> StoredCheckpoint | None:
        found = self._checkpoints(" ORDER BY size DESC LIMIT 1", (tenant,))
        return found[0] if found else None

    async def checkpoint_at_least(self, tenant: str, size: int) -> StoredCheckpoint | None:
        if size > querysql.SEQ_MASK:  # past any log (and past SQLite's integers)
            return None
        found = self._checkpoints(" AND size >= ? ORDER BY size LIMIT 1", (tenant, size))
        return found[0] if found else None

    async def list_checkpoints(
        self, tenant: str, after_size: int = -1, limit: int = 1000
    ) -> list[StoredCheckpoint]:
        if after_size >= querysql.SEQ_MASK:
            return []
        return self._checkpoints(
            " AND size > ? ORDER BY size LIMIT ?",
            (tenant, max(after_size, -1), min(max(limit, 0), querysql.SEQ_MASK)),
        )


_URGENT = ("urgent",)


class _WriteThread:
    """The one thread that uses the write connection, running work in submission order.

    Urgent work (the integrator's tree nodes and checkpoints: small, and what the checkpoint
    lag waits on) goes before any group commit still waiting, never before one running.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._urgent: collections.deque[tuple[Any, ...]] = collections.deque()
        self._thread = threading.Thread(target=self._run, name="al-write", daemon=True)
        self._thread.start()

    def submit(
        self, work: Callable[..., _T], *args: Any, urgent: bool = False
    ) -> asyncio.Future[_T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
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

    @staticmethod
    def _do(item: tuple[Any, ...]) -> None:
        work, args, loop, future = item
        try:
            result = work(*args)
        except BaseException as exc:
            loop.call_soon_threadsafe(_settle, future, None, exc)
        else:
            loop.call_soon_threadsafe(_settle, future, result, None)

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join()


def _settle(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if future.done():  # its caller went away; the work itself was done all the same
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)

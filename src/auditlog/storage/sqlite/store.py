"""The SQLite store: WAL, one writer, reader threads.

Concurrency model (the one place it is written down for this backend):

* One write connection, used only from the event loop's thread by the group-commit writer.
  ``append`` runs its transaction inline on the loop rather than in a thread: a group commit
  takes a millisecond or two, and measured on our 2-core machine, blocking the loop for it
  beat handing the work to a thread (8.1k against 6.3k durable requests/s at 64 connections),
  because a thread hand-off waits for the busy loop to release the GIL.
* Queries run on a pool of reader threads, each with its own connection; in WAL mode readers
  see the last committed state and never block the writer nor each other.
* Point lookups that the request path needs (an event by id, an API key) use one more read
  connection on the loop's thread: each is a single B-tree probe of a few microseconds.
* ``BEGIN IMMEDIATE`` takes the database write lock at the start of each transaction, so a
  second process (``auditlog keys create`` while the server runs) is serialised by SQLite, and
  ``seq`` is read from and written to the ``tenants`` row inside that same transaction, so it
  stays gap-free whoever writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from auditlog.config import Settings
from auditlog.errors import StorageError, StorageFull, Unavailable
from auditlog.model import times
from auditlog.model.credentials import ApiKey
from auditlog.model.fields import Value, condition_matches
from auditlog.model.query import Query
from auditlog.storage.base import AppendOutcome, AppendRequest, GroupPlan, Page
from auditlog.storage.sqlite import querysql, terms

log = logging.getLogger("auditlog.storage.sqlite")

_FULL_CODES = {sqlite3.SQLITE_FULL, getattr(sqlite3, "SQLITE_IOERR_WRITE", -1)}
_ID_CHUNK = 500


def _translate(exc: sqlite3.Error, retry_after: int, what: str) -> Unavailable:
    code = getattr(exc, "sqlite_errorcode", None)
    if code in _FULL_CODES or "full" in str(exc):
        return StorageFull(f"{what}: the database or its disk is full", retry_after)
    if isinstance(exc, sqlite3.OperationalError) and "interrupted" in str(exc):
        return Unavailable(f"{what}: the query took too long and was stopped", retry_after)
    return StorageError(f"{what}: {exc}", retry_after)


def _migrations() -> list[tuple[int, str]]:
    folder = resources.files("auditlog.storage.sqlite").joinpath("schema")
    found = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:3].isdigit():
            found.append((int(name[:3]), entry.read_text(encoding="utf-8")))
    return sorted(found)


def _al_match(body: bytes, spec: str) -> int:
    conditions = _spec_cache.get(spec)
    if conditions is None:
        conditions = [
            (path, op, tuple(Value(raw, number) for raw, number in values))
            for path, op, values in querysql.parse_residual_spec(spec)
        ]
        if len(_spec_cache) > 256:
            _spec_cache.clear()
        _spec_cache[spec] = conditions
    event = orjson.loads(body)
    return int(all(condition_matches(event, p, op, vs) for p, op, vs in conditions))  # type: ignore[arg-type]


_SELECT_KEYS = (
    "SELECT key_id, tenant, name, scopes, secret_hash, created_us, revoked_us FROM api_keys"
)
_spec_cache: dict[str, list[tuple[Any, str, tuple[Value, ...]]]] = {}


class SQLiteStore:
    """``Store`` on one SQLite database file."""

    def __init__(self, path: str, settings: Settings | None = None) -> None:
        self.path = path
        self._settings = settings or Settings()
        self._retry = self._settings.retry_after
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._write_pool: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._thread_conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._tenant_ids: dict[str, int] = {}

    # -- connections -------------------------------------------------------------------

    def _connect(self, readonly: bool = False) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=5.0
        )
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute(f"PRAGMA cache_size = -{self._settings.sqlite_cache_mb * 1024}")
        conn.execute("PRAGMA temp_store = MEMORY")
        if readonly:
            conn.execute("PRAGMA query_only = 1")
            conn.execute("PRAGMA mmap_size = 268435456")
        else:
            conn.execute(f"PRAGMA synchronous = {self._settings.sqlite_synchronous}")
        conn.create_function("al_match", 2, _al_match, deterministic=True)
        return conn

    async def open(self) -> None:
        if self._writer is not None:
            return
        try:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            writer = self._connect()
            mode = writer.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise StorageError(f"SQLite at {self.path} refused WAL mode ({mode})")
            self._migrate(writer)
            self._writer = writer
            self._reader = self._connect(readonly=True)
        except sqlite3.Error as exc:
            raise _translate(exc, self._retry, f"opening {self.path}") from exc
        except OSError as exc:
            raise StorageError(f"opening {self.path}: {exc}", self._retry) from exc
        self._pool = ThreadPoolExecutor(
            self._settings.read_threads, thread_name_prefix="auditlog-read"
        )
        self._write_pool = ThreadPoolExecutor(1, thread_name_prefix="auditlog-write")

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for number, sql in _migrations():
                if number > version:
                    for statement in sql.split(";\n"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {number}")
                    log.info("applied schema migration %03d to %s", number, self.path)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    async def close(self) -> None:
        for pool in (self._write_pool, self._pool):
            if pool is not None:
                pool.shutdown(wait=True)
        self._pool = self._write_pool = None
        with self._conns_lock:
            for conn in self._thread_conns:
                conn.close()
            self._thread_conns.clear()
        for own in (self._reader, self._writer):
            if own is not None:
                own.close()
        self._reader = self._writer = None
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
            raise _translate(exc, self._retry, "ping") from exc

    # -- writing -----------------------------------------------------------------------

    async def append(self, requests: Sequence[AppendRequest]) -> list[AppendOutcome]:
        if self._write_pool is None:
            raise StorageError("the store is not open", self._retry)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._write_pool, self._append_sync, requests)

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
            raise _translate(exc, self._retry, "commit") from exc
        return outcomes

    def _tenant_id(self, conn: sqlite3.Connection, tenant: str, create: bool) -> int | None:
        tenant_id = self._tenant_ids.get(tenant)
        if tenant_id is None:
            row = conn.execute("SELECT tenant_id FROM tenants WHERE name = ?", (tenant,)).fetchone()
            if row is None:
                if not create:
                    return None
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
            tenant_id = self._tenant_id(conn, tenant, create=True)
            assert tenant_id is not None
            tenant_ids[tenant] = tenant_id
            id_list = list(wanted)
            for start in range(0, len(id_list), _ID_CHUNK):
                chunk = id_list[start : start + _ID_CHUNK]
                marks = ",".join("?" * len(chunk))
                for event_id, body in conn.execute(
                    f"SELECT id, body FROM events WHERE tenant_id = ? AND id IN ({marks})",  # noqa: S608
                    (tenant_id, *chunk),
                ):
                    existing[(tenant, event_id)] = body
        plan.plan(existing)
        if not plan.new:
            return plan.outcomes()
        sizes: dict[str, int] = {}
        for pending in plan.new:
            if pending.tenant not in sizes:
                row = conn.execute(
                    "SELECT size FROM tenants WHERE tenant_id = ?", (tenant_ids[pending.tenant],)
                ).fetchone()
                sizes[pending.tenant] = int(row[0])
        plan.assign(sizes, times.now_us())
        rows = []
        docs = []
        for p in plan.new:
            key = querysql.key_of(tenant_ids[p.tenant], p.seq)
            rows.append(
                (key, tenant_ids[p.tenant], p.event.id, p.event.type, p.event.time_us, p.body)
            )
            docs.append((key, terms.event_terms(p.tenant, p.event.content)))
        conn.executemany(
            "INSERT INTO events (key, tenant_id, id, type, time_us, body) VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.executemany("INSERT INTO events_terms (rowid, terms) VALUES (?, ?)", docs)
        conn.executemany(
            "UPDATE tenants SET size = ? WHERE tenant_id = ?",
            [(size, tenant_ids[tenant]) for tenant, size in sizes.items()],
        )
        return plan.outcomes()

    # -- reading -----------------------------------------------------------------------

    async def get_event(self, tenant: str, event_id: str) -> bytes | None:
        conn = self._r()
        try:
            row = conn.execute(
                "SELECT e.body FROM events AS e JOIN tenants AS t ON e.tenant_id = t.tenant_id"
                " WHERE t.name = ? AND e.id = ?",
                (tenant, event_id),
            ).fetchone()
        except sqlite3.Error as exc:
            raise _translate(exc, self._retry, "reading an event") from exc
        return None if row is None else bytes(row[0])

    async def query(self, tenant: str, query: Query) -> Page:
        if self._pool is None:
            raise StorageError("the store is not open", self._retry)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._query, tenant, query)

    def _query(self, tenant: str, query: Query) -> Page:
        conn = self._thread_conn()
        try:
            row = conn.execute("SELECT tenant_id FROM tenants WHERE name = ?", (tenant,)).fetchone()
            if row is None:
                return Page((), None, False)
            compiled = querysql.compile_query(tenant, int(row[0]), query)
            with self._deadline(conn):
                rows = self._run(conn, compiled)
        except sqlite3.Error as exc:
            raise _translate(exc, self._retry, "query") from exc
        more = len(rows) > compiled.limit
        rows = rows[: compiled.limit]
        last = rows[-1][0] & querysql.SEQ_MASK if rows else None
        return Page(tuple(bytes(body) for _, body in rows), last, more)

    @staticmethod
    def _run(conn: sqlite3.Connection, compiled: querysql.CompiledQuery) -> list[tuple[int, bytes]]:
        results = [conn.execute(sql, params).fetchall() for sql, params in compiled.statements]
        if len(results) == 1:
            return results[0]
        merged = heapq.merge(*results, key=lambda r: r[0], reverse=compiled.descending)
        return list(merged)[: compiled.limit + 1]

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
        conn = self._w()
        try:
            conn.execute(
                "INSERT INTO api_keys (key_id, tenant, name, scopes, secret_hash, created_us)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    key.key_id,
                    key.tenant,
                    key.name,
                    ",".join(key.scopes),
                    key.secret_hash,
                    key.created_us,
                ),
            )
        except sqlite3.Error as exc:
            raise _translate(exc, self._retry, "creating an API key") from exc

    @staticmethod
    def _key(row: tuple[Any, ...]) -> ApiKey:
        return ApiKey(
            key_id=row[0],
            tenant=row[1],
            name=row[2],
            scopes=tuple(row[3].split(",")),
            secret_hash=bytes(row[4]),
            created_us=row[5],
            revoked_us=row[6],
        )

    async def get_api_key(self, key_id: str) -> ApiKey | None:
        try:
            row = self._r().execute(_SELECT_KEYS + " WHERE key_id = ?", (key_id,)).fetchone()
        except sqlite3.Error as exc:
            raise _translate(exc, self._retry, "reading an API key") from exc
        return None if row is None else self._key(row)

    async def list_api_keys(self, tenant: str | None = None) -> list[ApiKey]:
        sql = _SELECT_KEYS
        params: tuple[str, ...] = ()
        if tenant is not None:
            sql += " WHERE tenant = ?"
            params = (tenant,)
        try:
            rows = self._r().execute(sql + " ORDER BY created_us, key_id", params).fetchall()
        except sqlite3.Error as exc:
            raise _translate(exc, self._retry, "listing API keys") from exc
        return [self._key(r) for r in rows]

    async def revoke_api_key(self, key_id: str, revoked_us: int) -> bool:
        try:
            cur = self._w().execute(
                "UPDATE api_keys SET revoked_us = coalesce(revoked_us, ?) WHERE key_id = ?",
                (revoked_us, key_id),
            )
        except sqlite3.Error as exc:
            raise _translate(exc, self._retry, "revoking an API key") from exc
        return cur.rowcount > 0

"""The base of the PostgreSQL store: its pools, lifecycle, background tasks and leases.

``PostgresBase`` opens and closes the two pools (``_connection``), keeps the event partitions
made ahead and listens for key revocations while serving, holds the integrator's lease (a
session of its own), and looks tenants up (``_tenant_id``). Each part of the store
(``events``, ``credentials``, ``merkle``) subclasses it; ``store.py`` composes them and says
how processes share the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import AsyncIterator, Callable, Mapping

import orjson
import psycopg
import psycopg_pool
from psycopg.rows import TupleRow

from auditlog.config import Settings
from auditlog.errors import StorageError, Unavailable
from auditlog.model import times
from auditlog.storage import records
from auditlog.storage.childprocess import IndexerProcess
from auditlog.storage.postgres import database
from auditlog.storage.postgres.indexer import Indexer

log = logging.getLogger("auditlog.storage.postgres")

Conn = psycopg.AsyncConnection[TupleRow]
Pool = psycopg_pool.AsyncConnectionPool[Conn]

KEYS_CHANNEL = "auditlog_keys"
#: Durable log heads announced by each process (payload: schema and heads, as JSON).
HEADS_CHANNEL = "auditlog_heads"
#: A transaction that writes WAL and so, committing synchronously, flushes everything before it.
FLUSH_BARRIER = "SELECT pg_logical_emit_message(true, 'auditlog', '')"
#: Seconds a pool keeps trying to replace a lost connection in the background.
_RECONNECT_SECONDS = 5.0
#: A pooled connection idle longer than this is checked (a round trip) before it is used.
_CHECK_IDLE_SECONDS = 1.0
#: Months of event partitions made ahead of the current one.
PARTITIONS_AHEAD = 2
_PARTITION_CHECK_SECONDS = 3600.0
#: Seconds (at least; five rounds if longer) after which the server ends the integrator
#: lock's session if it was not used: the holder uses it every round and between the batches
#: of a long one (see integrating).
_LEASE_IDLE_SECONDS = 5.0
#: Numbers in a range (from the numbers index) below which the range drives the page.
NUMBER_CANDIDATES = 20_000


class PostgresBase:
    """What every part of ``PostgresStore`` stands on: pools, lifecycle, leases, tenant ids.

    Parts run their statements in ``async with self._connection(what) as conn`` (``read=True``
    for the query pool), which turns driver errors into storage errors naming ``what``.
    """

    def __init__(self, url: str, settings: Settings | None = None, serving: bool = False) -> None:
        self.url = url
        self._settings = settings or Settings()
        #: A numeric range holding fewer numbers than this is read through the numbers index.
        self.number_candidates = NUMBER_CANDIDATES
        s = self._settings
        self._retry = s.retry_after
        self._wait = float(s.postgres_connect_timeout)
        self._serving = serving
        self._pool: Pool | None = None
        self._read_pool: Pool | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._indexer: IndexerProcess | None = None
        self._tenant_ids: dict[str, int] = {}
        self._key_cache = records.KeyCache()
        # Bumped by every revocation heard and every (re)connection of the listener: a key
        # read before a bump is not cached after it.
        self._key_epoch = 0
        self._listening = False
        # Told of the durable heads other processes announce (Store.watch_heads).
        self._heads_callback: Callable[[Mapping[str, int]], None] | None = None
        # The schema this store's tables are in: notification channels span the database.
        self._schema = ""
        # The session holding the schema's integrator lock while this process integrates.
        self._lease: Conn | None = None
        self._leading = False
        # What each pool's connections are in use for, and since when (by _connection): for
        # the pool's connections (False) and the query pool's (True).
        self._holders: dict[bool, dict[object, tuple[str, float]]] = {False: {}, True: {}}
        # When each pooled connection was last given back (forgotten when it is closed).
        self._last_used: weakref.WeakKeyDictionary[Conn, float] = weakref.WeakKeyDictionary()

    # -- connections -------------------------------------------------------------------

    def _new_pool(self, url: str, size: int, timeout_ms: int, name: str) -> Pool:
        return psycopg_pool.AsyncConnectionPool(
            url,
            min_size=1,
            max_size=size,
            open=False,
            name=name,
            timeout=self._wait,
            # A connection the database dropped (a restart, a failover) is found at checkout
            # and replaced, not handed to a request; a lost connection is retried in the
            # background for a short while only, then made again when a request needs it, so
            # the service serves again soon after the database is back, however long it was
            # away (the pool's own backoff doubles without bound).
            check=self._check_idle,
            reconnect_timeout=_RECONNECT_SECONDS,
            kwargs={
                "autocommit": True,
                "connect_timeout": max(1, round(self._wait)),
                "application_name": "auditlog",
                # synchronous_commit on whatever the server's default: an acknowledged
                # write must be on disk (see append).
                "options": database.options(
                    url,
                    f"-c statement_timeout={timeout_ms} -c synchronous_commit=on"
                    f" {database.PAGE_SIZED}",
                ),
            },
        )

    async def _check_idle(self, conn: Conn) -> None:
        """Check a connection at checkout if it sat idle: one used a moment ago is known good,
        and checking it would cost a round trip per use under load."""
        last = self._last_used.get(conn)
        if last is None or time.monotonic() - last > _CHECK_IDLE_SECONDS:
            await psycopg_pool.AsyncConnectionPool.check_connection(conn)

    async def open(self) -> None:
        if self._pool is not None:
            return
        s = self._settings
        pool = self._new_pool(
            self.url, s.postgres_pool_size, s.postgres_statement_timeout_ms, "auditlog"
        )
        read_pool = self._new_pool(
            s.postgres_read_url or self.url,
            s.postgres_read_pool_size,
            s.query_timeout_ms,
            "auditlog-read",
        )
        try:
            await pool.open(wait=True, timeout=self._wait)
            await read_pool.open(wait=True, timeout=self._wait)
            async with pool.connection(timeout=self._wait) as conn:
                await database.migrate(conn)
                await database.ensure_partitions(conn, times.now_us(), PARTITIONS_AHEAD)
                cur = await conn.execute("SELECT current_schema()")
                row = await cur.fetchone()
                self._schema = str(row[0]) if row else ""
        except (psycopg.Error, OSError) as exc:
            await pool.close()
            await read_pool.close()
            raise database.translate(exc, self._retry, f"opening {self.safe_url}") from exc
        self._pool, self._read_pool = pool, read_pool
        if self._serving:
            self._indexer = IndexerProcess(
                "auditlog.storage.postgres.indexer", self.url, True, self._settings.log_format
            )
            self._indexer.start()
            self._tasks = [
                asyncio.create_task(self._keep_partitions(), name="auditlog-partitions"),
                asyncio.create_task(self._listen_for_revocations(), name="auditlog-keys"),
            ]

    @property
    def safe_url(self) -> str:
        """The URL without its password, for messages."""
        info = psycopg.conninfo.conninfo_to_dict(self.url)
        return f"postgresql database {info.get('dbname', '')!s} on {info.get('host', '')!s}"

    async def close(self) -> None:
        if self._indexer is not None:
            self._indexer.stop()
            self._indexer = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self._drop_lease()
        for pool in (self._read_pool, self._pool):
            if pool is not None:
                await pool.close()
        self._pool = self._read_pool = None
        self._tenant_ids.clear()
        self._key_cache.clear()
        self._listening = False

    @contextlib.asynccontextmanager
    async def _connection(self, what: str, read: bool = False) -> AsyncIterator[Conn]:
        """A pooled connection; driver errors inside become storage errors naming ``what``."""
        pool = self._read_pool if read else self._pool
        if pool is None:
            raise StorageError("the store is not open", self._retry)
        holders = self._holders[read]
        try:
            async with pool.connection(timeout=self._wait) as conn:
                token = object()
                started = time.monotonic()
                holders[token] = (what, started)
                try:
                    yield conn
                finally:
                    del holders[token]
                    now = self._last_used[conn] = time.monotonic()
                    if now - started > self._wait:
                        log.warning(
                            "%s held a database connection for %.1f s (others wait for one"
                            " at most %g s)",
                            what,
                            now - started,
                            self._wait,
                        )
        except psycopg_pool.PoolTimeout as exc:
            # Say what held the connections, so that a refusal under load can be explained.
            log.warning("%s: %s", what, self._holding(pool, holders))
            raise database.translate(exc, self._retry, what) from exc
        except (psycopg.Error, OSError) as exc:
            raise database.translate(exc, self._retry, what) from exc

    def _holding(self, pool: Pool, holders: dict[object, tuple[str, float]]) -> str:
        """What holds the pool's connections now, longest first, for a log line."""
        now = time.monotonic()
        held = sorted(holders.values(), key=lambda h: h[1])
        stats = pool.get_stats()
        shown = ", ".join(f"{what} for {now - since:.1f} s" for what, since in held[:20])
        return (
            f"no connection of pool {pool.name} came free within {self._wait:g} s"
            f" ({stats.get('pool_size', 0)} open, {len(held)} in use: {shown or 'none'};"
            f" {stats.get('requests_waiting', 0)} requests waiting)"
        )

    async def _keep_partitions(self) -> None:
        while True:
            await asyncio.sleep(_PARTITION_CHECK_SECONDS)
            try:
                async with self._connection("making event partitions") as conn:
                    await database.ensure_partitions(conn, times.now_us(), PARTITIONS_AHEAD)
            except Unavailable as exc:
                log.warning("%s; trying again in an hour", exc)

    def index_pending(self) -> int:
        """Index every committed event not yet in the search index (in this process)."""
        indexer = Indexer(self.url)
        try:
            return indexer.catch_up()
        finally:
            indexer.close()

    async def ping(self) -> None:
        async with self._connection("ping") as conn:
            await conn.execute("SELECT 1")

    async def stats(self) -> dict[str, float]:
        async with self._connection("stats") as conn:
            cur = await conn.execute(
                "SELECT coalesce(sum(t.next_seq - coalesce(p.next_seq, 0)), 0) FROM tenants AS t"
                " LEFT JOIN index_progress AS p ON p.tenant_id = t.tenant_id"
            )
            row = await cur.fetchone()
        out: dict[str, float] = {"search_index_lag_events": float(row[0]) if row else 0.0}
        if self._pool is not None:
            pool_stats = self._pool.get_stats()
            out["postgres_pool_connections"] = float(pool_stats.get("pool_size", 0))
            out["postgres_pool_waiting"] = float(pool_stats.get("requests_waiting", 0))
        return out

    async def _tenant_id(self, conn: Conn, tenant: str, create: bool) -> int | None:
        """The tenant's id (cached), or ``None`` if it has no row. With ``create`` the row is
        made if missing: call it before opening a transaction, so that the cached id stays."""
        tenant_id = self._tenant_ids.get(tenant)
        if tenant_id is not None:
            return tenant_id
        cur = await conn.execute("SELECT tenant_id FROM tenants WHERE name = %s", (tenant,))
        row = await cur.fetchone()
        if row is None:
            if not create:
                return None
            # Outside any transaction: a tenant row, once made, stays (with next_seq 0).
            await conn.execute(
                "INSERT INTO tenants (name) VALUES (%s) ON CONFLICT (name) DO NOTHING", (tenant,)
            )
            cur = await conn.execute("SELECT tenant_id FROM tenants WHERE name = %s", (tenant,))
            row = await cur.fetchone()
            assert row is not None
        tenant_id = int(row[0])
        self._tenant_ids[tenant] = tenant_id
        return tenant_id

    async def _listen_for_revocations(self) -> None:
        """Drop revoked keys from the cache as other processes revoke them, and pass on the
        durable heads they announce."""
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.url, autocommit=True, connect_timeout=max(1, round(self._wait))
                )
                try:
                    await conn.execute(f"LISTEN {KEYS_CHANNEL}")
                    await conn.execute(f"LISTEN {HEADS_CHANNEL}")
                    self._key_cache.clear()
                    self._key_epoch += 1
                    self._listening = True
                    async for notify in conn.notifies():
                        if notify.channel == HEADS_CHANNEL:
                            self._heard_heads(notify.payload)
                            continue
                        self._key_epoch += 1
                        self._key_cache.drop(notify.payload)
                finally:
                    self._listening = False
                    self._key_cache.clear()
                    await conn.close()
            except (psycopg.Error, OSError) as exc:
                log.warning("listening for key revocations: %s; trying again", exc)
            await asyncio.sleep(self._retry)

    def _heard_heads(self, payload: str) -> None:
        """An announcement of durable heads: ``{"schema": ..., "heads": {tenant: size}}``."""
        try:
            message = orjson.loads(payload)
            heads = {str(t): int(n) for t, n in message["heads"].items()}
            schema = message["schema"]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            log.warning("ignoring a malformed announcement of log heads")
            return
        if schema == self._schema and self._heads_callback is not None:
            self._heads_callback(heads)

    # -- the integrator's lease ---------------------------------------------------------

    async def _hold_lease(self) -> bool:
        if self._lease is None or self._lease.closed:
            self._leading = False
            # Idle for several rounds: the holder has hung or stopped integrating.
            idle = max(_LEASE_IDLE_SECONDS, 5 * self._settings.checkpoint_interval_ms / 1000)
            self._lease = await psycopg.AsyncConnection.connect(
                self.url,
                autocommit=True,
                connect_timeout=max(1, round(self._wait)),
                application_name="auditlog-integrator",
                options=database.options(
                    self.url,
                    f"-c statement_timeout=5000 -c idle_session_timeout={round(idle * 1000)}",
                ),
            )
        if self._leading:
            await self._lease.execute("SELECT 1")
        else:
            cur = await self._lease.execute(
                "SELECT pg_try_advisory_lock(%s, hashtext(current_schema()))",
                (database.LOCK_INTEGRATOR,),
            )
            row = await cur.fetchone()
            self._leading = bool(row and row[0])
        return self._leading

    async def _drop_lease(self) -> None:
        lease, self._lease, self._leading = self._lease, None, False
        if lease is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                await lease.close()

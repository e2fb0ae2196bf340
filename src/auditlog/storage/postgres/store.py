"""The PostgreSQL store: several stateless service processes on one database.

Concurrency model (the one place it is written down for this backend):

* Each process keeps a pool of connections to the primary (``postgres_pool_size``) for writes,
  reads by id, credentials and the Merkle tree, and a second, small pool for queries, on the
  primary or on a read replica (``postgres_read_url``), whose statements stop after
  ``query_timeout_ms``.
* A group commit is one transaction. It first locks the row of each tenant it writes to, in
  tenant order, by advancing the tenant's ``next_seq`` in place; only then does it look up
  the ids the group may repeat, assign seqs, copy the rows in with binary COPY and commit.
  The row lock is held until the commit, so the transactions that write to one tenant, from
  any number of processes, run one after another: each sees every event committed before it,
  takes the seqs that follow them, and becomes visible before the next one can commit. Seqs
  are therefore gap-free in commit order, and a rolled-back transaction gives its seqs back
  (docs/design/postgres.md says why, and what it costs).
* API keys are cached per process; every revocation sends a notification (``NOTIFY``) in its
  transaction, and each process listens for them and drops the key from its cache. While the
  listening connection is down, nothing is cached.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson
import psycopg
import psycopg_pool
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb

from auditlog.config import Settings
from auditlog.errors import StorageError, Unavailable
from auditlog.model import times
from auditlog.model.credentials import ApiKey, User
from auditlog.model.event import stored_bytes
from auditlog.model.matching import event_matches
from auditlog.model.query import Query
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
from auditlog.storage.postgres import database, querysql, rows
from auditlog.storage.postgres.indexer import Indexer

log = logging.getLogger("auditlog.storage.postgres")

Conn = psycopg.AsyncConnection[TupleRow]
Pool = psycopg_pool.AsyncConnectionPool[Conn]

_KEYS_CHANNEL = "auditlog_keys"
#: The SQLSTATE of ``auditlog_append`` finding an id taken (schema/001_initial.sql).
_ID_TAKEN = "AL409"
_COPY_EVENTS = f"COPY events ({', '.join(rows.COLUMNS)}) FROM STDIN (FORMAT BINARY)"
#: A transaction that writes WAL and so, committing synchronously, flushes everything before it.
_FLUSH_BARRIER = "SELECT pg_logical_emit_message(true, 'auditlog', '')"
#: Seconds a pool keeps trying to replace a lost connection in the background.
_RECONNECT_SECONDS = 5.0
#: A pooled connection idle longer than this is checked (a round trip) before it is used.
_CHECK_IDLE_SECONDS = 1.0
#: Months of event partitions made ahead of the current one.
PARTITIONS_AHEAD = 2
_PARTITION_CHECK_SECONDS = 3600.0
#: Most candidate rows fetched by one statement of a query.
_MAX_CHUNK = 5000
#: Seconds (at least; five rounds if longer) after which the server ends the integrator
#: lock's session if it was not used: the holder uses it every round and between the batches
#: of a long one (see integrating).
_LEASE_IDLE_SECONDS = 5.0
#: Rows of the first window a query with conditions on data or words walks (see _walk).
_PROBE_ROWS = 512
#: Rows the rest of a page may be expected within and be walked without asking the indexes.
_WALK_CHEAP = 4_096
#: Matches from which their density is trusted to say how far the rest of the page is.
_TRUSTED_MATCHES = 4
#: Most rows such a query walks when the rest of its page is expected beyond them.
_WALK_MAX = 20_000
#: Candidates past which the GIN indexes are not asked for a page (see _common).
_COMMON_MATCHES = 1_000
#: PostgreSQL's estimate of the candidates from which they are not even counted.
_SURELY_COMMON = 10 * _COMMON_MATCHES
#: Numbers in a range (from the numbers index) below which the range drives the page.
NUMBER_CANDIDATES = 20_000
#: PostgreSQL's estimate of a range's numbers from which they are not even counted.
_SURELY_COMMON_NUMBERS = 10 * NUMBER_CANDIDATES


def _plan_rows(plan: Any) -> float:
    """The rows an ``EXPLAIN (FORMAT JSON)`` expects its statement to return (0 if unsure)."""
    try:
        return float(plan[0]["Plan"]["Plan Rows"])
    except (LookupError, TypeError, ValueError):
        return 0.0


class PostgresStore:
    """``Store`` on a PostgreSQL database (``postgresql://`` URL).

    ``serving``: the store backs a running service, so it also keeps the event partitions made
    ahead of time and listens for key revocations; commands leave both off.
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
        # The session holding the schema's integrator lock while this process integrates.
        self._lease: Conn | None = None
        self._leading = False
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
        except (psycopg.Error, OSError) as exc:
            await pool.close()
            await read_pool.close()
            raise database.translate(exc, self._retry, f"opening {self.safe_url}") from exc
        self._pool, self._read_pool = pool, read_pool
        if self._serving:
            self._indexer = IndexerProcess("auditlog.storage.postgres.indexer", self.url, True)
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
        try:
            async with pool.connection(timeout=self._wait) as conn:
                try:
                    yield conn
                finally:
                    self._last_used[conn] = time.monotonic()
        except (psycopg.Error, OSError) as exc:
            raise database.translate(exc, self._retry, what) from exc

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

    # -- writing -----------------------------------------------------------------------

    async def append(self, requests: Sequence[AppendRequest]) -> list[AppendOutcome]:
        async with self._connection("commit") as conn:
            tenant_ids: dict[str, int] = {}
            for tenant in sorted({r.tenant for r in requests}):
                found = await self._tenant_id(conn, tenant, create=True)
                assert found is not None
                tenant_ids[tenant] = found
            plan = GroupPlan(requests)
            try:
                await self._append_fast(conn, plan, tenant_ids)
                # The fast path commits without waiting for its flush; this synchronous commit
                # waits for the WAL to be flushed past its own commit record, so past ours (and
                # past every commit this group replays), together with whatever other processes
                # commit meanwhile. It must write WAL before its commit (here a transactional
                # logical message, a few bytes): PostgreSQL commits a transaction that wrote
                # none asynchronously, even one holding a transaction id, and so flushes nothing.
                await conn.execute(_FLUSH_BARRIER)
            except psycopg.Error as exc:
                if exc.sqlstate != _ID_TAKEN:
                    raise
                # An id planned as new was committed by another process meanwhile.
                plan = GroupPlan(requests)
                async with conn.transaction():
                    await self._append_locked(conn, plan, tenant_ids)
        return plan.outcomes()

    async def _existing(
        self, conn: Conn, plan: GroupPlan, tenant_ids: dict[str, int]
    ) -> dict[tuple[str, str], bytes]:
        """The stored bodies of the ids the group's producers chose that are stored."""
        existing: dict[tuple[str, str], bytes] = {}
        for tenant, wanted in plan.wanted().items():
            if not wanted:
                continue
            cur = await conn.execute(
                "SELECT id, body FROM events WHERE tenant_id = %s AND id = ANY(%s)",
                (tenant_ids[tenant], list(wanted)),
            )
            for event_id, body in await cur.fetchall():
                existing[(tenant, str(event_id))] = bytes(body)
        return existing

    async def _append_fast(self, conn: Conn, plan: GroupPlan, tenant_ids: dict[str, int]) -> None:
        """Plan outside the locks, then lock, check and insert in one call (one round trip).

        Stored events never change, so a replay or a conflict found before the locks stays
        one; only an id planned as new can be taken meanwhile, which ``auditlog_append``
        checks under the locks (and then fails with ``_ID_TAKEN``).
        """
        plan.plan(await self._existing(conn, plan, tenant_ids))
        if not plan.new:
            return
        received_us = times.now_us()
        received_at = times.format_us(received_us)
        order = sorted({p.tenant for p in plan.new}, key=tenant_ids.__getitem__)
        index = {tenant: i for i, tenant in enumerate(order)}
        parts: list[tuple[bytes, bytes]] = []
        payload: list[list[Any]] = []
        given: list[tuple[int, str]] = []
        for p in plan.new:
            head, tail = rows.split_body(stored_bytes(p.event, p.tenant, 0, received_at))
            parts.append((head, tail))
            payload.append([index[p.tenant], *rows.envelope(p.event), head.decode(), tail.decode()])
            if "id" in p.event.given:
                given.append((tenant_ids[p.tenant], p.event.id))
        cur = await conn.execute(
            "SELECT auditlog_append(%s, %s, %s, %s)",
            (
                [tenant_ids[t] for t in order],
                received_us,
                Jsonb(payload, dumps=orjson.dumps),
                Jsonb(given, dumps=orjson.dumps),
            ),
        )
        row = await cur.fetchone()
        assert row is not None
        next_seq = dict(zip(order, row[0], strict=True))
        for p, (head, tail) in zip(plan.new, parts, strict=True):
            seq = next_seq[p.tenant]
            next_seq[p.tenant] = seq + 1
            p.seq = seq
            p.body = b"%s%d%s" % (head, seq, tail)

    async def _append_locked(self, conn: Conn, plan: GroupPlan, tenant_ids: dict[str, int]) -> None:
        """Lock first, then plan and insert with COPY: several round trips under the locks,
        for the rare group whose fast path met an id committed meanwhile."""
        counts: dict[str, int] = {}
        for request in plan.requests:
            counts[request.tenant] = counts.get(request.tenant, 0) + len(request.events)
        # The serialisation point: lock each tenant's row, in one order so that groups for
        # several tenants cannot deadlock, reserving a seq for every event of the group. The
        # reservation is corrected below once replays are known.
        start: dict[str, int] = {}
        for tenant in sorted(counts, key=tenant_ids.__getitem__):
            cur = await conn.execute(
                "UPDATE tenants SET next_seq = next_seq + %s WHERE tenant_id = %s"
                " RETURNING next_seq",
                (counts[tenant], tenant_ids[tenant]),
            )
            row = await cur.fetchone()
            assert row is not None
            start[tenant] = int(row[0]) - counts[tenant]
        # Under the lock, every event of the tenant committed before is visible here.
        plan.plan(await self._existing(conn, plan, tenant_ids))
        next_seq = dict(start)
        received_us = times.now_us()
        plan.assign(next_seq, received_us)
        for tenant, seq in next_seq.items():
            if seq != start[tenant] + counts[tenant]:
                await conn.execute(
                    "UPDATE tenants SET next_seq = %s WHERE tenant_id = %s",
                    (seq, tenant_ids[tenant]),
                )
        if not plan.new:
            return
        async with conn.cursor() as cur, cur.copy(_COPY_EVENTS) as copy:
            copy.set_types(rows.TYPES)
            for p in plan.new:
                await copy.write_row(
                    rows.event_row(tenant_ids[p.tenant], p.seq, received_us, p.event, p.body)
                )

    # -- reading -----------------------------------------------------------------------

    async def get_event(self, tenant: str, event_id: str) -> bytes | None:
        if "\x00" in event_id:  # no stored id holds NUL, and PostgreSQL text cannot
            return None
        async with self._connection("reading an event") as conn:
            tenant_id = await self._tenant_id(conn, tenant, create=False)
            if tenant_id is None:
                return None
            cur = await conn.execute(
                "SELECT body FROM events WHERE tenant_id = %s AND id = %s LIMIT 1",
                (tenant_id, event_id),
            )
            row = await cur.fetchone()
        return None if row is None else bytes(row[0])

    async def query(self, tenant: str, query: Query) -> Page:
        deadline = time.monotonic() + self._settings.query_timeout_ms / 1000
        found: list[tuple[int, bytes]] = []
        async with self._connection("query", read=True) as conn:
            if querysql.searches(query):
                cur = await conn.execute(
                    "SELECT t.tenant_id, coalesce(p.next_seq, 0), t.next_seq FROM tenants AS t"
                    " LEFT JOIN index_progress AS p ON p.tenant_id = t.tenant_id"
                    " WHERE t.name = %s",
                    (tenant,),
                )
                row = await cur.fetchone()
                if row is None:
                    return Page((), None, False)
                tenant_id, indexed, size = int(row[0]), int(row[1]), int(row[2])
                compiled = await self._by_numbers(conn, tenant_id, query, indexed, size)
                if compiled is None:
                    compiled = querysql.compile_query(tenant_id, query, indexed, size)
            else:  # the events table alone: the tenant's id is all it needs (and never changes)
                known = await self._tenant_id(conn, tenant, create=False)
                if known is None:
                    return Page((), None, False)
                compiled = querysql.compile_query(known, query, 0)
            position = compiled.start
            for segment in compiled.segments:
                reached = position
                if segment.walk is not None:
                    walked = await self._walk(conn, segment, query, found, position, deadline)
                    if walked is None:
                        if len(found) > query.limit:
                            break
                        continue
                    reached = walked
                if len(found) > query.limit:
                    break
                await self._fetch(conn, segment, query, found, reached, deadline)
                if len(found) > query.limit:
                    break
                if found:
                    position = found[-1][0]
        more = len(found) > query.limit
        found = found[: query.limit]
        last = found[-1][0] if found else None
        return Page(tuple(body for _, body in found), last, more)

    async def _by_numbers(
        self, conn: Conn, tenant_id: int, query: Query, indexed: int, size: int
    ) -> querysql.CandidateQuery | None:
        """The candidates read through the numbers index, when the query has a numeric range
        that the index answers (the path holds no strings) with few numbers in it."""
        path = numbers.range_path(query.conditions)
        if path is None:
            return None
        cur = await conn.execute(
            "SELECT flag FROM path_flags WHERE tenant_id = %s AND path = %s",
            (tenant_id, numbers.path_id(path)),
        )
        flags = {str(flag) for (flag,) in await cur.fetchall()}
        if "s" in flags:
            return None
        span = numbers.number_range(query.conditions, single="m" not in flags)
        if span is None:
            return None
        probe = querysql.numbers_probe(tenant_id, span, indexed)
        # Counting a common range's numbers costs more than walking to its page (~1 µs a
        # number); PostgreSQL's estimate costs a plan and tells the surely common ones.
        cur = await conn.execute(probe.estimate, probe.params, prepare=False)
        plan = await cur.fetchone()
        if plan is not None and _plan_rows(plan[0]) >= _SURELY_COMMON_NUMBERS:
            return None
        cur = await conn.execute(probe.count, (*probe.params, self.number_candidates))
        row = await cur.fetchone()
        if row is None or int(row[0]) >= self.number_candidates:
            return None
        return querysql.numbers_query(tenant_id, query, indexed, size, span)

    @staticmethod
    def _keep(
        query: Query, found: list[tuple[int, bytes]], seq: int, time_us: int, body: bytes
    ) -> bool:
        """Add a candidate to the page if it matches; whether the page (plus one) is full."""
        if event_matches(orjson.loads(body), time_us, query):
            found.append((seq, body))
        return len(found) > query.limit

    def _check_deadline(self, deadline: float) -> None:
        if time.monotonic() > deadline:
            raise Unavailable("query: the query took too long and was stopped", self._retry)

    async def _fetch(
        self,
        conn: Conn,
        segment: querysql.Segment,
        query: Query,
        found: list[tuple[int, bytes]],
        position: int,
        deadline: float,
    ) -> None:
        """Fill the page from a segment's planned statement, in growing chunks."""
        fetch = query.limit + 1
        while True:
            cur = await conn.execute(segment.sql, (*segment.params, position, fetch))
            candidates = await cur.fetchall()
            for seq, time_us, body in candidates:
                if self._keep(query, found, int(seq), int(time_us), bytes(body)):
                    return
            if len(candidates) < fetch:
                return
            self._check_deadline(deadline)
            position = int(candidates[-1][0])
            fetch = min(fetch * 4, _MAX_CHUNK)

    async def _walk(
        self,
        conn: Conn,
        segment: querysql.Segment,
        query: Query,
        found: list[tuple[int, bytes]],
        position: int,
        deadline: float,
    ) -> int | None:
        """Walk the tenant's events in seq order while that finds the page sooner than the
        GIN indexes would.

        The indexes find every match at once, but then all of them are read and sorted to
        take the first page: fast for a rare value (~12 µs a match), slow for a common one.
        Walking in seq order tests each row (~2 µs) and finds a common value's page after a
        few hundred rows, a rare one's only after most of the log. So the walk starts with a
        small window and goes on while the rest of the page is expected soon, estimated from
        the density of matches since the first one. Matches cluster (a run of other events
        sits at the head of many logs; a burst of matches may be followed by none), so when
        the estimate is poor (no match in a window, a window with under half the
        matches expected, the rest expected beyond ``_WALK_CHEAP`` rows from fewer than
        ``_TRUSTED_MATCHES`` matches) the indexes are asked once how many matches there are
        (``_common``): with few, they take over. Returns ``None`` when the page is full or the
        segment walked to its end, else the position from which the indexes should find the
        rest.
        """
        assert segment.walk is not None
        window = _PROBE_ROWS
        walked = since_first = matched = 0
        asked = False
        while True:
            cur = await conn.execute(segment.walk, (*segment.walk_params, position, window))
            rows = await cur.fetchall()
            reached, top, count = rows[0][0], rows[0][1], int(rows[0][2])
            hits = [(int(r[3]), int(r[4]), bytes(r[5])) for r in rows if r[3] is not None]
            expected_hits = window * matched / since_first if matched else 0.0
            if matched:
                since_first += count
            elif hits:
                # The rows from the first match on (exact where the window's seqs have no gaps).
                span = abs(int(top) - int(reached)) + 1
                since_first += -(-count * (abs(hits[0][0] - int(reached)) + 1) // span)
            for seq, time_us, body in hits:
                if self._keep(query, found, seq, time_us, body):
                    return None
            matched += len(hits)
            if count < window:
                return None  # the whole segment is walked
            walked += count
            position = int(reached)
            self._check_deadline(deadline)
            if matched == 0:
                expected = None
                poor = True
            else:
                expected = (query.limit + 1 - len(found)) * since_first // matched
                poor = len(hits) < expected_hits / 2 or (
                    matched < _TRUSTED_MATCHES and expected > _WALK_CHEAP
                )
            if walked >= _WALK_MAX or (expected is not None and walked + expected > _WALK_MAX):
                return position
            if poor and not asked:
                asked = True
                if not await self._common(conn, segment, position):
                    return position  # few matches: the indexes find them sooner
            if expected is None:
                window = min(window * 4, _WALK_MAX - walked)
            else:
                window = min(max(expected + expected // 4 + 16, _PROBE_ROWS), _WALK_MAX - walked)

    async def _common(self, conn: Conn, segment: querysql.Segment, position: int) -> bool:
        """Whether the GIN indexes find at least ``_COMMON_MATCHES`` candidates past
        ``position``: too many to read and sort for one page.

        Counting them builds the index's whole bitmap of a value, which for a common one
        costs more than walking to its page (~8 ms for 20,000 matches). PostgreSQL's estimate
        (from its sample of the column) costs a plan and tells a common value from a rare
        one, if not how rare: only an estimate below ``_SURELY_COMMON`` is checked by
        counting. A value common in the table but not in this tenant's log is walked, up to
        ``_WALK_MAX`` rows, before the indexes take over.
        """
        assert segment.probe is not None
        assert segment.estimate is not None
        cur = await conn.execute(segment.estimate, (*segment.probe_params, position), prepare=False)
        row = await cur.fetchone()
        if row is not None and _plan_rows(row[0]) >= _SURELY_COMMON:
            return True
        cur = await conn.execute(segment.probe, (*segment.probe_params, position, _COMMON_MATCHES))
        row = await cur.fetchone()
        return row is not None and int(row[0]) >= _COMMON_MATCHES

    # -- API keys ----------------------------------------------------------------------

    async def create_api_key(self, key: ApiKey) -> None:
        async with self._connection("creating an API key") as conn:
            await conn.execute(
                "INSERT INTO api_keys (key_id, tenant, name, scopes, secret_hash, created_us)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (
                    key.key_id,
                    key.tenant,
                    key.name,
                    records.scopes_text(key.scopes),
                    key.secret_hash,
                    key.created_us,
                ),
            )

    async def get_api_key(self, key_id: str) -> ApiKey | None:
        cached = self._key_cache.get(key_id)
        if cached is not None and self._listening:
            return cached
        epoch = self._key_epoch
        async with self._connection("reading an API key") as conn:
            cur = await conn.execute(records.SELECT_KEYS + " WHERE key_id = %s", (key_id,))
            row = await cur.fetchone()
        if row is None:
            return None
        key = records.api_key(row)
        if self._listening and epoch == self._key_epoch:
            self._key_cache.put(key)
        return key

    async def list_api_keys(self, tenant: str | None = None) -> list[ApiKey]:
        sql = records.SELECT_KEYS
        params: tuple[str, ...] = ()
        if tenant is not None:
            sql += " WHERE tenant = %s"
            params = (tenant,)
        async with self._connection("listing API keys") as conn:
            cur = await conn.execute(sql + " ORDER BY created_us, key_id", params)
            found = await cur.fetchall()
        return [records.api_key(r) for r in found]

    async def revoke_api_key(self, key_id: str, revoked_us: int) -> bool:
        async with self._connection("revoking an API key") as conn, conn.transaction():
            cur = await conn.execute(
                "UPDATE api_keys SET revoked_us = coalesce(revoked_us, %s) WHERE key_id = %s",
                (revoked_us, key_id),
            )
            # Delivered to every listening process when this transaction commits.
            await conn.execute("SELECT pg_notify(%s, %s)", (_KEYS_CHANNEL, key_id))
            changed = cur.rowcount > 0
        self._key_cache.drop(key_id)
        self._key_epoch += 1
        return changed

    async def _listen_for_revocations(self) -> None:
        """Drop revoked keys from the cache as other processes revoke them."""
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.url, autocommit=True, connect_timeout=max(1, round(self._wait))
                )
                try:
                    await conn.execute(f"LISTEN {_KEYS_CHANNEL}")
                    self._key_cache.clear()
                    self._key_epoch += 1
                    self._listening = True
                    async for notify in conn.notifies():
                        self._key_epoch += 1
                        self._key_cache.drop(notify.payload)
                finally:
                    self._listening = False
                    self._key_cache.clear()
                    await conn.close()
            except (psycopg.Error, OSError) as exc:
                log.warning("listening for key revocations: %s; trying again", exc)
            await asyncio.sleep(self._retry)

    # -- users and secrets ----------------------------------------------------------------

    async def create_user(self, user: User) -> bool:
        async with self._connection("creating a user") as conn:
            cur = await conn.execute(
                "INSERT INTO users (username, tenant, scopes, password_hash, created_us)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (username) DO NOTHING",
                (
                    user.username,
                    user.tenant,
                    records.scopes_text(user.scopes),
                    user.password_hash,
                    user.created_us,
                ),
            )
            return cur.rowcount > 0

    async def get_user(self, username: str) -> User | None:
        async with self._connection("reading a user") as conn:
            cur = await conn.execute(
                records.SELECT_USERS + " WHERE username = %s",
                (username,),
            )
            row: Any = await cur.fetchone()
        if row is None:
            return None
        return records.user(row)

    async def load_or_create_secret(self, name: str, value: bytes) -> bytes:
        async with self._connection(f"storing the secret {name!r}") as conn:
            # Of several processes inserting at once, one wins; the others' inserts wait for
            # it and do nothing, and the read that follows sees the winner's value.
            await conn.execute(
                "INSERT INTO secrets (name, value, created_us) VALUES (%s, %s, %s)"
                " ON CONFLICT (name) DO NOTHING",
                (name, value, times.now_us()),
            )
            cur = await conn.execute("SELECT value FROM secrets WHERE name = %s", (name,))
            row: Any = await cur.fetchone()
        return bytes(row[0])

    # -- the Merkle tree ------------------------------------------------------------------

    async def integrating(self) -> bool:
        """Whether this process holds the schema's integrator lock, taking it if it is free.

        The lock is a session advisory lock on a connection of its own, outside the pool: it
        is released when that session ends (the process stopped or died, the connection was
        lost), and another process takes it at its next round. While the holder's session is
        alive it keeps the turn; each call checks that it still is. The server ends the
        session after ``_LEASE_IDLE_SECONDS`` (or five rounds) without a call
        (``idle_session_timeout``), so a process that hangs, or stops integrating, hands the
        turn on too.
        """
        if self._pool is None:
            return False
        for _ in range(2):
            try:
                return await self._hold_lease()
            except (psycopg.Error, OSError) as exc:
                was_leading = self._leading
                await self._drop_lease()
                if was_leading:
                    log.warning(
                        "the integrator lock was lost (%s); another process may take it", exc
                    )
                    return False
                # A process waiting for the turn has its session ended when idle too: try
                # again at once on a new one.
        return False

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

    async def log_sizes(self) -> dict[str, int]:
        async with self._connection("reading the log sizes") as conn:
            cur = await conn.execute("SELECT name, next_seq FROM tenants WHERE next_seq > 0")
            found: list[Any] = await cur.fetchall()
        return {str(name): int(size) for name, size in found}

    async def read_leaves(self, tenant: str, start: int, limit: int) -> list[tuple[int, bytes]]:
        if limit <= 0 or start > querysql.TOP:
            return []
        async with self._connection("reading leaves") as conn:
            tenant_id = await self._tenant_id(conn, tenant, create=False)
            if tenant_id is None:
                return []
            cur = await conn.execute(
                "SELECT seq, body FROM events WHERE tenant_id = %s AND seq >= %s"
                " ORDER BY seq LIMIT %s",
                (tenant_id, max(start, 0), limit),
                binary=True,  # the bodies as they are, not in hex
            )
            found: list[Any] = await cur.fetchall()
        return [(int(seq), bytes(body)) for seq, body in found]

    async def put_nodes(self, tenant: str, nodes: Sequence[TreeNode]) -> None:
        if not nodes:
            return
        # The nodes of a round are runs of consecutive indexes per level: sent as one array
        # per run field and the hashes as one string (psycopg dumps list items one by one).
        ordered = sorted(nodes, key=lambda n: (n[0], n[1]))
        runs: list[list[int]] = []  # level, first index, count, first byte, hash size
        position = 0
        for level, idx, digest in ordered:
            run = runs[-1] if runs else None
            if run is not None and (run[0], run[1] + run[2], run[4]) == (level, idx, len(digest)):
                run[2] += 1
            else:
                runs.append([level, idx, 1, position, len(digest)])
            position += len(digest)
        async with self._connection("storing tree nodes") as conn:
            tenant_id = await self._tenant_id(conn, tenant, create=True)
            await conn.execute(
                "INSERT INTO tree_nodes (tenant_id, level, idx, hash)"
                " SELECT %s, r.level, r.first + g.i,"
                " substring(%s::bytea FROM r.byte + g.i * r.size + 1 FOR r.size)"
                " FROM unnest(%s::int2[], %s::int8[], %s::int4[], %s::int4[], %s::int4[])"
                " AS r (level, first, count, byte, size), generate_series(0, r.count - 1) AS g (i)"
                " ON CONFLICT DO NOTHING",
                (tenant_id, b"".join(n[2] for n in ordered), *map(list, zip(*runs, strict=True))),
            )

    async def get_nodes(
        self, tenant: str, keys: Sequence[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        if not keys:
            return {}
        async with self._connection("reading tree nodes") as conn:
            tenant_id = await self._tenant_id(conn, tenant, create=False)
            if tenant_id is None:
                return {}
            cur = await conn.execute(
                "SELECT n.level, n.idx, n.hash FROM tree_nodes AS n"
                " JOIN unnest(%s::int2[], %s::int8[]) AS k (level, idx)"
                " ON n.level = k.level AND n.idx = k.idx WHERE n.tenant_id = %s",
                ([k[0] for k in keys], [k[1] for k in keys], tenant_id),
            )
            found: list[Any] = await cur.fetchall()
        return {(int(level), int(idx)): bytes(h) for level, idx, h in found}

    async def add_checkpoint(self, tenant: str, checkpoint: StoredCheckpoint) -> bool:
        async with self._connection("storing a checkpoint") as conn:
            tenant_id = await self._tenant_id(conn, tenant, create=True)
            async with conn.transaction():
                # One writer of the tenant's checkpoints at a time, from any process, so that
                # "larger than the latest" and the insert are one step.
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(%s, %s)", (database.LOCK_CHECKPOINT, tenant_id)
                )
                cur = await conn.execute(
                    "SELECT max(size) FROM checkpoints WHERE tenant_id = %s", (tenant_id,)
                )
                row: Any = await cur.fetchone()
                latest = row[0]
                stored = latest is None or checkpoint.size > latest
                if stored:
                    await conn.execute(
                        "INSERT INTO checkpoints (tenant_id, size, root_hash, timestamp_us, note)"
                        " VALUES (%s, %s, %s, %s, %s)",
                        (
                            tenant_id,
                            checkpoint.size,
                            checkpoint.root_hash,
                            checkpoint.timestamp_us,
                            checkpoint.note,
                        ),
                    )
        return stored

    async def _checkpoints(
        self, tenant: str, where: str, params: tuple[Any, ...]
    ) -> list[StoredCheckpoint]:
        async with self._connection("reading checkpoints") as conn:
            tenant_id = await self._tenant_id(conn, tenant, create=False)
            if tenant_id is None:
                return []
            cur = await conn.execute(
                records.SELECT_CHECKPOINTS + " WHERE tenant_id = %s" + where, (tenant_id, *params)
            )
            found: list[Any] = await cur.fetchall()
        return [records.checkpoint(r) for r in found]

    async def latest_checkpoint(self, tenant: str) -> StoredCheckpoint | None:
        found = await self._checkpoints(tenant, " ORDER BY size DESC LIMIT 1", ())
        return found[0] if found else None

    async def checkpoint_at_least(self, tenant: str, size: int) -> StoredCheckpoint | None:
        if size > querysql.TOP:  # beyond bigint: no log is that large
            return None
        found = await self._checkpoints(tenant, " AND size >= %s ORDER BY size LIMIT 1", (size,))
        return found[0] if found else None

    async def list_checkpoints(
        self, tenant: str, after_size: int = -1, limit: int = 1000
    ) -> list[StoredCheckpoint]:
        if after_size >= querysql.TOP:
            return []
        return await self._checkpoints(
            tenant,
            " AND size > %s ORDER BY size LIMIT %s",
            (max(after_size, -1), min(max(limit, 0), querysql.TOP)),
        )

"""The pruning part of the PostgreSQL store: horizons, sweeps, pruned ids, archive records.

``prune_to`` moves a tenant's horizon (``horizons``), refused while a legal hold is set: both
take the tenant's hold lock, so a hold set before a prune commits stops it. Every read leaves
out the seqs below the horizon from then on. ``sweep`` then removes what is below it, one
short transaction at a time:

1. the search rows and numbers of the tenant below the horizon, by seq range (both tables
   are keyed by seq), under the tenant's index lock that the indexer takes too: the indexer
   reads the horizon under that lock and never indexes below it, so nothing it writes later
   is left behind;
2. the events below the horizon. Events are partitioned by month of their commit time
   (``received_us``), across tenants. A past month's partition whose every row is below its
   tenant's horizon is dropped whole (its ids' hashes kept first): the files go back to the
   file system at once, with no dead rows for vacuum. Otherwise rows are deleted a chunk
   at a time (the edges of a tenant's range, and months that other tenants still keep).

A partition is dropped only when every tenant with rows in it has pruned past them: with
tenants of different retentions, a month goes as a whole once the longest-kept tenant in it
has pruned it, and until then the others' rows are deleted row by row (docs/operations.md).
Detaching a partition takes a brief exclusive lock on ``events``; it waits at most
``DROP_LOCK_TIMEOUT`` for it (appends queue behind that wait), tries ``DROP_ATTEMPTS`` times,
and otherwise deletes rows. The work on a whole month (is every row pruned? the ids'
hashes) runs without the statement timeout, which is meant for clients' queries.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

from psycopg import errors as pgerrors

from auditlog.model import times
from auditlog.model.retention import ArchiveRecord, Hold, id_hash
from auditlog.storage import records
from auditlog.storage.postgres import database
from auditlog.storage.postgres.base import Conn, PostgresBase

log = logging.getLogger("auditlog.storage.postgres")

_SELECT_ARCHIVES = f"SELECT {records.ARCHIVE_COLUMNS} FROM archives"  # noqa: S608
_SELECT_HOLD = "SELECT tenant, reason, set_by, set_us FROM legal_holds WHERE tenant = %s"
_MONTHLY = re.compile(r"events_([0-9]{4})_([0-9]{2})")
#: How long a partition drop waits for its lock on ``events`` before it gives up this time.
DROP_LOCK_TIMEOUT = "500ms"
#: Attempts at that lock, half a second apart, before the rows are deleted one by one instead.
DROP_ATTEMPTS = 5
#: Seconds before a partition found not droppable is looked at again.
RECHECK_SECONDS = 60.0


async def hold_lock(conn: Conn, tenant: str) -> None:
    """The tenant's hold lock, for the rest of the transaction (``set_hold``, ``prune_to``)."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (database.LOCK_HOLD, tenant)
    )


async def index_lock(conn: Conn, tenant_id: int) -> None:
    """The tenant's index lock, for the rest of the transaction (the indexer, ``sweep``)."""
    await conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (database.LOCK_INDEX, tenant_id))


class PruningPart(PostgresBase):
    """``horizon``, ``prune_to``, ``sweep``, ``reclaim_space``, ``was_pruned``, archives."""

    #: Partitions found not to be droppable (rows kept, or ``events`` too busy to detach one)
    #: during a tenant's sweep to a horizon, by when to look again: a sweep takes one chunk a
    #: call, and checking a whole month at every call would read it once per chunk. Another
    #: sweep (another tenant, or a new horizon) looks again at once.
    _not_droppable: dict[tuple[str, int, int], float] | None = None

    async def horizon(self, tenant: str) -> int:
        async with self._connection("reading a horizon") as conn:
            cur = await conn.execute(
                "SELECT h.horizon FROM horizons AS h JOIN tenants AS t USING (tenant_id)"
                " WHERE t.name = %s",
                (tenant,),
            )
            row = await cur.fetchone()
        return 0 if row is None else int(row[0])

    async def horizons(self) -> dict[str, int]:
        async with self._connection("reading horizons") as conn:
            cur = await conn.execute(
                "SELECT t.name, h.horizon FROM horizons AS h JOIN tenants AS t USING (tenant_id)"
                ' WHERE h.horizon > 0 ORDER BY t.name COLLATE "C"'
            )
            rows = await cur.fetchall()
        return {str(name): int(h) for name, h in rows}

    async def prune_to(self, tenant: str, horizon: int) -> int | Hold:
        async with self._connection("moving a horizon") as conn:
            tenant_id = await self._tenant_id(conn, tenant, create=False)
            async with conn.transaction():
                await hold_lock(conn, tenant)
                cur = await conn.execute(_SELECT_HOLD, (tenant,))
                hold: Any = await cur.fetchone()
                if hold is not None:
                    return Hold(str(hold[0]), str(hold[1]), str(hold[2]), int(hold[3]))
                if tenant_id is None:
                    return 0
                cur = await conn.execute(
                    "SELECT t.next_seq, coalesce((SELECT horizon FROM horizons"
                    " WHERE tenant_id = t.tenant_id), 0), coalesce((SELECT max(size)"
                    " FROM checkpoints WHERE tenant_id = t.tenant_id), 0)"
                    " FROM tenants AS t WHERE t.tenant_id = %s",
                    (tenant_id,),
                )
                row: Any = await cur.fetchone()
                size, current, signed = int(row[0]), int(row[1]), int(row[2])
                now = max(current, min(horizon, size, signed))
                if now > current:
                    await conn.execute(
                        "INSERT INTO horizons (tenant_id, horizon) VALUES (%s, %s)"
                        " ON CONFLICT (tenant_id) DO UPDATE SET horizon"
                        " = greatest(horizons.horizon, excluded.horizon)",
                        (tenant_id, now),
                    )
        return now

    # -- sweeping ----------------------------------------------------------------------

    async def sweep(self, tenant: str, limit: int) -> int:
        limit = max(limit, 1)
        async with self._connection("sweeping pruned events") as conn:
            tenant_id = await self._tenant_id(conn, tenant, create=False)
            if tenant_id is None:
                return 0
            cur = await conn.execute(
                "SELECT horizon FROM horizons WHERE tenant_id = %s", (tenant_id,)
            )
            row = await cur.fetchone()
            horizon = 0 if row is None else int(row[0])
            if horizon == 0:
                return 0
            while True:
                unindexed = await self._sweep_index(conn, tenant_id, horizon, limit)
                removed = await self._sweep_events(conn, tenant_id, horizon, limit)
                # Search rows outlive the events of a dropped partition: those are swept
                # here, in steps, before the sweep says that nothing is left.
                if removed or not unindexed:
                    return removed

    async def _sweep_index(self, conn: Conn, tenant_id: int, horizon: int, limit: int) -> int:
        """Step 1 (see the module): search rows and numbers of up to ``limit`` seqs; how many
        seqs (0: none is left below the horizon)."""
        async with conn.transaction():
            await index_lock(conn, tenant_id)
            cur = await conn.execute(
                "SELECT least((SELECT min(seq) FROM event_search WHERE tenant_id = %s),"
                " (SELECT min(seq) FROM event_numbers WHERE tenant_id = %s))",
                (tenant_id, tenant_id),
            )
            row = await cur.fetchone()
            if row is None or row[0] is None or int(row[0]) >= horizon:
                return 0
            low = int(row[0])
            high = min(horizon, low + limit)
            cur = await conn.execute(
                "DELETE FROM event_search WHERE tenant_id = %s AND seq >= %s AND seq < %s",
                (tenant_id, low, high),
            )
            await conn.execute(
                "DELETE FROM event_numbers WHERE tenant_id = %s AND seq >= %s AND seq < %s",
                (tenant_id, low, high),
            )
        return high - low

    async def _sweep_events(self, conn: Conn, tenant_id: int, horizon: int, limit: int) -> int:
        """Step 2 (see the module): a whole partition, or up to ``limit`` rows."""
        cur = await conn.execute(
            "SELECT seq, tableoid::regclass::text FROM events WHERE tenant_id = %s AND seq < %s"
            " ORDER BY seq LIMIT 1",
            (tenant_id, horizon),
        )
        row = await cur.fetchone()
        if row is None:
            return 0
        first, partition = int(row[0]), str(row[1]).rsplit(".", 1)[-1]
        dropped = await self._drop_if_pruned(conn, partition, (partition, tenant_id, horizon))
        if dropped is not None:
            return dropped
        async with conn.transaction():
            cur = await conn.execute(
                "DELETE FROM events WHERE tenant_id = %s AND seq >= %s AND seq < %s RETURNING id",
                (tenant_id, first, min(horizon, first + limit)),
            )
            ids = [str(r[0]) for r in await cur.fetchall()]
            if ids:
                hashes = sorted({id_hash(i) for i in ids})
                await conn.execute(
                    "INSERT INTO pruned_ids (tenant_id, id_hash) SELECT %s, unnest(%s::bigint[])"
                    " ON CONFLICT DO NOTHING",
                    (tenant_id, hashes),
                )
        return len(ids)

    def _skip_for_now(self, sweeping: tuple[str, int, int]) -> None:
        now = time.monotonic()
        kept = {k: until for k, until in (self._not_droppable or {}).items() if until > now}
        kept[sweeping] = now + RECHECK_SECONDS
        self._not_droppable = kept

    async def _drop_if_pruned(
        self, conn: Conn, partition: str, sweeping: tuple[str, int, int]
    ) -> int | None:
        """Drop ``partition`` if it is a past month's and every row in it is below its
        tenant's horizon; the rows it held, or ``None`` when it was not dropped. ``sweeping``:
        (partition, tenant id, horizon) of the sweep asking, for ``_not_droppable``."""
        match = _MONTHLY.fullmatch(partition)
        if match is None:
            return None  # the default partition is never dropped
        now = times.now_us()
        this_month = database.months_from(now, 1)[0][1]
        if database.month_start(int(match[1]), int(match[2])) >= this_month:
            return None  # this month's and later partitions are still written to
        if (self._not_droppable or {}).get(sweeping, 0.0) > time.monotonic():
            return None
        # Maintenance on a whole month, bounded by its size rather than the query timeout.
        async with conn.transaction():
            await conn.execute("SET LOCAL statement_timeout = 0")
            cur = await conn.execute(
                f"SELECT EXISTS (SELECT 1 FROM {partition} AS e LEFT JOIN horizons AS h"  # noqa: S608
                " ON h.tenant_id = e.tenant_id WHERE e.seq >= coalesce(h.horizon, 0))"
            )
            kept = await cur.fetchone()
        if kept is None or kept[0]:
            self._skip_for_now(sweeping)
            return None
        # The ids' hashes first, committed on their own (done again, they change nothing),
        # so that the drop is a short transaction.
        async with conn.transaction():
            await conn.execute("SET LOCAL statement_timeout = 0")
            await conn.execute(
                "INSERT INTO pruned_ids (tenant_id, id_hash) SELECT tenant_id,"  # noqa: S608
                f" auditlog_id_hash(id) FROM {partition} ON CONFLICT DO NOTHING"
            )
            cur = await conn.execute(f"SELECT count(*) FROM {partition}")  # noqa: S608
            counted = await cur.fetchone()
        for _ in range(DROP_ATTEMPTS):
            try:
                async with conn.transaction():
                    await conn.execute(f"SET LOCAL lock_timeout = '{DROP_LOCK_TIMEOUT}'")
                    await conn.execute(f"ALTER TABLE events DETACH PARTITION {partition}")
                    await conn.execute(f"DROP TABLE {partition}")
                break
            except pgerrors.LockNotAvailable:
                await asyncio.sleep(0.5)
        else:
            log.info("partition %s: events stays busy; deleting its rows one by one", partition)
            self._skip_for_now(sweeping)
            return None
        count = int(counted[0]) if counted else 0
        log.info("dropped event partition %s (%s pruned events)", partition, count)
        return count

    async def reclaim_space(self) -> int:
        return 0  # dropped partitions give their files back; autovacuum reuses the rest

    async def was_pruned(self, tenant: str, event_id: str) -> bool:
        if "\x00" in event_id:
            return False
        async with self._connection("looking up a pruned id") as conn:
            tenant_id = await self._tenant_id(conn, tenant, create=False)
            if tenant_id is None:
                return False
            cur = await conn.execute(
                "SELECT EXISTS (SELECT 1 FROM pruned_ids WHERE tenant_id = %s AND id_hash = %s)"
                " OR EXISTS (SELECT 1 FROM events AS e JOIN horizons AS h USING (tenant_id)"
                " WHERE e.tenant_id = %s AND e.id = %s AND e.seq < h.horizon)",
                (tenant_id, id_hash(event_id), tenant_id, event_id),
            )
            row = await cur.fetchone()
        return bool(row and row[0])

    # -- archives ----------------------------------------------------------------------

    async def add_archive(self, record: ArchiveRecord) -> None:
        r = record
        async with self._connection("recording an archive") as conn:
            await conn.execute(
                f"INSERT INTO archives ({records.ARCHIVE_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"  # noqa: S608
                " ON CONFLICT (tenant, sha256) DO NOTHING",
                records.archive_values(r),
            )

    async def list_archives(self, tenant: str | None = None) -> list[ArchiveRecord]:
        where, params = ("", ()) if tenant is None else (" WHERE tenant = %s", (tenant,))
        async with self._connection("listing archives") as conn:
            cur = await conn.execute(
                _SELECT_ARCHIVES + where + ' ORDER BY tenant COLLATE "C", first_seq, end_seq,'
                " sha256",
                params,
            )
            rows = await cur.fetchall()
        return [records.archive(r) for r in rows]

"""The pruning part of the SQLite store: horizons, sweeps, pruned ids, archive records.

Pruning a tenant moves its horizon first (``prune_to``: one small write, refused while a
legal hold is set), and every read leaves out the seqs below it from then on. ``sweep`` then
removes the rows below the horizon in an order that a crash anywhere cannot spoil:

1. the index entries of the pruned events go first. The indexer, the one writer of the
   search index's file, does it between its batches (``Indexer._unindex``): the full-text
   table keeps no content, so a removal must name the tokens it removes, which it computes
   again from the bodies, and it raises the tenant's ``pruned.below`` mark past them in the
   same transaction. Entries exist only for the seqs in [below, progress), and nothing is
   indexed below ``below``, so the entries removed are exactly those that exist. A store
   without an indexer process (commands, tests) does it in its own process;
2. then, on the writer thread, in transactions as short as a group commit, the rows below
   ``below``: their ids' hashes kept (``was_pruned``), the rows deleted.

A crash between the two leaves rows whose entries are gone: they are below the horizon, so
no read sees them, and the next sweep deletes them. Freed pages are given back to the file
system a step at a time (``reclaim_space`` for the events, the indexer for its own file) in
databases made with ``auto_vacuum = INCREMENTAL``, which every database made by this version
is.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time

from auditlog.model.retention import ArchiveRecord, Hold, id_hash
from auditlog.storage import records
from auditlog.storage.sqlite import database, querysql
from auditlog.storage.sqlite.base import SQLiteBase, immediate, insert_rows
from auditlog.storage.sqlite.indexer import Indexer
from auditlog.storage.sqlite.retention import SELECT_HOLDS, hold_of

_SELECT_ARCHIVES = f"SELECT {records.ARCHIVE_COLUMNS} FROM archives"  # noqa: S608
#: Pages given back by one ``incremental_vacuum`` step (4 MiB of 4 KiB pages): short enough
#: that appends waiting behind it hardly notice.
_VACUUM_PAGES = 1024
#: Seconds a sweep waits for the indexer process to remove pruned entries (polling every
#: ``UNINDEX_POLL``) before it removes them itself.
UNINDEX_PATIENCE = 5.0
UNINDEX_POLL = 0.05


class PruningPart(SQLiteBase):
    """``horizon``, ``prune_to``, ``sweep``, ``reclaim_space``, ``was_pruned``, archives."""

    _unindexer: Indexer | None = None
    _sweeping: asyncio.Lock | None = None

    # -- horizons ----------------------------------------------------------------------

    async def horizon(self, tenant: str) -> int:
        try:
            row = self._r().execute("SELECT horizon FROM tenants WHERE name = ?", (tenant,))
            found = row.fetchone()
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "reading a horizon") from exc
        return 0 if found is None else int(found[0])

    async def horizons(self) -> dict[str, int]:
        try:
            rows = self._r().execute(
                "SELECT name, horizon FROM tenants WHERE horizon > 0 ORDER BY name"
            )
            return {str(name): int(h) for name, h in rows.fetchall()}
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "reading horizons") from exc

    async def prune_to(self, tenant: str, horizon: int) -> int | Hold:
        return await self._write(self._prune_to, tenant, horizon)

    def _prune_to(self, tenant: str, horizon: int) -> int | Hold:
        # Under the write lock, as set_hold: a hold set before this commits is seen here.
        conn = self._w()
        try:
            with immediate(conn):
                hold = conn.execute(SELECT_HOLDS + " WHERE tenant = ?", (tenant,)).fetchone()
                if hold is not None:
                    return hold_of(hold)
                row = conn.execute(
                    "SELECT n.tenant_id, n.size, n.horizon, coalesce(max(c.size), 0)"
                    " FROM tenants AS n LEFT JOIN checkpoints AS c ON c.tenant_id = n.tenant_id"
                    " WHERE n.name = ? GROUP BY n.tenant_id",
                    (tenant,),
                ).fetchone()
                now = 0
                if row is not None:
                    tenant_id, size, current, signed = (int(v) for v in row)
                    now = max(current, min(horizon, size, signed))
                    if now != current:
                        conn.execute(
                            "UPDATE tenants SET horizon = ? WHERE tenant_id = ?", (now, tenant_id)
                        )
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "moving a horizon") from exc
        return now

    # -- sweeping ----------------------------------------------------------------------

    def _sweep_lock(self) -> asyncio.Lock:
        """One sweep or reclaim at a time in this process."""
        if self._sweeping is None:
            self._sweeping = asyncio.Lock()
        return self._sweeping

    async def sweep(self, tenant: str, limit: int) -> int:
        async with self._sweep_lock():
            waiting_since: float | None = None
            while True:
                found = await self._on_pool(self._swept_chunk, tenant, max(limit, 1))
                if isinstance(found, tuple):
                    return await self._write(self._delete_rows, *found)
                if not found:
                    return 0  # nothing below the horizon
                # Rows wait for the indexer to remove their entries (step 1): the indexer
                # process does it between its batches; without one, or when it makes no
                # progress, this process does it.
                now = time.monotonic()
                waiting_since = waiting_since or now
                if self._indexer is None or now - waiting_since > UNINDEX_PATIENCE:
                    await self._on_pool(self._unindex_here, max(limit, 1))
                    waiting_since = None
                else:
                    await asyncio.sleep(UNINDEX_POLL)

    def _swept_chunk(
        self, tenant: str, limit: int
    ) -> tuple[int, int, int, list[tuple[int, str]]] | bool:
        """The next rows below the tenant's horizon whose index entries are gone, as
        (tenant id, first seq, end seq, [(key, id)]); else whether rows below the horizon
        wait for their entries to go (``True``) or none is left (``False``)."""
        conn = self._thread_conn()
        try:
            conn.execute("BEGIN")  # one snapshot of both files
            try:
                row = conn.execute(
                    "SELECT n.tenant_id, n.horizon, coalesce(p.below, 0) FROM tenants AS n"
                    " LEFT JOIN t.pruned AS p ON p.tenant_id = n.tenant_id WHERE n.name = ?",
                    (tenant,),
                ).fetchone()
                if row is None or int(row[1]) == 0:
                    return False
                tenant_id, horizon, below = int(row[0]), int(row[1]), int(row[2])
                low = querysql.key_of(tenant_id, 0)
                high = querysql.key_of(tenant_id, min(horizon, below))
                rows = conn.execute(
                    "SELECT key, id FROM events WHERE key >= ? AND key < ? ORDER BY key LIMIT ?",
                    (low, high, limit),
                ).fetchall()
                if not rows:
                    waiting = conn.execute(
                        "SELECT EXISTS (SELECT 1 FROM events WHERE key >= ? AND key < ?)",
                        (high, querysql.key_of(tenant_id, horizon)),
                    ).fetchone()[0]
                    return bool(waiting)
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "reading events to sweep") from exc
        first = int(rows[0][0]) & querysql.SEQ_MASK
        last = int(rows[-1][0]) & querysql.SEQ_MASK
        return tenant_id, first, last + 1, [(int(k), str(i)) for k, i in rows]

    def _unindex_here(self, limit: int) -> None:
        """Step 1 in this process: the indexer's removal of pruned entries, indexing nothing."""
        if self._unindexer is None:
            self._unindexer = Indexer(self.path)
        self._unindexer.index_batch(limit, index=False)

    def _delete_rows(
        self, tenant_id: int, first: int, end: int, rows: list[tuple[int, str]]
    ) -> int:
        """Step 2 (see the module): the ids' hashes kept, the rows gone, in one transaction."""
        conn = self._w()
        try:
            with immediate(conn):
                hashes = sorted({(tenant_id, id_hash(event_id)) for _, event_id in rows})
                insert_rows(conn, "pruned_ids (tenant_id, id_hash)", hashes, "INSERT OR IGNORE")
                cur = conn.execute(
                    "DELETE FROM events WHERE key >= ? AND key < ?",
                    (querysql.key_of(tenant_id, first), querysql.key_of(tenant_id, end)),
                )
                removed = max(cur.rowcount, 0)
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "deleting pruned events") from exc
        return removed

    async def reclaim_space(self) -> int:
        async with self._sweep_lock():
            total = 0
            while freed := await self._write(self._vacuum_step):
                total += freed  # one step at a time: appends go in between
            if self._unindexer is not None:  # the index's part, done here: no indexer process
                total += await self._on_pool(self._unindexer.compact)
            return total

    def _vacuum_step(self) -> int:
        try:
            return database.give_back(self._w(), _VACUUM_PAGES)
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "giving space back") from exc

    async def was_pruned(self, tenant: str, event_id: str) -> bool:
        try:
            row = (
                self._r()
                .execute(
                    "SELECT EXISTS (SELECT 1 FROM pruned_ids WHERE tenant_id = n.tenant_id"
                    " AND id_hash = ?) OR EXISTS (SELECT 1 FROM events AS e WHERE"
                    " e.tenant_id = n.tenant_id AND e.id = ? AND e.key < ? * n.tenant_id"
                    " + n.horizon) FROM tenants AS n WHERE n.name = ?",
                    (id_hash(event_id), event_id, querysql.SEQ_MASK + 1, tenant),
                )
                .fetchone()
            )
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "looking up a pruned id") from exc
        return bool(row and row[0])

    # -- archives ----------------------------------------------------------------------

    async def add_archive(self, record: ArchiveRecord) -> None:
        await self._write(self._add_archive, record)

    def _add_archive(self, r: ArchiveRecord) -> None:
        try:
            self._w().execute(
                f"INSERT INTO archives ({records.ARCHIVE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"  # noqa: S608
                " ON CONFLICT (tenant, sha256) DO NOTHING",
                records.archive_values(r),
            )
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "recording an archive") from exc

    async def list_archives(self, tenant: str | None = None) -> list[ArchiveRecord]:
        where, params = ("", ()) if tenant is None else (" WHERE tenant = ?", (tenant,))
        try:
            rows = self._r().execute(
                _SELECT_ARCHIVES + where + " ORDER BY tenant, first_seq, end_seq, sha256", params
            )
            return [records.archive(r) for r in rows.fetchall()]
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "listing archives") from exc

    async def close(self) -> None:
        await super().close()
        if self._unindexer is not None:
            self._unindexer.close()
            self._unindexer = None

"""The pruning part of the SQLite store: horizons, sweeps, pruned ids, archive records.

Pruning a tenant moves its horizon first (``prune_to``: one small write, refused while a
legal hold is set), and every read leaves out the seqs below it from then on. ``sweep`` then
removes the rows below the horizon a chunk at a time, in an order that a crash anywhere
cannot spoil:

1. on a reader thread, read the chunk's rows (key, id, body);
2. in the search index's file, under its write lock (which the indexer holds while it
   indexes): remove the chunk's index entries, recomputed from the bodies (the full-text
   table keeps no content, so a removal must name the tokens it removes), and its numbers,
   then raise the tenant's ``pruned.below`` mark past the chunk. Entries exist only for the
   seqs in [below, progress) and the indexer never indexes below ``below``, so the entries
   removed are exactly those that exist, and doing the step again removes nothing;
3. on the writer thread, in one short transaction like a group commit: remember the ids'
   hashes and delete the rows.

A crash between 2 and 3 leaves rows whose entries are gone: they are below the horizon, so
no read sees them, and the next sweep deletes them. Freed pages are given back to the file
system by ``reclaim_space`` (``PRAGMA incremental_vacuum``) in databases made with
``auto_vacuum = INCREMENTAL``, which every database made by this version is.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from auditlog.model.retention import ArchiveRecord, Hold, id_hash
from auditlog.storage import numbers
from auditlog.storage.sqlite import database, querysql, terms
from auditlog.storage.sqlite.base import SQLiteBase, insert_rows
from auditlog.storage.sqlite.retention import SELECT_HOLDS, hold_of

_SELECT_ARCHIVES = (
    "SELECT tenant, first_seq, end_seq, sha256, location, checkpoint_size, created_us,"
    " created_by FROM archives"
)
#: Pages given back by one ``incremental_vacuum`` step (4 MiB of 4 KiB pages): short enough
#: that appends waiting behind it hardly notice.
_VACUUM_PAGES = 1024


def _archive(row: Sequence[Any]) -> ArchiveRecord:
    return ArchiveRecord(
        str(row[0]), int(row[1]), int(row[2]), str(row[3]), str(row[4]), int(row[5]),
        int(row[6]), str(row[7]),
    )  # fmt: skip


class PruningPart(SQLiteBase):
    """``horizon``, ``prune_to``, ``sweep``, ``reclaim_space``, ``was_pruned``, archives."""

    _terms_writer: sqlite3.Connection | None = None
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
            conn.execute("BEGIN IMMEDIATE")
            try:
                hold = conn.execute(SELECT_HOLDS + " WHERE tenant = ?", (tenant,)).fetchone()
                if hold is not None:
                    conn.execute("COMMIT")
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
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "moving a horizon") from exc
        return now

    # -- sweeping ----------------------------------------------------------------------

    async def sweep(self, tenant: str, limit: int) -> int:
        if self._sweeping is None:
            self._sweeping = asyncio.Lock()
        async with self._sweeping:  # one sweep at a time in this process
            found = await self._on_pool(self._swept_chunk, tenant, max(limit, 1))
            if found is None:
                return 0
            tenant_id, first, end, rows = found
            await self._on_pool(self._unindex, tenant, tenant_id, end, rows)
            return await self._write(self._delete_rows, tenant_id, first, end, rows)

    def _swept_chunk(
        self, tenant: str, limit: int
    ) -> tuple[int, int, int, list[tuple[int, str, bytes]]] | None:
        """The next rows below the tenant's horizon: (tenant id, first seq, end seq, rows)."""
        conn = self._thread_conn()
        try:
            row = conn.execute(
                "SELECT tenant_id, horizon FROM tenants WHERE name = ?", (tenant,)
            ).fetchone()
            if row is None or int(row[1]) == 0:
                return None
            tenant_id, horizon = int(row[0]), int(row[1])
            low, high = querysql.key_of(tenant_id, 0), querysql.key_of(tenant_id, horizon)
            rows = conn.execute(
                "SELECT key, id, body FROM events WHERE key >= ? AND key < ? ORDER BY key LIMIT ?",
                (low, high, limit),
            ).fetchall()
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "reading events to sweep") from exc
        if not rows:
            return None
        first = int(rows[0][0]) & querysql.SEQ_MASK
        # The chunk ends after its last row, or at the horizon when it holds every row left.
        end = horizon if len(rows) < limit else (int(rows[-1][0]) & querysql.SEQ_MASK) + 1
        found = [
            (int(k), str(i), bytes(b) if not isinstance(b, str) else b.encode()) for k, i, b in rows
        ]
        return tenant_id, first, end, found

    def _terms_conn(self) -> sqlite3.Connection:
        if self._terms_writer is None:
            self._terms_writer = database.connect(self.terms_path, synchronous="NORMAL")
        return self._terms_writer

    def _unindex(
        self, tenant: str, tenant_id: int, end: int, rows: list[tuple[int, str, bytes]]
    ) -> None:
        """Step 2 (see the module): the index entries of the chunk's rows, and the mark."""
        conn = self._terms_conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                marks = conn.execute(
                    "SELECT coalesce((SELECT next_seq FROM progress WHERE tenant_id = ?), 0),"
                    " coalesce((SELECT below FROM pruned WHERE tenant_id = ?), 0)",
                    (tenant_id, tenant_id),
                ).fetchone()
                progress, below = int(marks[0]), int(marks[1])
                docs: list[tuple[str, int, str]] = []
                found: list[tuple[int, int, numbers.Number, int]] = []
                for key, _, body in rows:
                    seq = key & querysql.SEQ_MASK
                    if not below <= seq < progress:
                        continue  # never indexed, or its entries are gone already
                    try:
                        event = orjson.loads(body)
                    except orjson.JSONDecodeError:
                        continue
                    if not isinstance(event, dict):
                        continue
                    doc, held = terms.event_terms_and_numbers(tenant, event)
                    docs.append(("delete", key, doc))
                    found += [(tenant_id, pid, n, key) for pid, n in held.numbers]
                if docs:
                    conn.executemany(
                        "INSERT INTO events_terms (events_terms, rowid, terms) VALUES (?, ?, ?)",
                        docs,
                    )
                if found:
                    conn.executemany(
                        "DELETE FROM numbers WHERE tenant_id = ? AND path = ? AND v = ?"
                        " AND key = ?",
                        sorted(found),
                    )
                if end > below:
                    conn.execute(
                        "INSERT INTO pruned (tenant_id, below) VALUES (?, ?) ON CONFLICT"
                        " (tenant_id) DO UPDATE SET below = excluded.below",
                        (tenant_id, end),
                    )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "removing index entries") from exc

    def _delete_rows(
        self, tenant_id: int, first: int, end: int, rows: list[tuple[int, str, bytes]]
    ) -> int:
        """Step 3 (see the module): the ids' hashes kept, the rows gone, in one transaction."""
        conn = self._w()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                hashes = sorted({(tenant_id, id_hash(event_id)) for _, event_id, _ in rows})
                insert_rows(conn, "pruned_ids (tenant_id, id_hash)", hashes, "INSERT OR IGNORE")
                cur = conn.execute(
                    "DELETE FROM events WHERE key >= ? AND key < ?",
                    (querysql.key_of(tenant_id, first), querysql.key_of(tenant_id, end)),
                )
                removed = max(cur.rowcount, 0)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "deleting pruned events") from exc
        return removed

    async def reclaim_space(self) -> int:
        if self._sweeping is None:
            self._sweeping = asyncio.Lock()
        async with self._sweeping:
            total = 0
            while freed := await self._write(self._vacuum_step, None):
                total += freed  # one step at a time: appends go in between
            return total + await self._on_pool(self._vacuum_terms)

    def _vacuum_step(self, conn: sqlite3.Connection | None) -> int:
        conn = conn or self._w()
        try:
            page = int(conn.execute("PRAGMA page_size").fetchone()[0])
            if int(conn.execute("PRAGMA auto_vacuum").fetchone()[0]) != 2:
                return 0  # a database made without incremental vacuum keeps its pages
            before = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
            if before == 0:
                return 0
            conn.execute(f"PRAGMA incremental_vacuum({_VACUUM_PAGES})").fetchall()
            after = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "giving space back") from exc
        return max(before - after, 0) * page

    def _vacuum_terms(self) -> int:
        total = 0
        while freed := self._vacuum_step(self._terms_conn()):
            total += freed
        return total

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
                "INSERT INTO archives (tenant, sha256, first_seq, end_seq, location,"
                " checkpoint_size, created_us, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (tenant, sha256) DO NOTHING",
                (r.tenant, r.sha256, r.first_seq, r.end_seq, r.location, r.checkpoint_size,
                 r.created_us, r.created_by),
            )  # fmt: skip
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "recording an archive") from exc

    async def list_archives(self, tenant: str | None = None) -> list[ArchiveRecord]:
        where, params = ("", ()) if tenant is None else (" WHERE tenant = ?", (tenant,))
        try:
            rows = self._r().execute(
                _SELECT_ARCHIVES + where + " ORDER BY tenant, first_seq, end_seq, sha256", params
            )
            return [_archive(r) for r in rows.fetchall()]
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "listing archives") from exc

    async def close(self) -> None:
        await super().close()
        if self._terms_writer is not None:
            self._terms_writer.close()
            self._terms_writer = None

"""The Merkle part of the SQLite store: leaves, tree nodes and checkpoints for the integrator."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from auditlog.storage import records
from auditlog.storage.base import Integration, StoredCheckpoint, TreeNode
from auditlog.storage.sqlite import database, querysql
from auditlog.storage.sqlite.base import SQLiteBase, insert_rows

_SELECT_CHECKPOINTS = (
    records.SELECT_CHECKPOINTS + " WHERE tenant_id = (SELECT tenant_id FROM tenants WHERE name = ?)"  # noqa: S608
)
#: Most (level, index) pairs looked up by one statement.
_NODE_CHUNK = 400
#: Node lookups up to this many run on the loop's own connection (a proof's few probes).
_NODES_INLINE = 64
#: Leaf reads up to this many run on the loop's own connection.
_LEAVES_INLINE = 20_000


class MerklePart(SQLiteBase):
    """What the integrator reads and writes: log sizes, leaves, tree nodes, checkpoints."""

    # -- the Merkle tree ------------------------------------------------------------------

    async def integrating(self) -> bool:
        return True  # a SQLite database is served by one process

    async def log_sizes(self) -> dict[str, int]:
        try:
            rows = self._r().execute("SELECT name, size FROM tenants WHERE size > 0").fetchall()
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "reading the log sizes") from exc
        return {str(name): int(size) for name, size in rows}

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
            row = conn.execute(
                "SELECT tenant_id, horizon FROM tenants WHERE name = ?", (tenant,)
            ).fetchone()
            if row is None or limit <= 0 or start > querysql.SEQ_MASK:
                return []
            tenant_id, start = int(row[0]), max(start, int(row[1]))
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

            def put(conn: sqlite3.Connection) -> None:
                self._insert_nodes(conn, self._tenant_id(conn, tenant), nodes)

            await self._transact(put, "storing tree nodes", urgent=True)

    @staticmethod
    def _insert_nodes(conn: sqlite3.Connection, tenant_id: int, nodes: Sequence[TreeNode]) -> None:
        if not nodes:
            return
        rows = [(tenant_id, level, index, h) for level, index, h in nodes]
        insert_rows(conn, "tree_nodes (tenant_id, level, idx, hash)", rows, "INSERT OR IGNORE")

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
        def add(conn: sqlite3.Connection) -> bool:
            return self._insert_checkpoint(conn, self._tenant_id(conn, tenant), checkpoint)

        return await self._transact(add, "storing a checkpoint", urgent=True)

    async def add_integrations(self, integrations: Sequence[Integration]) -> list[bool]:
        if not integrations:
            return []

        def add(conn: sqlite3.Connection) -> list[bool]:
            stored = []
            for i in integrations:
                tenant_id = self._tenant_id(conn, i.tenant)
                self._insert_nodes(conn, tenant_id, i.nodes)
                stored.append(self._insert_checkpoint(conn, tenant_id, i.checkpoint))
            return stored

        return await self._transact(add, "storing an integrator round", urgent=True)

    @staticmethod
    def _insert_checkpoint(
        conn: sqlite3.Connection, tenant_id: int, checkpoint: StoredCheckpoint
    ) -> bool:
        # Under the write lock (BEGIN IMMEDIATE), "larger than the latest" and the insert are
        # one step, also against other processes on this database.
        latest = conn.execute(
            "SELECT max(size) FROM checkpoints WHERE tenant_id = ?", (tenant_id,)
        ).fetchone()[0]
        if latest is not None and checkpoint.size <= latest:
            return False
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
        # Its leaf of the tenants log: the next index, under the same write lock.
        conn.execute(
            "INSERT INTO tenants_leaves (idx, tenant_id, size)"
            " SELECT coalesce(max(idx) + 1, 0), ?, ? FROM tenants_leaves",
            (tenant_id, checkpoint.size),
        )
        return True

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

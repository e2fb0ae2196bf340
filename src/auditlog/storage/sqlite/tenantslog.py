"""The tenants-log part of the SQLite store: its leaves, tree nodes and checkpoints, the
witnesses' cosignatures and states (``auditlog.service.integrator.tenants_tree``).

The leaves themselves are written by ``MerklePart.add_checkpoint``, in the transaction that
stores the checkpoint; this part reads them and keeps the rest.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from auditlog.storage.base import StoredCheckpoint, TenantsLeaf, TreeNode, WitnessState
from auditlog.storage.sqlite import database
from auditlog.storage.sqlite.base import SQLiteBase, insert_rows

#: Larger than any index or size; numbers past it are cut to it (SQLite integers are 64-bit).
_TOP = (1 << 62) - 1
_SELECT_LEAVES = (
    "SELECT l.idx, n.name, c.size, c.root_hash, c.timestamp_us, c.note FROM tenants_leaves AS l"
    " JOIN tenants AS n ON n.tenant_id = l.tenant_id"
    " JOIN checkpoints AS c ON c.tenant_id = l.tenant_id AND c.size = l.size"
)
#: The tenant's leaf with the largest index below a given one.
_TENANT_LEAF = (
    _SELECT_LEAVES + " WHERE l.tenant_id = (SELECT tenant_id FROM tenants WHERE name = ?)"  # noqa: S608
    " AND l.idx < ? ORDER BY l.idx DESC LIMIT 1"
)
_SELECT_CHECKPOINTS = "SELECT size, root_hash, timestamp_us, {0} FROM tenants_checkpoints"
_SELECT_WITNESSES = (
    "SELECT name, url, size, error, refusals, updated_us FROM witness_states ORDER BY name"
)
#: Most (level, index) pairs looked up by one statement.
_NODE_CHUNK = 400
#: Leaf reads up to this many run on the loop's own connection.
_LEAVES_INLINE = 1000


def _leaf(row: Sequence[Any]) -> TenantsLeaf:
    checkpoint = StoredCheckpoint(int(row[2]), bytes(row[3]), int(row[4]), str(row[5]))
    return TenantsLeaf(int(row[0]), str(row[1]), checkpoint)


def _checkpoint(row: Sequence[Any]) -> StoredCheckpoint:
    return StoredCheckpoint(int(row[0]), bytes(row[1]), int(row[2]), str(row[3]))


class TenantsLogPart(SQLiteBase):
    """The tenants log: reads on the loop's connection (or a reader thread for long ones),
    writes on the write connection (``_transact``, ``_write``)."""

    def _read_tenants(
        self, what: str, sql: str, params: Sequence[Any], conn: sqlite3.Connection | None = None
    ) -> list[Any]:
        try:
            return (conn or self._r()).execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, what) from exc

    # -- leaves -----------------------------------------------------------------------------

    async def read_tenants_leaves(self, start: int, limit: int) -> list[TenantsLeaf]:
        if limit <= 0 or start > _TOP:
            return []
        params = (max(start, 0), min(limit, _TOP))
        if limit <= _LEAVES_INLINE:
            return self._read_tenants_leaves(params, self._r())
        return await self._on_pool(self._read_tenants_leaves, params, None)

    def _read_tenants_leaves(
        self, params: tuple[int, int], conn: sqlite3.Connection | None
    ) -> list[TenantsLeaf]:
        rows = self._read_tenants(
            "reading the tenants log",
            _SELECT_LEAVES + " WHERE l.idx >= ? ORDER BY l.idx LIMIT ?",
            params,
            conn or self._thread_conn(),
        )
        return [_leaf(r) for r in rows]

    async def tenants_leaf(self, tenant: str, below: int) -> TenantsLeaf | None:
        if below <= 0:
            return None
        rows = self._read_tenants(
            "reading the tenants log",
            _TENANT_LEAF,
            (tenant, min(below, _TOP)),
        )
        return _leaf(rows[0]) if rows else None

    # -- tree nodes -------------------------------------------------------------------------

    async def put_tenants_nodes(self, nodes: Sequence[TreeNode]) -> None:
        if nodes:

            def put(conn: sqlite3.Connection) -> None:
                insert_rows(conn, "tenants_nodes (level, idx, hash)", nodes, "INSERT OR IGNORE")

            await self._transact(put, "storing tenants-log nodes", urgent=True)

    async def get_tenants_nodes(
        self, keys: Sequence[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        by_level: dict[int, list[int]] = {}
        for level, index in keys:
            by_level.setdefault(level, []).append(min(index, _TOP))
        found: dict[tuple[int, int], bytes] = {}
        for level, indexes in by_level.items():
            for start in range(0, len(indexes), _NODE_CHUNK):
                chunk = indexes[start : start + _NODE_CHUNK]
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT idx, hash FROM tenants_nodes WHERE level = ? AND idx IN ({marks})"  # noqa: S608
                for index, h in self._read_tenants(
                    "reading tenants-log nodes", sql, (level, *chunk)
                ):
                    found[(level, int(index))] = bytes(h)
        return found

    # -- checkpoints and cosignatures -------------------------------------------------------

    async def add_tenants_checkpoint(self, checkpoint: StoredCheckpoint) -> bool:
        def add(conn: sqlite3.Connection) -> bool:
            # Under the write lock, "larger than the latest" and the insert are one step.
            latest = conn.execute("SELECT max(size) FROM tenants_checkpoints").fetchone()[0]
            if latest is not None and checkpoint.size <= latest:
                return False
            conn.execute(
                "INSERT INTO tenants_checkpoints (size, root_hash, timestamp_us, note)"
                " VALUES (?, ?, ?, ?)",
                (checkpoint.size, checkpoint.root_hash, checkpoint.timestamp_us, checkpoint.note),
            )
            return True

        return await self._transact(add, "storing a tenants checkpoint", urgent=True)

    async def latest_tenants_checkpoint(self) -> StoredCheckpoint | None:
        rows = self._read_tenants(
            "reading tenants checkpoints",
            _SELECT_CHECKPOINTS.format("note") + " ORDER BY size DESC LIMIT 1",
            (),
        )
        return _checkpoint(rows[0]) if rows else None

    async def add_cosignatures(self, size: int, cosigned: str, quorum: bool) -> bool:
        if not 0 <= size <= _TOP:
            return False
        return await self._write(self._add_cosignatures, size, cosigned, quorum, urgent=True)

    def _add_cosignatures(self, size: int, cosigned: str, quorum: bool) -> bool:
        try:
            cur = self._w().execute(
                "UPDATE tenants_checkpoints SET cosigned = ?, quorum = max(quorum, ?)"
                " WHERE size = ?",
                (cosigned, int(quorum), size),
            )
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "storing cosignatures") from exc
        return cur.rowcount > 0

    async def witnessed_tenants_checkpoint(self) -> StoredCheckpoint | None:
        rows = self._read_tenants(
            "reading tenants checkpoints",
            _SELECT_CHECKPOINTS.format("coalesce(cosigned, note)")
            + " WHERE quorum = 1 ORDER BY size DESC LIMIT 1",
            (),
        )
        return _checkpoint(rows[0]) if rows else None

    async def cosigned_tenants_checkpoint(self, size: int) -> StoredCheckpoint | None:
        if not 0 <= size <= _TOP:
            return None
        rows = self._read_tenants(
            "reading tenants checkpoints",
            _SELECT_CHECKPOINTS.format("coalesce(cosigned, note)") + " WHERE size = ?",
            (size,),
        )
        return _checkpoint(rows[0]) if rows else None

    # -- witnesses --------------------------------------------------------------------------

    async def set_witness_state(self, state: WitnessState) -> None:
        await self._write(self._set_witness_state, state)

    def _set_witness_state(self, s: WitnessState) -> None:
        try:
            self._w().execute(
                "INSERT OR REPLACE INTO witness_states (name, url, size, error, refusals,"
                " updated_us) VALUES (?, ?, ?, ?, ?, ?)",
                (s.name, s.url, s.size, s.error, s.refusals, s.updated_us),
            )
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "storing a witness's state") from exc

    async def list_witness_states(self) -> list[WitnessState]:
        rows = self._read_tenants("listing witness states", _SELECT_WITNESSES, ())
        return [
            WitnessState(str(r[0]), str(r[1]), int(r[2]), str(r[3]), int(r[4]), int(r[5]))
            for r in rows
        ]

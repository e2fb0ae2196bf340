"""The tenants-log part of the PostgreSQL store: its leaves, tree nodes and checkpoints, the
witnesses' cosignatures and states (``auditlog.service.integrator.tenants_tree``).

The leaves themselves are written by ``MerklePart.add_checkpoint``, in the transaction that
stores the checkpoint, with the next index from the one row of ``tenants_log`` (its row lock
orders the writers of every process); this part reads them and keeps the rest. Everything runs
on the primary's pool: the integrator must see what it wrote a moment ago.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from auditlog.storage.base import StoredCheckpoint, TenantsLeaf, TreeNode, WitnessState
from auditlog.storage.postgres.base import PostgresBase
from auditlog.storage.postgres.querysql import TOP

_SELECT_LEAVES = (
    "SELECT l.idx, n.name, c.size, c.root_hash, c.timestamp_us, c.note FROM tenants_leaves AS l"
    " JOIN tenants AS n ON n.tenant_id = l.tenant_id"
    " JOIN checkpoints AS c ON c.tenant_id = l.tenant_id AND c.size = l.size"
)
#: The tenant's leaf with the largest index below a given one.
_TENANT_LEAF = (
    _SELECT_LEAVES + " WHERE l.tenant_id = (SELECT tenant_id FROM tenants WHERE name = %s)"  # noqa: S608
    " AND l.idx < %s ORDER BY l.idx DESC LIMIT 1"
)
_SELECT_CHECKPOINTS = "SELECT size, root_hash, timestamp_us, {0} FROM tenants_checkpoints"


def _leaf(row: Sequence[Any]) -> TenantsLeaf:
    checkpoint = StoredCheckpoint(int(row[2]), bytes(row[3]), int(row[4]), str(row[5]))
    return TenantsLeaf(int(row[0]), str(row[1]), checkpoint)


def _checkpoint(row: Sequence[Any]) -> StoredCheckpoint:
    return StoredCheckpoint(int(row[0]), bytes(row[1]), int(row[2]), str(row[3]))


class TenantsLogPart(PostgresBase):
    """The tenants log, its checkpoints and cosignatures, and the witnesses' states."""

    async def _rows(self, what: str, sql: str, params: Sequence[Any]) -> list[Any]:
        async with self._connection(what) as conn:
            cur = await conn.execute(sql, params)
            return await cur.fetchall()

    # -- leaves -----------------------------------------------------------------------------

    async def read_tenants_leaves(self, start: int, limit: int) -> list[TenantsLeaf]:
        if limit <= 0 or start > TOP:
            return []
        rows = await self._rows(
            "reading the tenants log",
            _SELECT_LEAVES + " WHERE l.idx >= %s ORDER BY l.idx LIMIT %s",
            (max(start, 0), min(limit, TOP)),
        )
        return [_leaf(r) for r in rows]

    async def tenants_leaf(self, tenant: str, below: int) -> TenantsLeaf | None:
        if below <= 0:
            return None
        rows = await self._rows(
            "reading the tenants log",
            _TENANT_LEAF,
            (tenant, min(below, TOP)),
        )
        return _leaf(rows[0]) if rows else None

    # -- tree nodes -------------------------------------------------------------------------

    async def put_tenants_nodes(self, nodes: Sequence[TreeNode]) -> None:
        if not nodes:
            return
        async with self._connection("storing tenants-log nodes") as conn:
            await conn.execute(
                "INSERT INTO tenants_nodes (level, idx, hash)"
                " SELECT * FROM unnest(%s::int2[], %s::int8[], %s::bytea[])"
                " ON CONFLICT DO NOTHING",
                ([n[0] for n in nodes], [n[1] for n in nodes], [bytes(n[2]) for n in nodes]),
            )

    async def get_tenants_nodes(
        self, keys: Sequence[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        if not keys:
            return {}
        rows = await self._rows(
            "reading tenants-log nodes",
            "SELECT n.level, n.idx, n.hash FROM tenants_nodes AS n"
            " JOIN unnest(%s::int2[], %s::int8[]) AS k (level, idx)"
            " ON n.level = k.level AND n.idx = k.idx",
            ([k[0] for k in keys], [min(k[1], TOP) for k in keys]),
        )
        return {(int(level), int(idx)): bytes(h) for level, idx, h in rows}

    # -- checkpoints and cosignatures -------------------------------------------------------

    async def add_tenants_checkpoint(self, checkpoint: StoredCheckpoint) -> bool:
        async with (
            self._connection("storing a tenants checkpoint") as conn,
            conn.transaction(),
        ):
            # One writer at a time, from any process (readers go on), so that "larger than
            # the latest" and the insert are one step.
            await conn.execute("LOCK TABLE tenants_checkpoints IN SHARE ROW EXCLUSIVE MODE")
            cur = await conn.execute("SELECT max(size) FROM tenants_checkpoints")
            row: Any = await cur.fetchone()
            stored = row[0] is None or checkpoint.size > row[0]
            if stored:
                await conn.execute(
                    "INSERT INTO tenants_checkpoints (size, root_hash, timestamp_us, note)"
                    " VALUES (%s, %s, %s, %s)",
                    (
                        checkpoint.size,
                        checkpoint.root_hash,
                        checkpoint.timestamp_us,
                        checkpoint.note,
                    ),
                )
        return stored

    async def latest_tenants_checkpoint(self) -> StoredCheckpoint | None:
        rows = await self._rows(
            "reading tenants checkpoints",
            _SELECT_CHECKPOINTS.format("note") + " ORDER BY size DESC LIMIT 1",
            (),
        )
        return _checkpoint(rows[0]) if rows else None

    async def add_cosignatures(self, size: int, cosigned: str, quorum: bool) -> bool:
        if not 0 <= size <= TOP:
            return False
        async with self._connection("storing cosignatures") as conn:
            cur = await conn.execute(
                "UPDATE tenants_checkpoints SET cosigned = %s, quorum = quorum OR %s"
                " WHERE size = %s",
                (cosigned, quorum, size),
            )
            return cur.rowcount > 0

    async def witnessed_tenants_checkpoint(self) -> StoredCheckpoint | None:
        rows = await self._rows(
            "reading tenants checkpoints",
            _SELECT_CHECKPOINTS.format("coalesce(cosigned, note)")
            + " WHERE quorum ORDER BY size DESC LIMIT 1",
            (),
        )
        return _checkpoint(rows[0]) if rows else None

    async def cosigned_tenants_checkpoint(self, size: int) -> StoredCheckpoint | None:
        if not 0 <= size <= TOP:
            return None
        rows = await self._rows(
            "reading tenants checkpoints",
            _SELECT_CHECKPOINTS.format("coalesce(cosigned, note)") + " WHERE size = %s",
            (size,),
        )
        return _checkpoint(rows[0]) if rows else None

    # -- witnesses --------------------------------------------------------------------------

    async def set_witness_state(self, state: WitnessState) -> None:
        s = state
        async with self._connection("storing a witness's state") as conn:
            await conn.execute(
                "INSERT INTO witness_states (name, url, size, error, refusals, updated_us)"
                " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (name) DO UPDATE SET"
                " url = excluded.url, size = excluded.size, error = excluded.error,"
                " refusals = excluded.refusals, updated_us = excluded.updated_us",
                (s.name, s.url, s.size, s.error, s.refusals, s.updated_us),
            )

    async def list_witness_states(self) -> list[WitnessState]:
        rows = await self._rows(
            "listing witness states",
            "SELECT name, url, size, error, refusals, updated_us FROM witness_states"
            ' ORDER BY name COLLATE "C"',
            (),
        )
        return [
            WitnessState(str(r[0]), str(r[1]), int(r[2]), str(r[3]), int(r[4]), int(r[5]))
            for r in rows
        ]

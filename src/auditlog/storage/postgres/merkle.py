"""The Merkle part of the PostgreSQL store: leaves, tree nodes and checkpoints for the integrator."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import psycopg

from auditlog.storage import records
from auditlog.storage.base import Integration, StoredCheckpoint, TreeNode
from auditlog.storage.postgres import database, querysql
from auditlog.storage.postgres.base import PostgresBase

log = logging.getLogger("auditlog.storage.postgres")


class MerklePart(PostgresBase):
    """What the integrator reads and writes: its turn, log sizes, leaves, nodes, checkpoints."""

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
                "SELECT seq, body FROM events WHERE tenant_id = %s AND seq >= greatest(%s,"
                " (SELECT horizon FROM horizons WHERE tenant_id = %s)) ORDER BY seq LIMIT %s",
                (tenant_id, max(start, 0), tenant_id, limit),
                binary=True,  # the bodies as they are, not in hex
            )
            found: list[Any] = await cur.fetchall()
        return [(int(seq), bytes(body)) for seq, body in found]

    async def put_nodes(self, tenant: str, nodes: Sequence[TreeNode]) -> None:
        if not nodes:
            return
        async with self._connection("storing tree nodes") as conn:
            await _insert_nodes(conn, await self._made_id(conn, tenant), nodes)

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
            tenant_id = await self._made_id(conn, tenant)
            async with conn.transaction():
                await _lock_checkpoints(conn, [tenant_id])
                return await _insert_checkpoint(conn, tenant_id, checkpoint)

    async def add_integrations(self, integrations: Sequence[Integration]) -> list[bool]:
        if not integrations:
            return []
        async with self._connection("storing an integrator round") as conn:
            ids = [await self._made_id(conn, i.tenant) for i in integrations]
            async with conn.transaction():
                # Every tenant's lock first, in one order, then (in _insert_checkpoint) the
                # tenants log's counter row: the order add_checkpoint takes them in too, so
                # that no two writers wait on each other.
                await _lock_checkpoints(conn, ids)
                stored = []
                for tenant_id, i in zip(ids, integrations, strict=True):
                    if i.nodes:
                        await _insert_nodes(conn, tenant_id, i.nodes)
                    stored.append(await _insert_checkpoint(conn, tenant_id, i.checkpoint))
        return stored

    async def _made_id(self, conn: psycopg.AsyncConnection[Any], tenant: str) -> int:
        """The tenant's id, its row made if missing (before any transaction opens)."""
        tenant_id = await self._tenant_id(conn, tenant, create=True)
        assert tenant_id is not None  # create=True makes the row
        return tenant_id

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


async def _insert_nodes(
    conn: psycopg.AsyncConnection[Any], tenant_id: int, nodes: Sequence[TreeNode]
) -> None:
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
    await conn.execute(
        "INSERT INTO tree_nodes (tenant_id, level, idx, hash)"
        " SELECT %s, r.level, r.first + g.i,"
        " substring(%s::bytea FROM r.byte + g.i * r.size + 1 FOR r.size)"
        " FROM unnest(%s::int2[], %s::int8[], %s::int4[], %s::int4[], %s::int4[])"
        " AS r (level, first, count, byte, size), generate_series(0, r.count - 1) AS g (i)"
        " ON CONFLICT DO NOTHING",
        (tenant_id, b"".join(n[2] for n in ordered), *map(list, zip(*runs, strict=True))),
    )


async def _lock_checkpoints(conn: psycopg.AsyncConnection[Any], tenant_ids: Sequence[int]) -> None:
    """One writer of a tenant's checkpoints at a time, from any process, so that "larger than
    the latest" and the insert are one step: these tenants' locks, in ascending order, until
    the transaction ends."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(%s, t) FROM unnest(%s::int4[]) AS t ORDER BY t",
        (database.LOCK_CHECKPOINT, sorted(set(tenant_ids))),
    )


async def _insert_checkpoint(
    conn: psycopg.AsyncConnection[Any], tenant_id: int, checkpoint: StoredCheckpoint
) -> bool:
    """Store the checkpoint if it is larger than the tenant's latest (under its lock), with its
    leaf of the tenants log; whether it was stored."""
    cur = await conn.execute("SELECT max(size) FROM checkpoints WHERE tenant_id = %s", (tenant_id,))
    row: Any = await cur.fetchone()
    latest = row[0]
    if latest is not None and checkpoint.size <= latest:
        return False
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
    # Its leaf of the tenants log: the next index, from the counter row, whose lock this
    # transaction holds from here to its commit.
    await conn.execute(
        "WITH n AS (INSERT INTO tenants_log (one, size) VALUES (true, 1)"
        " ON CONFLICT (one) DO UPDATE SET size = tenants_log.size + 1"
        " RETURNING size)"
        " INSERT INTO tenants_leaves (idx, tenant_id, size)"
        " SELECT n.size - 1, %s, %s FROM n",
        (tenant_id, checkpoint.size),
    )
    return True

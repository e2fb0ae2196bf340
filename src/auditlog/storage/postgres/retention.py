"""The retention part of the PostgreSQL store: each tenant's retention policy and legal hold."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from auditlog.model.retention import Hold, Retention
from auditlog.storage.postgres.base import PostgresBase
from auditlog.storage.postgres.pruning import hold_lock

_SELECT_RETENTION = "SELECT tenant, keep_seconds, updated_us, updated_by FROM retention"
_HOLD_COLUMNS = "tenant, reason, set_by, set_us"
_SELECT_HOLDS = f"SELECT {_HOLD_COLUMNS} FROM legal_holds"  # noqa: S608 (constant text)
#: Tenant names in byte order, whatever the database's collation: as the other stores list.
_BY_TENANT = ' ORDER BY tenant COLLATE "C"'
_INSERT_HOLD = (
    "INSERT INTO legal_holds (tenant, reason, set_by, set_us) VALUES (%s, %s, %s, %s)"  # noqa: S608 (constant text)
    f" ON CONFLICT (tenant) DO NOTHING RETURNING {_HOLD_COLUMNS}"
)
_RELEASE_HOLD = f"DELETE FROM legal_holds WHERE tenant = %s RETURNING {_HOLD_COLUMNS}"  # noqa: S608


def _retention(row: Sequence[Any]) -> Retention:
    keep = row[1]
    return Retention(str(row[0]), None if keep is None else int(keep), int(row[2]), str(row[3]))


def _hold(row: Sequence[Any]) -> Hold:
    return Hold(str(row[0]), str(row[1]), str(row[2]), int(row[3]))


class RetentionPart(PostgresBase):
    """Retention policies and legal holds, on the primary."""

    async def get_retention(self, tenant: str) -> Retention | None:
        async with self._connection("reading a retention policy") as conn:
            cur = await conn.execute(_SELECT_RETENTION + " WHERE tenant = %s", (tenant,))
            row: Any = await cur.fetchone()
        return None if row is None else _retention(row)

    async def set_retention(self, retention: Retention) -> None:
        r = retention
        async with self._connection("storing a retention policy") as conn:
            await conn.execute(
                "INSERT INTO retention (tenant, keep_seconds, updated_us, updated_by)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (tenant) DO UPDATE SET"
                " keep_seconds = excluded.keep_seconds, updated_us = excluded.updated_us,"
                " updated_by = excluded.updated_by",
                (r.tenant, r.keep_seconds, r.updated_us, r.updated_by),
            )

    async def list_retention(self) -> list[Retention]:
        async with self._connection("listing retention policies") as conn:
            cur = await conn.execute(_SELECT_RETENTION + _BY_TENANT)
            rows = await cur.fetchall()
        return [_retention(r) for r in rows]

    async def set_hold(self, hold: Hold) -> Hold | None:
        async with self._connection("setting a legal hold") as conn, conn.transaction():
            # The hold lock orders this against prune_to (storage/postgres/pruning.py), and
            # against releases: the row read below is the one that stands.
            await hold_lock(conn, hold.tenant)
            cur = await conn.execute(
                _INSERT_HOLD, (hold.tenant, hold.reason, hold.set_by, hold.set_us)
            )
            if await cur.fetchone() is not None:
                return None
            cur = await conn.execute(_SELECT_HOLDS + " WHERE tenant = %s", (hold.tenant,))
            row: Any = await cur.fetchone()
            return None if row is None else _hold(row)

    async def release_hold(self, tenant: str) -> Hold | None:
        async with self._connection("releasing a legal hold") as conn, conn.transaction():
            await hold_lock(conn, tenant)
            cur = await conn.execute(_RELEASE_HOLD, (tenant,))
            row: Any = await cur.fetchone()
        return None if row is None else _hold(row)

    async def get_hold(self, tenant: str) -> Hold | None:
        async with self._connection("reading a legal hold") as conn:
            cur = await conn.execute(_SELECT_HOLDS + " WHERE tenant = %s", (tenant,))
            row: Any = await cur.fetchone()
        return None if row is None else _hold(row)

    async def list_holds(self) -> list[Hold]:
        async with self._connection("listing legal holds") as conn:
            cur = await conn.execute(_SELECT_HOLDS + _BY_TENANT)
            rows = await cur.fetchall()
        return [_hold(r) for r in rows]

"""The log streams part of the PostgreSQL store: durable heads, definitions, progress, leases.

Durable heads: a group commit here becomes visible before it is flushed (its fast path
commits asynchronously and a later synchronous commit flushes it, see ``events``), so a log
size read from ``tenants`` may count events a crash would take back. ``durable_log_sizes``
reads the sizes and then makes a synchronous commit that writes WAL (``FLUSH_BARRIER``):
once it returns, the WAL is flushed past every commit the read saw. Processes announce their
durable heads to each other on a notification channel (``HEADS_CHANNEL``); channels span the
database, so each announcement names its schema and listeners drop the others'.

Leases: a claim is one transaction; free streams are taken ``FOR UPDATE SKIP LOCKED``, so two
processes claiming at once never take the same stream, and a stream whose lease is renewed
meanwhile is seen renewed. Lease ends are in microseconds of the database's clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from auditlog.model.streams import LogStream
from auditlog.storage import records
from auditlog.storage.postgres.base import FLUSH_BARRIER, HEADS_CHANNEL, PostgresBase

_NOW_US = "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint"
_INSERT = (
    f"INSERT INTO streams ({records.STREAM_COLUMNS})"  # noqa: S608 (constant text)
    f" VALUES ({','.join(['%s'] * len(records.STREAM_COLUMNS.split(',')))})"
)
#: Most bytes of tenant heads in one notification (PostgreSQL's payload limit is 8000).
_PAYLOAD_BYTES = 7000


class StreamsPart(PostgresBase):
    """Durable log heads, log streams and the leases that let one process deliver each."""

    # -- heads ------------------------------------------------------------------------------

    async def durable_log_sizes(self, tenant: str | None = None) -> dict[str, int]:
        sql = "SELECT name, next_seq FROM tenants WHERE next_seq > 0"
        params: tuple[str, ...] = ()
        if tenant is not None:
            sql += " AND name = %s"
            params = (tenant,)
        async with self._connection("reading the log sizes") as conn:
            cur = await conn.execute(sql, params)
            found: list[Any] = await cur.fetchall()
            await conn.execute(FLUSH_BARRIER)
        return {str(name): int(size) for name, size in found}

    def watch_heads(self, callback: Callable[[Mapping[str, int]], None]) -> None:
        self._heads_callback = callback

    async def announce_heads(self, heads: Mapping[str, int]) -> None:
        if not heads:
            return
        payloads: list[bytes] = []
        part: dict[str, int] = {}
        size = 0
        for tenant, head in heads.items():
            part[tenant] = head
            size += len(tenant) + 24
            if size > _PAYLOAD_BYTES:
                payloads.append(orjson.dumps({"schema": self._schema, "heads": part}))
                part, size = {}, 0
        if part:
            payloads.append(orjson.dumps({"schema": self._schema, "heads": part}))
        async with self._connection("announcing log heads") as conn:
            for payload in payloads:
                await conn.execute("SELECT pg_notify(%s, %s)", (HEADS_CHANNEL, payload.decode()))

    # -- definitions ----------------------------------------------------------------------

    async def create_stream(self, stream: LogStream) -> None:
        async with self._connection("creating a stream") as conn:
            await conn.execute(_INSERT, records.stream_values(stream))

    async def _select(self, where: str, params: Sequence[Any]) -> list[LogStream]:
        async with self._connection("reading streams") as conn:
            cur = await conn.execute(records.SELECT_STREAMS + where, params)
            rows: list[Any] = await cur.fetchall()
        return [records.stream(row) for row in rows]

    async def get_stream(self, tenant: str, stream_id: str) -> LogStream | None:
        if "\x00" in tenant or "\x00" in stream_id:  # PostgreSQL text cannot hold NUL
            return None
        found = await self._select(" WHERE tenant = %s AND stream_id = %s", (tenant, stream_id))
        return found[0] if found else None

    async def list_streams(self, tenant: str | None = None) -> list[LogStream]:
        if tenant is None:
            return await self._select(" ORDER BY created_us, stream_id", ())
        return await self._select(" WHERE tenant = %s ORDER BY created_us, stream_id", (tenant,))

    async def update_stream(self, stream: LogStream) -> bool:
        async with self._connection("changing a stream") as conn:
            cur = await conn.execute(
                "UPDATE streams SET name = %s, destination = %s, filter = %s, paused = %s,"
                " updated_us = %s WHERE tenant = %s AND stream_id = %s",
                (
                    stream.name,
                    stream.destination,
                    stream.filter,
                    stream.paused,
                    stream.updated_us,
                    stream.tenant,
                    stream.stream_id,
                ),
            )
            return cur.rowcount > 0

    async def delete_stream(self, tenant: str, stream_id: str) -> bool:
        if "\x00" in tenant or "\x00" in stream_id:
            return False
        async with self._connection("deleting a stream") as conn:
            cur = await conn.execute(
                "DELETE FROM streams WHERE tenant = %s AND stream_id = %s", (tenant, stream_id)
            )
            return cur.rowcount > 0

    # -- leases and progress --------------------------------------------------------------

    async def claim_streams(self, owner: str, lease_ms: int, limit: int) -> list[LogStream]:
        async with self._connection("claiming streams") as conn, conn.transaction():
            cur = await conn.execute(f"SELECT {_NOW_US}")
            row = await cur.fetchone()
            assert row is not None
            now = int(row[0])
            until = now + lease_ms * 1000
            await conn.execute(
                "UPDATE streams SET lease_owner = NULL, lease_until_us = NULL"
                " WHERE lease_owner = %s AND paused",
                (owner,),
            )
            await conn.execute(
                "UPDATE streams SET lease_until_us = %s WHERE lease_owner = %s AND NOT paused",
                (until, owner),
            )
            await conn.execute(
                "UPDATE streams SET lease_owner = %s, lease_until_us = %s WHERE (tenant,"
                " stream_id) IN (SELECT tenant, stream_id FROM streams WHERE NOT paused"
                " AND (lease_owner IS NULL OR lease_until_us <= %s)"
                " ORDER BY created_us, stream_id LIMIT %s FOR UPDATE SKIP LOCKED)",
                (owner, until, now, max(limit, 0)),
            )
            cur = await conn.execute(
                records.SELECT_STREAMS + " WHERE lease_owner = %s ORDER BY created_us, stream_id",
                (owner,),
            )
            rows: list[Any] = await cur.fetchall()
        return [records.stream(r) for r in rows]

    async def release_streams(self, owner: str, stream_ids: Sequence[str]) -> None:
        if not stream_ids:
            return
        async with self._connection("releasing streams") as conn:
            await conn.execute(
                "UPDATE streams SET lease_owner = NULL, lease_until_us = NULL"
                " WHERE stream_id = ANY(%s) AND lease_owner = %s",
                (list(stream_ids), owner),
            )

    async def record_delivery(
        self, tenant: str, stream_id: str, owner: str, position: int, events: int, at_us: int
    ) -> bool:
        async with self._connection("recording a delivery") as conn:
            cur = await conn.execute(
                "UPDATE streams SET position = %s, deliveries = deliveries + %s,"  # noqa: S608
                " last_success_us = CASE WHEN %s > 0 THEN %s ELSE last_success_us END"
                " WHERE tenant = %s AND stream_id = %s AND position <= %s"
                f" AND lease_owner = %s AND lease_until_us > {_NOW_US}",
                (position, events, events, at_us, tenant, stream_id, position, owner),
            )
            return cur.rowcount > 0

    async def record_failure(
        self, tenant: str, stream_id: str, owner: str, error: str, at_us: int
    ) -> bool:
        async with self._connection("recording a failed delivery") as conn:
            cur = await conn.execute(
                "UPDATE streams SET failures = failures + 1, last_error = %s,"  # noqa: S608
                " last_error_us = %s WHERE tenant = %s AND stream_id = %s"
                f" AND lease_owner = %s AND lease_until_us > {_NOW_US}",
                (error, at_us, tenant, stream_id, owner),
            )
            return cur.rowcount > 0

"""The log streams part of the SQLite store: definitions, progress and delivery leases.

Every write goes through the writer thread; a claim is one ``BEGIN IMMEDIATE`` transaction,
so processes sharing the file (a second ``serve`` by mistake) still hold each stream one at a
time. Lease ends are in microseconds of this machine's clock, the only one that reads them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from auditlog.model import times
from auditlog.model.streams import LogStream
from auditlog.storage import records
from auditlog.storage.sqlite import database
from auditlog.storage.sqlite.base import SQLiteBase

_INSERT = (
    f"INSERT INTO streams ({records.STREAM_COLUMNS})"  # noqa: S608 (constant text)
    f" VALUES ({','.join('?' * len(records.STREAM_COLUMNS.split(',')))})"
)


class StreamsPart(SQLiteBase):
    """Log streams and the leases that let one process at a time deliver each."""

    # -- heads (one process: a commit is visible once it is durable) ----------------------

    async def durable_log_sizes(self, tenant: str | None = None) -> dict[str, int]:
        # The WAL is synced before a commit becomes visible to readers (synchronous = FULL),
        # so what a reader sees is durable. With NORMAL it survives a crash of the process,
        # not a power cut (docs/operations.md).
        sql = "SELECT name, size FROM tenants WHERE size > 0"
        params: tuple[str, ...] = ()
        if tenant is not None:
            sql += " AND name = ?"
            params = (tenant,)
        try:
            rows = self._r().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "reading the log sizes") from exc
        return {str(name): int(size) for name, size in rows}

    def watch_heads(self, callback: Callable[[Mapping[str, int]], None]) -> None:
        return None  # one process serves a SQLite database; commands are seen by the poll

    async def announce_heads(self, heads: Mapping[str, int]) -> None:
        return None

    # -- definitions ----------------------------------------------------------------------

    def _change(self, what: str, sql: str, params: Sequence[Any]) -> int:
        try:
            return self._w().execute(sql, params).rowcount
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, what) from exc

    async def create_stream(self, stream: LogStream) -> None:
        await self._write(self._change, "creating a stream", _INSERT, records.stream_values(stream))

    def _select(self, where: str, params: Sequence[Any]) -> list[LogStream]:
        try:
            rows = self._r().execute(records.SELECT_STREAMS + where, params).fetchall()
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "reading streams") from exc
        return [records.stream(row) for row in rows]

    async def get_stream(self, tenant: str, stream_id: str) -> LogStream | None:
        found = self._select(" WHERE tenant = ? AND stream_id = ?", (tenant, stream_id))
        return found[0] if found else None

    async def list_streams(self, tenant: str | None = None) -> list[LogStream]:
        if tenant is None:
            return self._select(" ORDER BY created_us, stream_id", ())
        return self._select(" WHERE tenant = ? ORDER BY created_us, stream_id", (tenant,))

    async def update_stream(self, stream: LogStream) -> bool:
        changed = await self._write(
            self._change,
            "changing a stream",
            "UPDATE streams SET name = ?, destination = ?, filter = ?, paused = ?,"
            " updated_us = ? WHERE tenant = ? AND stream_id = ?",
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
        return changed > 0

    async def delete_stream(self, tenant: str, stream_id: str) -> bool:
        deleted = await self._write(
            self._change,
            "deleting a stream",
            "DELETE FROM streams WHERE tenant = ? AND stream_id = ?",
            (tenant, stream_id),
        )
        return deleted > 0

    # -- leases and progress --------------------------------------------------------------

    async def claim_streams(self, owner: str, lease_ms: int, limit: int) -> list[LogStream]:
        return await self._write(self._claim, owner, lease_ms, limit)

    def _claim(self, owner: str, lease_ms: int, limit: int) -> list[LogStream]:
        conn = self._w()
        now = times.now_us()
        until = now + lease_ms * 1000
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    "UPDATE streams SET lease_owner = NULL, lease_until_us = NULL"
                    " WHERE lease_owner = ? AND paused",
                    (owner,),
                )
                conn.execute(
                    "UPDATE streams SET lease_until_us = ? WHERE lease_owner = ? AND NOT paused",
                    (until, owner),
                )
                conn.execute(
                    "UPDATE streams SET lease_owner = ?, lease_until_us = ? WHERE (tenant,"
                    " stream_id) IN (SELECT tenant, stream_id FROM streams WHERE NOT paused"
                    " AND (lease_owner IS NULL OR lease_until_us <= ?)"
                    " ORDER BY created_us, stream_id LIMIT ?)",
                    (owner, until, now, max(limit, 0)),
                )
                rows = conn.execute(
                    records.SELECT_STREAMS
                    + " WHERE lease_owner = ? ORDER BY created_us, stream_id",
                    (owner,),
                ).fetchall()
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "claiming streams") from exc
        return [records.stream(row) for row in rows]

    async def release_streams(self, owner: str, stream_ids: Sequence[str]) -> None:
        for stream_id in stream_ids:
            await self._write(
                self._change,
                "releasing a stream",
                "UPDATE streams SET lease_owner = NULL, lease_until_us = NULL"
                " WHERE stream_id = ? AND lease_owner = ?",
                (stream_id, owner),
            )

    async def record_delivery(
        self, tenant: str, stream_id: str, owner: str, position: int, events: int, at_us: int
    ) -> bool:
        changed = await self._write(
            self._change,
            "recording a delivery",
            "UPDATE streams SET position = ?, deliveries = deliveries + ?,"
            " last_success_us = CASE WHEN ? > 0 THEN ? ELSE last_success_us END"
            " WHERE tenant = ? AND stream_id = ? AND position <= ?"
            " AND lease_owner = ? AND lease_until_us > ?",
            (position, events, events, at_us, tenant, stream_id, position, owner, times.now_us()),
        )
        return changed > 0

    async def record_failure(
        self, tenant: str, stream_id: str, owner: str, error: str, at_us: int
    ) -> bool:
        changed = await self._write(
            self._change,
            "recording a failed delivery",
            "UPDATE streams SET failures = failures + 1, last_error = ?, last_error_us = ?"
            " WHERE tenant = ? AND stream_id = ? AND lease_owner = ? AND lease_until_us > ?",
            (error, at_us, tenant, stream_id, owner, times.now_us()),
        )
        return changed > 0

"""The retention part of the SQLite store: each tenant's retention policy and legal hold."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from auditlog.model.retention import Hold, Retention
from auditlog.storage.sqlite import database
from auditlog.storage.sqlite.base import SQLiteBase, immediate

_SELECT_RETENTION = "SELECT tenant, keep_seconds, updated_us, updated_by FROM retention"
SELECT_HOLDS = "SELECT tenant, reason, set_by, set_us FROM legal_holds"


def _retention(row: Sequence[Any]) -> Retention:
    keep = row[1]
    return Retention(str(row[0]), None if keep is None else int(keep), int(row[2]), str(row[3]))


def hold_of(row: Sequence[Any]) -> Hold:
    return Hold(str(row[0]), str(row[1]), str(row[2]), int(row[3]))


class RetentionPart(SQLiteBase):
    """Retention policies and legal holds: small tables, written through the writer thread."""

    def _read(self, what: str, sql: str, params: Sequence[Any]) -> list[Any]:
        try:
            return self._r().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, what) from exc

    async def get_retention(self, tenant: str) -> Retention | None:
        rows = self._read(
            "reading a retention policy", _SELECT_RETENTION + " WHERE tenant = ?", (tenant,)
        )
        return _retention(rows[0]) if rows else None

    async def set_retention(self, retention: Retention) -> None:
        await self._write(self._set_retention, retention)

    def _set_retention(self, r: Retention) -> None:
        try:
            self._w().execute(
                "INSERT INTO retention (tenant, keep_seconds, updated_us, updated_by)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (tenant) DO UPDATE SET"
                " keep_seconds = excluded.keep_seconds, updated_us = excluded.updated_us,"
                " updated_by = excluded.updated_by",
                (r.tenant, r.keep_seconds, r.updated_us, r.updated_by),
            )
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "storing a retention policy") from exc

    async def list_retention(self) -> list[Retention]:
        rows = self._read("listing retention policies", _SELECT_RETENTION + " ORDER BY tenant", ())
        return [_retention(r) for r in rows]

    async def set_hold(self, hold: Hold) -> Hold | None:
        return await self._write(self._set_hold, hold)

    def _set_hold(self, hold: Hold) -> Hold | None:
        # One transaction under the write lock: another process cannot release or set the
        # hold between the insert and the read.
        conn = self._w()
        try:
            with immediate(conn):
                cur = conn.execute(
                    "INSERT INTO legal_holds (tenant, reason, set_by, set_us) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (tenant) DO NOTHING",
                    (hold.tenant, hold.reason, hold.set_by, hold.set_us),
                )
                row = None
                if cur.rowcount == 0:
                    row = conn.execute(
                        SELECT_HOLDS + " WHERE tenant = ?", (hold.tenant,)
                    ).fetchone()
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "setting a legal hold") from exc
        return None if row is None else hold_of(row)

    async def release_hold(self, tenant: str) -> Hold | None:
        return await self._write(self._release_hold, tenant)

    def _release_hold(self, tenant: str) -> Hold | None:
        try:
            # fetchall: the statement runs to its end, and so commits, before this returns.
            rows = (
                self._w()
                .execute(
                    "DELETE FROM legal_holds WHERE tenant = ? RETURNING tenant, reason, set_by,"
                    " set_us",
                    (tenant,),
                )
                .fetchall()
            )
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "releasing a legal hold") from exc
        return hold_of(rows[0]) if rows else None

    async def get_hold(self, tenant: str) -> Hold | None:
        rows = self._read("reading a legal hold", SELECT_HOLDS + " WHERE tenant = ?", (tenant,))
        return hold_of(rows[0]) if rows else None

    async def list_holds(self) -> list[Hold]:
        rows = self._read("listing legal holds", SELECT_HOLDS + " ORDER BY tenant", ())
        return [hold_of(r) for r in rows]

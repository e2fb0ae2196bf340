"""The events part of the SQLite store: appending groups of events, reading and querying them."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import sqlite3
import time
from collections.abc import Iterator, Sequence

from auditlog.errors import StorageError
from auditlog.model import times
from auditlog.model.query import Query
from auditlog.storage import numbers
from auditlog.storage.base import AppendOutcome, AppendRequest, GroupPlan, Page
from auditlog.storage.sqlite import database, querysql
from auditlog.storage.sqlite.base import SQLiteBase, insert_rows

_ID_CHUNK = 500


class EventsPart(SQLiteBase):
    """``append`` (through ``_transact``), ``get_event`` and ``query`` (on the reader pool)."""

    # -- writing -----------------------------------------------------------------------

    async def append(self, requests: Sequence[AppendRequest]) -> list[AppendOutcome]:
        return await self._transact(lambda conn: self._append(conn, requests), "commit")

    def _append(
        self, conn: sqlite3.Connection, requests: Sequence[AppendRequest]
    ) -> list[AppendOutcome]:
        plan = GroupPlan(requests)
        existing: dict[tuple[str, str], bytes] = {}
        tenant_ids: dict[str, int] = {}
        for tenant, wanted in plan.wanted().items():
            tenant_id = tenant_ids[tenant] = self._tenant_id(conn, tenant)
            id_list = list(wanted)
            for start in range(0, len(id_list), _ID_CHUNK):
                chunk = id_list[start : start + _ID_CHUNK]
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT id, body FROM events WHERE tenant_id = ? AND id IN ({marks})"  # noqa: S608
                for event_id, body in conn.execute(sql, (tenant_id, *chunk)):
                    existing[(tenant, event_id)] = body
        plan.plan(existing)
        if not plan.new:
            return plan.outcomes()
        sizes: dict[str, int] = {}
        for tenant in {p.tenant for p in plan.new}:
            row = conn.execute(
                "SELECT size FROM tenants WHERE tenant_id = ?", (tenant_ids[tenant],)
            ).fetchone()
            sizes[tenant] = int(row[0])
        plan.assign(sizes, times.now_us())
        rows = []
        for p in plan.new:
            tenant_id = tenant_ids[p.tenant]
            key = querysql.key_of(tenant_id, p.seq)
            rows.append((key, tenant_id, p.event.id, p.event.type, p.event.time_us, p.body))
        insert_rows(conn, "events (key, tenant_id, id, type, time_us, body)", rows)
        for tenant, size in sizes.items():
            conn.execute(
                "UPDATE tenants SET size = ? WHERE tenant_id = ?", (size, tenant_ids[tenant])
            )
        return plan.outcomes()

    # -- reading -----------------------------------------------------------------------

    async def get_event(self, tenant: str, event_id: str) -> bytes | None:
        try:
            row = (
                self._r()
                .execute(
                    "SELECT e.body FROM events AS e JOIN tenants AS n ON e.tenant_id = n.tenant_id"
                    " WHERE n.name = ? AND e.id = ? AND e.key >= ? * n.tenant_id + n.horizon",
                    (tenant, event_id, querysql.SEQ_MASK + 1),
                )
                .fetchone()
            )
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "reading an event") from exc
        return None if row is None else bytes(row[0])

    async def query(self, tenant: str, query: Query) -> Page:
        if self._pool is None:
            raise StorageError("the store is not open", self._retry)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._query, tenant, query)

    def _query(self, tenant: str, query: Query) -> Page:
        conn = self._thread_conn()
        try:
            conn.execute("BEGIN")  # one snapshot of both files for the whole page
            try:
                row = conn.execute(
                    "SELECT n.tenant_id, coalesce(p.next_seq, 0), n.horizon FROM tenants AS n"
                    " LEFT JOIN t.progress AS p ON p.tenant_id = n.tenant_id WHERE n.name = ?",
                    (tenant,),
                ).fetchone()
                if row is None:
                    return Page((), None, False)
                tenant_id, indexed_upto, horizon = int(row[0]), int(row[1]), int(row[2])
                flags = None
                path = numbers.range_path(query.conditions)
                if path is not None:
                    flags = frozenset(
                        flag
                        for (flag,) in conn.execute(
                            "SELECT flag FROM t.path_flags WHERE tenant_id = ? AND path = ?",
                            (tenant_id, numbers.path_id(path)),
                        )
                    )
                compiled = querysql.compile_query(
                    tenant, tenant_id, query, indexed_upto, flags, horizon
                )
                with self._deadline(conn):
                    for narrow in compiled.narrows:
                        probed = conn.execute(*narrow.probe).fetchone()
                        count = probed[0]
                        limit = (
                            self.number_candidates
                            if narrow.kind == "numbers"
                            else self.narrow_events
                        )
                        if count < limit:
                            compiled = narrow.plan
                            span = narrow.span
                            if (
                                span is not None
                                and count
                                and probed[2] - probed[1] < self.span_keys
                            ):
                                compiled = span.plan(probed[1], probed[2])
                            break
                    rows = self._run(conn, compiled)
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "query") from exc
        more = len(rows) > compiled.limit
        rows = rows[: compiled.limit]
        last = rows[-1][0] & querysql.SEQ_MASK if rows else None
        return Page(tuple(bytes(body) for _, body in rows), last, more, horizon)

    @staticmethod
    def _run(conn: sqlite3.Connection, compiled: querysql.CompiledQuery) -> list[tuple[int, bytes]]:
        fetch = compiled.limit + 1
        if compiled.merge:
            results = [conn.execute(sql, params).fetchall() for sql, params in compiled.statements]
            merged = heapq.merge(*results, key=lambda r: r[0], reverse=compiled.descending)
            return list(merged)[:fetch]
        rows: list[tuple[int, bytes]] = []
        for sql, params in compiled.statements:
            wanted = fetch - len(rows)
            if wanted <= 0:
                break
            rows += conn.execute(sql, (*params[:-1], wanted)).fetchall()
        return rows

    @contextlib.contextmanager
    def _deadline(self, conn: sqlite3.Connection) -> Iterator[None]:
        deadline = time.monotonic() + self._settings.query_timeout_ms / 1000

        def check() -> int:
            return 1 if time.monotonic() > deadline else 0

        conn.set_progress_handler(check, 10_000)
        try:
            yield
        finally:
            conn.set_progress_handler(None, 0)

"""The PostgreSQL search indexer: committed events into ``event_search``, in a process of its own.

Sequence first, index second, as for the SQLite store. A write is acknowledged once its
``events`` row is committed, which updates only btree indexes; the indexer then reads committed
events in seq order, derives their search row (``data``, ``words``, ``nested``, see ``rows``)
and copies them into ``event_search``, whose GIN indexes serve conditions on data paths and
words, recording per tenant how far it got (``index_progress``) in the same transaction.
Queries use the GIN indexes below that mark and check the events above it directly, so no
committed event is ever missing from an answer, however far the indexer lags.

Every serving process starts one (``python -m auditlog.storage.postgres.indexer URL``,
niced); one at a time indexes, the one that holds the schema's indexer advisory lock, and the
others take over when its session ends. Each step is one transaction: after a crash the next
indexer resumes from the recorded progress.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

import psycopg
from psycopg.rows import TupleRow

from auditlog import logformat
from auditlog.storage import numbers
from auditlog.storage.childprocess import run_loop
from auditlog.storage.postgres import database, rows

log = logging.getLogger("auditlog.indexer")

#: Most events indexed in one transaction.
BATCH_EVENTS = 2000
IDLE_SLEEP = 0.05
#: Seconds between attempts to become the indexer while another one is.
STANDBY_SLEEP = 1.0

_COPY = f"COPY event_search ({', '.join(rows.SEARCH_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
_COPY_NUMBERS = f"COPY event_numbers ({', '.join(rows.NUMBER_COLUMNS)}) FROM STDIN (FORMAT BINARY)"


class Indexer:
    """Indexes pending events of every tenant on its own connection."""

    def __init__(self, url: str) -> None:
        # The index can be rebuilt from the events and its progress commits with its rows, so
        # its commits need not wait for the disk.
        self._conn: psycopg.Connection[TupleRow] = psycopg.connect(
            url,
            autocommit=True,
            application_name="auditlog-indexer",
            options=database.options(url, f"-c synchronous_commit=off {database.PAGE_SIZED}"),
        )
        self._leading = False

    def close(self) -> None:
        self._conn.close()  # ends the session, and with it the advisory lock

    def _lead(self) -> bool:
        """Whether this indexer holds the schema's indexer lock (taking it if free)."""
        if not self._leading:
            row = self._conn.execute(
                "SELECT pg_try_advisory_lock(%s, hashtext(current_schema()))",
                (database.LOCK_INDEXER,),
            ).fetchone()
            self._leading = bool(row and row[0])
        return self._leading

    def index_batch(self, max_events: int = BATCH_EVENTS) -> int:
        """Index up to ``max_events`` pending events; how many were indexed."""
        if not self._lead():
            time.sleep(STANDBY_SLEEP)
            return 0
        pending = self._conn.execute(
            "SELECT t.tenant_id, coalesce(p.next_seq, 0) FROM tenants AS t"
            " LEFT JOIN index_progress AS p ON p.tenant_id = t.tenant_id"
            " WHERE t.next_seq > coalesce(p.next_seq, 0) ORDER BY t.tenant_id"
        ).fetchall()
        done = 0
        for tenant_id, start in pending:
            if done >= max_events:
                break
            done += self._index_tenant(int(tenant_id), int(start), max_events - done)
        return done

    def _index_tenant(self, tenant_id: int, start: int, limit: int) -> int:
        with self._conn.transaction():
            # Under the tenant's index lock, which a sweep of pruned events takes too: the
            # horizon read here stands until this commits, so nothing below it is indexed
            # after the sweep removed what was there (storage/postgres/pruning.py).
            self._conn.execute(
                "SELECT pg_advisory_xact_lock(%s, %s)", (database.LOCK_INDEX, tenant_id)
            )
            row = self._conn.execute(
                "SELECT horizon FROM horizons WHERE tenant_id = %s", (tenant_id,)
            ).fetchone()
            start = max(start, int(row[0]) if row else 0)
            found = self._conn.execute(
                "SELECT seq, received_us, body FROM events WHERE tenant_id = %s AND seq >= %s"
                " ORDER BY seq LIMIT %s",
                (tenant_id, start, limit),
                binary=True,  # the bodies as they are, not in hex
            ).fetchall()
            batch: list[rows.IndexRows] = []
            for seq, received_us, body in found:
                if int(seq) != start + len(batch):
                    break  # never in a committed log; index up to the gap
                batch.append(rows.index_rows(tenant_id, int(seq), int(received_us), bytes(body)))
            if not batch:
                if row is not None:  # nothing left to index below the horizon
                    self._progress(tenant_id, start)
                return 0
            self._write(tenant_id, start, batch)
        return len(batch)

    def _progress(self, tenant_id: int, next_seq: int) -> None:
        self._conn.execute(
            "INSERT INTO index_progress (tenant_id, next_seq) VALUES (%s, %s)"
            " ON CONFLICT (tenant_id) DO UPDATE SET next_seq = excluded.next_seq",
            (tenant_id, next_seq),
        )

    def _write(self, tenant_id: int, start: int, batch: list[rows.IndexRows]) -> None:
        flags = numbers.flags_of(event.held for event in batch)
        with self._conn.cursor() as cur:
            with cur.copy(_COPY) as copy:
                copy.set_types(rows.SEARCH_TYPES)
                for event in batch:
                    copy.write_row(event.search)
            with cur.copy(_COPY_NUMBERS) as copy:
                copy.set_types(rows.NUMBER_TYPES)
                for event in batch:
                    for row in event.numbers:
                        copy.write_row(row)
            if flags:
                cur.executemany(
                    "INSERT INTO path_flags (tenant_id, path, flag) VALUES (%s, %s, %s)"
                    " ON CONFLICT DO NOTHING",
                    [(tenant_id, pid, flag) for pid, flag in sorted(flags)],
                )
        self._progress(tenant_id, start + len(batch))

    def catch_up(self) -> int:
        """Index everything pending now; the number indexed."""
        total = 0
        while n := self.index_batch():
            total += n
        return total


def run(url: str, parent: int) -> int:
    """Index until told to stop or orphaned; reconnects after the database was away."""
    indexer: Indexer | None = None

    def step() -> int:
        nonlocal indexer
        if indexer is None:
            indexer = Indexer(url)
        try:
            return indexer.index_batch()
        except psycopg.OperationalError:
            indexer.close()
            indexer = None
            raise

    try:
        run_loop(step, parent, (psycopg.Error,), IDLE_SLEEP, BATCH_EVENTS)
    finally:
        if indexer is not None:
            indexer.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="auditlog PostgreSQL search indexer")
    parser.add_argument("url", help="the store URL, or - to read it from standard input")
    parser.add_argument("--parent", type=int, default=os.getppid())
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    args = parser.parse_args(argv)
    logformat.configure("info", args.log_format)  # as its server's log
    url = sys.stdin.readline().strip() if args.url == "-" else args.url
    return run(url, args.parent)


if __name__ == "__main__":
    sys.exit(main())

"""The search indexer: committed events to index tokens, in a process of its own.

Sequence first, index second. A write is acknowledged once its event is committed to the
events database; the indexer then reads committed events in seq order, computes their tokens
(``terms``) and numbers (``numbers``), adds them to the search index in large transactions,
and records per tenant how far it got in the same transaction. Each step is idempotent:
after a crash it resumes from the recorded progress. Queries search the index for events
below the progress mark and check the newer tail directly (see ``querysql``), so no
committed event is ever missing from an answer, however far the indexer lags.

It runs as a separate process because computing tokens is Python work that would otherwise
take the GIL from the process serving requests; in its own process it uses the second core.
While a core goes spare, that work is also shared with worker processes (``termworkers``,
one per core beyond the indexer's own): they compute the entries of a step a chunk at a
time while the indexer writes the chunks before, so that writing (SQLite, about half of the
work) and computing overlap.
The search index lives in its own database file, so the indexer never takes the events
database's write lock.

Run as ``python -m auditlog.storage.sqlite.indexer EVENTS_PATH``; it exits when its parent
process goes away or on SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import os
import sqlite3
import sys
from typing import Any

import orjson

from auditlog import logformat
from auditlog.storage import numbers
from auditlog.storage.childprocess import run_loop
from auditlog.storage.sqlite import database, querysql, terms, termworkers
from auditlog.storage.sqlite.termworkers import TermWorkers

log = logging.getLogger("auditlog.indexer")

#: Events per step, one transaction. Its SQLite work per event falls with the size (37, 31
#: and 30 us at 2,000, 5,000 and 10,000, measured together here), while the tail that
#: queries check row by row (~17 us an event) grows with it while the indexer keeps up.
BATCH_EVENTS = 5_000
#: Free pages of the index given back by one step (4 MiB).
GIVE_BACK_PAGES = 1024
#: Pruned events whose entries were removed, from which the full-text index is rewritten.
OPTIMIZE_AFTER = 10_000
IDLE_SLEEP = 0.05
#: The interpreter's switch interval in the indexer process: the threads that feed the
#: workers get the GIL within it while this thread computes entries.
SWITCH_INTERVAL = 0.0005


class Indexer:
    """Index committed events into the search index, one batch at a time."""

    def __init__(self, events_path: str, workers: int | None = None) -> None:
        self.events_path = events_path
        self.workers = TermWorkers(termworkers.default_workers() if workers is None else workers)
        self._events = database.connect(events_path, readonly=True)
        self._terms = database.connect(database.terms_path(events_path), synchronous="NORMAL")
        database.use_wal(self._terms, database.terms_path(events_path))
        database.migrate(self._terms, "terms", database.terms_path(events_path))
        self._unindexed = 0  # pruned events whose entries were removed since the last compact

    def close(self) -> None:
        self.workers.close()
        self._events.close()
        self._terms.close()

    def index_batch(self, max_events: int = BATCH_EVENTS, *, index: bool = True) -> int:
        """Remove the entries of pruned events, then index pending events, up to
        ``max_events`` in all; how many (0: nothing left to do). ``index=False`` only
        removes (what a sweep with no indexer process of its own does)."""
        ev, tm = self._events, self._terms
        tm.execute("BEGIN IMMEDIATE")
        try:
            done = dict(tm.execute("SELECT tenant_id, next_seq FROM progress").fetchall())
            below = dict(tm.execute("SELECT tenant_id, below FROM pruned").fetchall())
            work: list[tuple[int, str, list[tuple[int, bytes]]]] = []
            ev.execute("BEGIN")
            try:
                tenants = ev.execute(
                    "SELECT tenant_id, name, size, horizon FROM tenants"
                ).fetchall()
                budget = max_events
                for tenant_id, name, _, horizon in tenants:
                    budget -= self._unindex(tenant_id, name, horizon, done, below, budget)
                removed = max_events - budget
                end = 0  # the log's size for the last tenant in ``work``
                for tenant_id, name, size, _ in tenants if index else ():
                    # Never below what pruning removed from the index.
                    start = max(done.get(tenant_id, 0), below.get(tenant_id, 0))
                    if start >= size or budget <= 0:
                        continue
                    rows = self._rows(tenant_id, start, size, budget)
                    if rows:
                        work.append((tenant_id, name, rows))
                        budget -= len(rows)
                        end = size
                ahead = self._ahead(work, end, max_events) if budget <= 0 else []
            finally:
                ev.execute("COMMIT")
            self._index(work)
            self.workers.ahead(ahead)  # computed while this round commits
            tm.execute("COMMIT")
        except BaseException:
            if tm.in_transaction:
                tm.execute("ROLLBACK")
            raise
        if removed:
            self._unindexed += removed
        elif self._unindexed:
            self.compact()
        return max_events - budget

    def compact(self) -> int:
        """After pruned entries were removed (and none is left to remove): rewrite the
        full-text index without them, once enough went for it to be worth it, and give the
        freed pages back to the file system; the bytes given back.

        The full-text table drops a removed entry only when it merges the segment holding
        it, so without this its file would not shrink. ``optimize`` rewrites the whole
        index (about 6 s per million events indexed here), holding only the index's own
        write lock: indexing waits, ingest and queries do not."""
        tm = self._terms
        if self._unindexed >= OPTIMIZE_AFTER:
            tm.execute("INSERT INTO events_terms (events_terms) VALUES ('optimize')")
        self._unindexed = 0
        total = 0
        while freed := database.give_back(tm, GIVE_BACK_PAGES):
            total += freed
        return total

    def _rows(self, tenant_id: int, start: int, end: int, limit: int) -> list[tuple[int, bytes]]:
        """Up to ``limit`` stored events of a tenant with seq in [start, end), as (key, body)."""
        rows: list[tuple[int, bytes]] = self._events.execute(
            "SELECT key, body FROM events WHERE key >= ? AND key < ? ORDER BY key LIMIT ?",
            (querysql.key_of(tenant_id, start), querysql.key_of(tenant_id, end), limit),
        ).fetchall()
        return rows

    def _ahead(
        self, work: list[tuple[int, str, list[tuple[int, bytes]]]], end: int, max_events: int
    ) -> list[tuple[int, str, list[tuple[int, bytes]]]]:
        """The rows the next round will most likely begin with, when the workers are in use:
        those after this round's last tenant's, below ``end``, in whole chunks (a chunk of
        the next round is the same only if it is whole)."""
        if not work or not self.workers.helped:
            return []
        tenant_id, name, rows = work[-1]
        start = (rows[-1][0] & querysql.SEQ_MASK) + 1
        whole = max_events // termworkers.CHUNK_EVENTS * termworkers.CHUNK_EVENTS
        rows = self._rows(tenant_id, start, end, whole)
        rows = rows[: len(rows) // termworkers.CHUNK_EVENTS * termworkers.CHUNK_EVENTS]
        return [(tenant_id, name, rows)] if rows else []

    def _index(self, work: list[tuple[int, str, list[tuple[int, bytes]]]]) -> None:
        """Add the entries of each tenant's rows in ``work`` and record its progress. The
        entries are computed a chunk at a time (by the worker processes, if any) while the
        chunks before are written."""
        tm = self._terms
        found: list[list[Any]] = []
        flags: list[list[Any]] = []
        for docs, chunk_found, chunk_flags in self.workers.map(work):
            tm.executemany("INSERT INTO events_terms (rowid, terms) VALUES (?, ?)", docs)
            found += chunk_found
            flags += chunk_flags
        found.sort()  # in index order: each B-tree page is visited once
        tm.executemany("INSERT INTO numbers VALUES (?, ?, ?, ?)", found)
        tm.executemany("INSERT OR IGNORE INTO path_flags VALUES (?, ?, ?)", flags)
        tm.executemany(
            "INSERT INTO progress (tenant_id, next_seq) VALUES (?, ?)"
            " ON CONFLICT (tenant_id) DO UPDATE SET next_seq = excluded.next_seq",
            [(tenant_id, (rows[-1][0] & querysql.SEQ_MASK) + 1) for tenant_id, _, rows in work],
        )

    def _unindex(
        self,
        tenant_id: int,
        name: str,
        horizon: int,
        done: dict[int, int],
        below: dict[int, int],
        budget: int,
    ) -> int:
        """Remove the index entries of up to ``budget`` pruned events of a tenant (those
        from its ``pruned.below`` mark to its horizon), recomputed from their bodies, which
        stay until the entries are gone (storage/sqlite/pruning.py); raise the mark. The
        number of events dealt with."""
        tm = self._terms
        start = below.get(tenant_id, 0)
        if start >= horizon or budget <= 0:
            return 0
        rows = self._rows(tenant_id, start, horizon, budget)
        indexed = done.get(tenant_id, 0)
        docs: list[tuple[str, int, str]] = []
        found: list[tuple[int, int, numbers.Number, int]] = []
        for key, body in rows:
            if (key & querysql.SEQ_MASK) >= indexed:
                break  # never indexed, nor anything after it
            try:
                event = orjson.loads(body)
            except orjson.JSONDecodeError:
                continue
            if isinstance(event, dict):
                doc, held = terms.event_terms_and_numbers(name, event)
                docs.append(("delete", key, doc))
                found += [(tenant_id, pid, n, key) for pid, n in held.numbers]
        if docs:
            tm.executemany(
                "INSERT INTO events_terms (events_terms, rowid, terms) VALUES (?, ?, ?)", docs
            )
        if found:
            found.sort()
            tm.executemany(
                "DELETE FROM numbers WHERE tenant_id = ? AND path = ? AND v = ? AND key = ?",
                found,
            )
        end = horizon if len(rows) < budget else (rows[-1][0] & querysql.SEQ_MASK) + 1
        tm.execute(
            "INSERT INTO pruned (tenant_id, below) VALUES (?, ?) ON CONFLICT (tenant_id)"
            " DO UPDATE SET below = excluded.below",
            (tenant_id, end),
        )
        below[tenant_id] = end
        return max(len(rows), 1)

    def catch_up(self) -> int:
        """Index everything pending now; the number indexed."""
        total = 0
        while n := self.index_batch():
            total += n
        return total


def run(events_path: str, parent: int) -> int:
    """Index until told to stop or orphaned."""
    indexer = Indexer(events_path)
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        run_loop(indexer.index_batch, parent, (sqlite3.Error,), IDLE_SLEEP, BATCH_EVENTS)
    finally:
        indexer.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="auditlog SQLite search indexer")
    parser.add_argument("events_path")
    parser.add_argument("--parent", type=int, default=os.getppid())
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    args = parser.parse_args(argv)
    logformat.configure("info", args.log_format)  # as its server's log
    return run(args.events_path, args.parent)


if __name__ == "__main__":
    sys.exit(main())

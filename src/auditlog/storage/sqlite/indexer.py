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

import orjson

from auditlog import logformat
from auditlog.storage import numbers
from auditlog.storage.childprocess import run_loop
from auditlog.storage.sqlite import database, querysql, terms

log = logging.getLogger("auditlog.indexer")

BATCH_EVENTS = 2000
IDLE_SLEEP = 0.05


class Indexer:
    """Index committed events into the search index, one batch at a time."""

    def __init__(self, events_path: str) -> None:
        self.events_path = events_path
        self._events = database.connect(events_path, readonly=True)
        self._terms = database.connect(database.terms_path(events_path), synchronous="NORMAL")
        database.use_wal(self._terms, database.terms_path(events_path))
        database.migrate(self._terms, "terms", database.terms_path(events_path))

    def close(self) -> None:
        self._events.close()
        self._terms.close()

    def index_batch(self, max_events: int = BATCH_EVENTS) -> int:
        """Index up to ``max_events`` pending events; the number indexed (0: caught up)."""
        ev, tm = self._events, self._terms
        tm.execute("BEGIN IMMEDIATE")
        try:
            done = dict(tm.execute("SELECT tenant_id, next_seq FROM progress").fetchall())
            # Never below what pruning removed from the index (storage/sqlite/pruning.py).
            for tenant_id, below in tm.execute("SELECT tenant_id, below FROM pruned"):
                done[tenant_id] = max(done.get(tenant_id, 0), below)
            ev.execute("BEGIN")
            try:
                tenants = ev.execute("SELECT tenant_id, name, size FROM tenants").fetchall()
                budget = max_events
                for tenant_id, name, size in tenants:
                    start = done.get(tenant_id, 0)
                    if start >= size or budget <= 0:
                        continue
                    rows = ev.execute(
                        "SELECT key, body FROM events WHERE key >= ? AND key < ?"
                        " ORDER BY key LIMIT ?",
                        (
                            querysql.key_of(tenant_id, start),
                            querysql.key_of(tenant_id, size),
                            budget,
                        ),
                    ).fetchall()
                    if not rows:
                        continue
                    docs = []
                    found: list[tuple[int, int, numbers.Number, int]] = []
                    held: list[numbers.EventNumbers] = []
                    for key, body in rows:
                        doc, event = terms.event_terms_and_numbers(name, orjson.loads(body))
                        docs.append((key, doc))
                        held.append(event)
                        found += [(tenant_id, pid, n, key) for pid, n in event.numbers]
                    tm.executemany("INSERT INTO events_terms (rowid, terms) VALUES (?, ?)", docs)
                    found.sort()  # in index order: each B-tree page is visited once
                    tm.executemany("INSERT INTO numbers VALUES (?, ?, ?, ?)", found)
                    tm.executemany(
                        "INSERT OR IGNORE INTO path_flags VALUES (?, ?, ?)",
                        [(tenant_id, pid, flag) for pid, flag in numbers.flags_of(held)],
                    )
                    last_seq = rows[-1][0] & querysql.SEQ_MASK
                    tm.execute(
                        "INSERT INTO progress (tenant_id, next_seq) VALUES (?, ?)"
                        " ON CONFLICT (tenant_id) DO UPDATE SET next_seq = excluded.next_seq",
                        (tenant_id, last_seq + 1),
                    )
                    budget -= len(rows)
            finally:
                ev.execute("COMMIT")
            tm.execute("COMMIT")
        except BaseException:
            if tm.in_transaction:
                tm.execute("ROLLBACK")
            raise
        return max_events - budget

    def catch_up(self) -> int:
        """Index everything pending now; the number indexed."""
        total = 0
        while n := self.index_batch():
            total += n
        return total


def run(events_path: str, parent: int) -> int:
    """Index until told to stop or orphaned."""
    indexer = Indexer(events_path)
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

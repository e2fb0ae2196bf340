#!/usr/bin/env python3
"""SQLite search indexer benchmark: rebuild the search index of a data directory and time it.

Deletes ``auditlog.db-terms`` (and its WAL) in ``--data``, then indexes every stored event in
this process (``SQLiteStore.index_pending``, the indexer process's work) ``--runs`` times,
printing events/s and the size of the index each time. Build a data set first, e.g.
``.venv/bin/python bench/query.py --data /tmp/ab100k --events 100000 --build-only``.

Reproduce:  .venv/bin/python bench/indexer.py --data /tmp/ab100k
            PYTHONPATH=/tmp/snap/src .venv/bin/python bench/indexer.py --data /tmp/ab100k
(the second with ``git archive REV src | tar -x -C /tmp/snap``: another version's indexer on
the same events). Only files in ``--data`` are touched.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import code_version

from auditlog.storage.sqlite.store import SQLiteStore


def probe() -> float:
    """Seconds for a fixed loop: how fast the machine is right now."""
    started = time.perf_counter()
    sum(range(10**7))
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="a data directory with stored events")
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    db = os.path.join(args.data, "auditlog.db")
    if not os.path.exists(db):
        raise SystemExit(f"no events in {args.data}")
    print(f"indexer benchmark: code {code_version()}, data {args.data}")
    for run in range(1, args.runs + 1):
        for suffix in ("-terms", "-terms-wal", "-terms-shm"):
            Path(db + suffix).unlink(missing_ok=True)
        store = SQLiteStore(db)
        asyncio.run(store.open())
        try:
            machine = probe()
            started = time.perf_counter()
            indexed = store.index_pending()
            seconds = time.perf_counter() - started
        finally:
            asyncio.run(store.close())
        size = os.path.getsize(db + "-terms") / 2**20
        print(
            f"run {run}: {indexed:,} events in {seconds:.2f} s = {indexed / seconds:,.0f} "
            f"events/s; index {size:.1f} MiB; probe {machine:.3f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

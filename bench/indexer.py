#!/usr/bin/env python3
"""SQLite search indexer benchmark: rebuild the search index of a data directory and time it.

Deletes ``auditlog.db-terms`` (and its WAL) in ``--data``, then indexes every stored event in
this process (``SQLiteStore.index_pending``, the indexer process's work, with the collector
and switch interval that process sets) ``--runs`` times, printing events/s, CPU seconds per event and the size of the index each time. The CPU is
this process's user + system time (``time.process_time``) plus that of the worker processes
the indexer started and waited for (``os.times``), so it does not depend on what else the
machine runs. Build a data set first, e.g.
``.venv/bin/python bench/query.py --data /tmp/ab100k --events 100000 --build-only``.

``--live SECONDS`` measures the indexer under load instead: a fresh data directory, one
``auditlog serve`` (default settings: its indexer process and workers), and wrk posting
batches of 1,000 events (``bench/post_batch.lua``, ``--conns`` connections) for SECONDS.
Every ``--every`` seconds it samples the index lag (how long ago the log reached the size
that the indexer's progress has now reached; the log's size is read every 0.1 s) and times
one search that matches nothing over HTTP (``q=`` a word no event holds, a new one each time,
as a recorded read holds its query). The server does not record reads unless
``--audit-reads``: a recorded search also waits for its record's commit behind the batches. Prints the lag and the
latency (median, p95, max), events/s, and the CPU of the server and of the indexer with its
workers.

Reproduce:  .venv/bin/python bench/indexer.py --data /tmp/ab100k
            PYTHONPATH=/tmp/snap/src .venv/bin/python bench/indexer.py --data /tmp/ab100k
            .venv/bin/python bench/indexer.py --live 60
(the second with ``git archive REV src | tar -x -C /tmp/snap``: another version's indexer on
the same events). Only files in ``--data`` (or the fresh directory, removed after) are
touched; everything goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import (
    BENCH,
    TICK,
    WRK,
    children,
    clean_env,
    code_version,
    create_key,
    free_port,
    proc_stat,
    start_server,
    stop_server,
)

from auditlog.collector import collect_less
from auditlog.storage.sqlite import indexer as indexer_module
from auditlog.storage.sqlite.indexer import Indexer
from auditlog.storage.sqlite.store import SQLiteStore


def probe() -> float:
    """Seconds for a fixed loop: how fast the machine is right now."""
    started = time.perf_counter()
    sum(range(10**7))
    return time.perf_counter() - started


class LogSize:
    """The log's size and the indexer's progress, read every 0.1 s on a thread of its own."""

    def __init__(self, data: str) -> None:
        db = os.path.join(data, "auditlog.db")
        self._events = sqlite3.connect(f"file:{db}?mode=ro", uri=True, check_same_thread=False)
        self._terms_path = db + "-terms"
        self.history: list[tuple[float, int]] = []  # (monotonic time, log size)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def size(self) -> int:
        row = self._events.execute("SELECT coalesce(sum(size), 0) FROM tenants").fetchone()
        return int(row[0])

    def progress(self) -> int:
        terms = sqlite3.connect(f"file:{self._terms_path}?mode=ro", uri=True)
        try:
            return int(
                terms.execute("SELECT coalesce(sum(next_seq), 0) FROM progress").fetchone()[0]
            )
        except sqlite3.Error:
            return 0
        finally:
            terms.close()

    def lag_s(self) -> float:
        """Seconds since the log held as many events as are indexed now (0: all indexed)."""
        indexed, now = self.progress(), time.monotonic()
        history = list(self.history)
        if not history or indexed >= history[-1][1]:
            return 0.0
        for at, size in history:
            if size > indexed:
                return now - at
        return 0.0

    def _watch(self) -> None:
        while not self._stop.wait(0.1):
            self.history.append((time.monotonic(), self.size()))

    def start(self) -> None:
        self.history.append((time.monotonic(), self.size()))
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._events.close()


def ticks_of(pids: list[int]) -> int:
    return sum((proc_stat(p) or (0, 0, 0))[0] for p in pids)


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"median {statistics.median(ordered):.2f}, p95 {p95:.2f}, max {ordered[-1]:.2f}"


def live(args: argparse.Namespace) -> int:
    data = tempfile.mkdtemp(prefix="auditlog-bench-indexer-")
    reads = "reads recorded" if args.audit_reads else "reads not recorded"
    print(
        f"indexer under load: code {code_version()}, {args.live} s of batches, "
        f"-c{args.conns}, {reads}"
    )
    try:
        key = create_key(data)
        port = free_port()
        flags = () if args.audit_reads else ("--no-audit-reads",)
        server = start_server(data, port, ready="/readyz", timeout=30, flags=flags)
        wrk: subprocess.Popen[bytes] | None = None
        sizes = LogSize(data)
        try:
            indexer = children(server.pid)
            sizes.start()
            started = time.monotonic()
            cpu0 = {"server": ticks_of([server.pid]), "indexer": 0}
            wrk = subprocess.Popen(
                [
                    *(WRK, "-t1", f"-c{args.conns}", f"-d{args.live}s", "--timeout", "10s"),
                    *("-s", str(BENCH / "post_batch.lua"), f"http://127.0.0.1:{port}"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL,
                env=dict(clean_env(), AUDITLOG_KEY=key),
            )
            lags: list[float] = []
            latencies: list[float] = []
            workers: set[int] = set()
            refused = 0
            headers = {"Authorization": f"Bearer {key}"}
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers) as client:
                n = 0
                while time.monotonic() - started < args.live:
                    time.sleep(args.every)
                    for pid in indexer:
                        workers.update(children(pid))
                    lags.append(sizes.lag_s())
                    n += 1
                    t = time.perf_counter()
                    r = client.get("/v1/events", params={"q": f"zq{n}x{os.getpid()}"}, timeout=30)
                    latencies.append((time.perf_counter() - t) * 1000)
                    if r.status_code != 200:  # 503: the query ran past its time limit
                        refused += 1
                    elif r.json()["events"]:
                        raise SystemExit("the search that matches nothing found events")
            seconds = time.monotonic() - started
            cpu_server = ticks_of([server.pid]) - cpu0["server"]
            cpu_indexer = ticks_of(indexer + sorted(workers))  # all of theirs, since start-up
            indexed = sizes.progress()
            wrk.wait(timeout=30)
            size = sizes.size()
            caught_up = time.monotonic()
            while sizes.progress() < size and time.monotonic() - caught_up < 120:
                time.sleep(0.1)
            caught_up = time.monotonic() - caught_up
        finally:
            if wrk is not None and wrk.poll() is None:
                wrk.kill()
                wrk.wait()
            sizes.stop()
            stop_server(server)
        print(
            f"{size:,} events in {seconds:.0f} s = {size / seconds:,.0f} events/s; "
            f"{len(workers)} indexer workers"
        )
        print(f"index lag, s: {summary(lags)} ({len(lags)} samples)")
        print(
            f"search that matches nothing, ms: {summary(latencies)}; "
            f"{refused} of {len(latencies)} answered other than 200 (503: its time limit)"
        )
        print(
            f"CPU: server {cpu_server / TICK / seconds * 100:.0f} % of a core, indexer and "
            f"workers {cpu_indexer / TICK / seconds * 100:.0f} % "
            f"({cpu_indexer / TICK / max(indexed, 1) * 1e6:.1f} us per event indexed by then); "
            f"all indexed {caught_up:.1f} s after the load stopped"
        )
    finally:
        shutil.rmtree(data, ignore_errors=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="a data directory with stored events")
    parser.add_argument("--live", type=int, help="seconds of batch ingest to measure lag under")
    parser.add_argument("--conns", type=int, default=8, help="wrk connections (--live)")
    parser.add_argument("--every", type=float, default=0.5, help="seconds between samples (--live)")
    parser.add_argument(
        "--audit-reads",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="the server records each read in the log, as it does by default; then a search "
        "also waits for its record's commit behind the batches (--live; default: not)",
    )
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument(
        "--workers",
        type=int,
        help="the indexer's worker processes (default: its own default, as index_pending)",
    )
    args = parser.parse_args()
    if args.live:
        return live(args)
    if not args.data:
        parser.error("--data or --live is needed")
    db = os.path.join(args.data, "auditlog.db")
    if not os.path.exists(db):
        raise SystemExit(f"no events in {args.data}")
    workers = "default" if args.workers is None else args.workers
    print(f"indexer benchmark: code {code_version()}, data {args.data}, workers {workers}")
    # As the indexer process sets itself up (storage/sqlite/indexer.py ``run``).
    collect_less()
    sys.setswitchinterval(getattr(indexer_module, "SWITCH_INTERVAL", sys.getswitchinterval()))
    for run in range(1, args.runs + 1):
        for suffix in ("-terms", "-terms-wal", "-terms-shm"):
            Path(db + suffix).unlink(missing_ok=True)
        store = SQLiteStore(db)
        asyncio.run(store.open())
        try:
            machine = probe()
            started = time.perf_counter()
            cpu = time.process_time()
            children = os.times()
            if args.workers is None:
                indexed = store.index_pending()
            else:
                indexer = Indexer(db, workers=args.workers)
                try:
                    indexed = indexer.catch_up()
                finally:
                    indexer.close()
            cpu = time.process_time() - cpu
            after = os.times()
            helpers = (after.children_user - children.children_user) + (
                after.children_system - children.children_system
            )
            cpu += helpers
            seconds = time.perf_counter() - started
        finally:
            asyncio.run(store.close())
        size = os.path.getsize(db + "-terms") / 2**20
        print(
            f"run {run}: {indexed:,} events in {seconds:.2f} s = {indexed / seconds:,.0f} "
            f"events/s; CPU {cpu:.2f} s = {cpu / indexed * 1e6:.1f} us/event "
            f"({helpers / indexed * 1e6:.1f} of them in workers); "
            f"index {size:.1f} MiB; probe {machine:.3f} s",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

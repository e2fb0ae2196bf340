#!/usr/bin/env python3
"""Pruning benchmark: archive and prune 1,000,000 events of one tenant while another one writes.

1. **Build** (not timed): ``--events`` events of tenant ``old``, received in January 2025
   (the clock is set back while they are appended), in batches through the store, then
   integrated (signed checkpoints) and indexed, as a served log would be. On PostgreSQL the
   month gets its own partition first (``events_2025_01``), as a served log of then would
   have; ``--current-month`` puts them in this month's partition instead (shared with the
   tenant that writes), so that the prune deletes rows rather than dropping a partition.
2. **Archive** it (``auditlog archive --through-seq N-1``, timed, with nothing else running)
   and set its retention so that every event is due.
3. **Serve** the store (``auditlog serve``) and load it with wrk (``post_event.lua``: single
   events, ``--conns`` connections) as tenant ``live`` for the whole run, sampling
   ``/metrics`` every 0.25 s: ``auditlog_events_ingested_total`` for the ingest rate, and
   ``auditlog_pruning`` and ``auditlog_prune_swept_events_total`` for the prune's window.
4. **Baseline** ingest for ``--baseline`` seconds, then the **prune**: by default the
   service's own round (``--prune-interval-seconds`` set so that its first round starts
   then), or with ``--via cli`` ``auditlog prune --tenant old`` run beside the server; then
   ``--baseline`` seconds more. The ingest rate in each window.
5. **Space**: the store's size before and after (SQLite: the database files, after the
   server stopped; PostgreSQL: the events partitions, search and numbers tables, and the
   database). With ``--no-load`` nothing else is written, so the difference is the prune's.

Prints one table; reproduce with the command it prints. Traffic stays on 127.0.0.1.

Reproduce:  .venv/bin/python bench/prune.py --data /tmp/prune-sqlite
            .venv/bin/python bench/prune.py --store postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from harness import BackgroundWrk, reproduce  # noqa: E402
from ingest import AUDITLOG, clean_env, code_version, start_server, stop_server  # noqa: E402

from auditlog import config  # noqa: E402
from auditlog.model import times  # noqa: E402
from auditlog.model.event import Limits, Principal, validate_event  # noqa: E402
from auditlog.service.integrator import Integrator  # noqa: E402
from auditlog.service.logkey import LogKey  # noqa: E402
from auditlog.storage.base import AppendRequest, Store  # noqa: E402
from auditlog.storage.factory import open_store  # noqa: E402
from auditlog.storage.postgres import database  # noqa: E402

OLD_MONTH = (2025, 1)
WORDS = ["refund", "issued", "customer", "upgrade", "plan", "quota", "exceeded", "invoice"]
CITIES = ["Seattle", "Paris", "Lagos", "Lima", "Osaka", "Berlin", "Austin", "Pune"]
INGESTED = "auditlog_events_ingested_total"
SWEPT = "auditlog_prune_swept_events_total"
_FOLLOWED = (INGESTED, SWEPT, "auditlog_pruning", "auditlog_prune_reclaimed_bytes_total")
#: Longest wait for the prune to finish, in seconds.
PRUNE_TIMEOUT = 3600.0


def raw_event(rng: random.Random, n: int) -> dict[str, Any]:
    return {
        "type": rng.choice(["account.created", "invoice.billed", "resource.updated"]),
        "actor": {"id": f"user-{rng.randrange(5000)}", "type": "user"},
        "subject": {"id": f"res-{rng.randrange(100000)}", "type": "resource"},
        "source": "billing",
        "outcome": "success",
        "data": {
            "n": n,
            "amount": rng.randrange(1, 100000) / 100,
            "location": {"city": rng.choice(CITIES)},
            "message": " ".join(rng.choice(WORDS) for _ in range(8)),
        },
    }


async def build(url: str, events: int, current_month: bool) -> None:
    settings = config.load({"store": url}, config_file=None)
    store: Store = open_store(settings)
    if url.startswith("postgresql") and not current_month:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            start = database.month_start(*OLD_MONTH)
            end = database.month_start(OLD_MONTH[0], OLD_MONTH[1] + 1)
            conn.execute(
                "CREATE TABLE IF NOT EXISTS events_2025_01 PARTITION OF events"
                f" FOR VALUES FROM ({start}) TO ({end})"
            )
    await store.open()
    rng = random.Random(7)
    real_now = times.now_us
    base = real_now() if current_month else database.month_start(*OLD_MONTH) + 86_400_000_000
    offset = real_now() - base
    times.now_us = lambda: real_now() - offset  # type: ignore[assignment]
    try:
        principal = Principal("key:bench", "bench")
        started = time.monotonic()
        for first in range(0, events, 2000):
            batch = tuple(
                validate_event(raw_event(rng, n), principal, Limits(), times.now_us())
                for n in range(first, min(events, first + 2000))
            )
            await store.append([AppendRequest("old", batch)])
        appended = time.monotonic() - started
        key = LogKey(store, "auditlog")
        integrator = Integrator(store, key)
        while await integrator.integrate_batch("old") is not None:
            pass
        integrated = time.monotonic() - started - appended
    finally:
        times.now_us = real_now  # type: ignore[assignment]
    indexed_from = time.monotonic()
    await asyncio.to_thread(store.index_pending)  # type: ignore[attr-defined]
    print(
        f"  built {events} events: appended {appended:.0f} s, integrated {integrated:.0f} s,"
        f" indexed {time.monotonic() - indexed_from:.0f} s",
        flush=True,
    )
    await store.close()


def scrape(port: int) -> dict[str, float]:
    """The metrics this benchmark follows, from ``/metrics``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    found = dict.fromkeys(_FOLLOWED, 0.0)
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in found:
            found[name] = float(value)
    return found


class Sampler:
    """The followed metrics every 0.25 s, to take rates and find the prune's window."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError):
                self.samples.append((time.monotonic(), scrape(self.port)))
            self._stop.wait(0.25)

    def rate(self, start: float, end: float) -> float:
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2:
            return float("nan")
        (t0, m0), (t1, m1) = inside[0], inside[-1]
        return (m1[INGESTED] - m0[INGESTED]) / (t1 - t0)

    def pruning_window(self) -> tuple[float, float] | None:
        """From the first sample with a pruning round running to the first after it without."""
        running = [t for t, m in self.samples if m["auditlog_pruning"] == 1.0]
        if not running:
            return None
        after = [t for t, m in self.samples if t > running[0] and m["auditlog_pruning"] == 0.0]
        return (running[0], after[0]) if after else None

    def latest(self, name: str) -> float:
        return self.samples[-1][1][name] if self.samples else 0.0

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def run_command(*argv: str) -> tuple[float, str]:
    started = time.monotonic()
    done = subprocess.run(
        [AUDITLOG, *argv], capture_output=True, text=True, env=clean_env(), check=False
    )
    took = time.monotonic() - started
    if done.returncode not in (0,):
        raise RuntimeError(f"auditlog {' '.join(argv)}: exit {done.returncode}\n{done.stderr}")
    return took, done.stdout


def sqlite_bytes(path: Path) -> int:
    return sum(
        os.path.getsize(f"{path}{suffix}")
        for suffix in ("", "-wal", "-terms", "-terms-wal")
        if os.path.exists(f"{path}{suffix}")
    )


def postgres_bytes(url: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")
        row = conn.execute(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_inherits AS i"
            " JOIN pg_class AS c ON c.oid = i.inhrelid WHERE i.inhparent = 'events'::regclass"
        ).fetchone()
        sizes = {"events": int(row[0]) if row else 0}
        for table in ("event_search", "event_numbers", "pruned_ids", "tree_nodes"):
            found = conn.execute("SELECT pg_total_relation_size(%s::regclass)", (table,))
            value = found.fetchone()
            sizes[table] = int(value[0]) if value else 0
        db = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        sizes["database"] = int(db[0]) if db else 0
    return sizes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="SQLite: a data directory (emptied first)")
    parser.add_argument("--store", help="a postgresql:// URL (its tables are emptied first)")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--current-month", action="store_true")
    parser.add_argument("--conns", type=int, default=32)
    parser.add_argument("--baseline", type=float, default=20.0, help="seconds of baseline")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--via",
        choices=("service", "cli"),
        default="service",
        help="who prunes: the service's schedule, or auditlog prune beside the server",
    )
    parser.add_argument(
        "--no-load",
        action="store_true",
        help="no writes beside the archive and prune: the space figures are then exact",
    )
    args = parser.parse_args()
    if bool(args.data) == bool(args.store):
        parser.error("give one of --data or --store")
    if args.data:
        shutil.rmtree(args.data, ignore_errors=True)
        Path(args.data).mkdir(parents=True)
        url = f"sqlite:///{Path(args.data) / 'auditlog.db'}"
        where = ["--data", args.data]
    else:
        url = args.store
        where = ["--store", url]
        run_command("migrate", *where)
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS events_2025_01")
            tables = (
                "tenants, events, event_search, event_numbers, path_flags, index_progress,"
                " tree_nodes, checkpoints, horizons, pruned_ids, archives, retention,"
                " legal_holds, api_keys"
            )
            conn.execute(f"TRUNCATE {tables}")
    print(f"prune benchmark: code {code_version()}, {args.events} events, {url}", flush=True)
    asyncio.run(build(url, args.events, args.current_month))
    before = sqlite_bytes(Path(args.data) / "auditlog.db") if args.data else postgres_bytes(url)
    out_dir = tempfile.mkdtemp(prefix="prune-bench-")
    archive = Path(out_dir) / "old.zip"
    archive_s, _ = run_command(
        "archive", "--tenant", "old", "--through-seq", str(args.events - 1), "-o",
        str(archive), *where,
    )  # fmt: skip
    keep = "1s" if args.current_month else "400d"  # either way every event of old is due
    run_command("retention", "set", "--tenant", "old", "--keep", keep, *where)
    _, key_out = run_command(
        "keys", "create", "--tenant", "live", "--scopes", "events:write", *where
    )
    key = key_out.strip().splitlines()[-1]
    warmup = 0.0 if args.no_load else 5.0
    first_round = max(1, round(warmup + (0 if args.no_load else args.baseline)))
    via_service = args.via == "service"
    interval = str(first_round) if via_service else "0"
    server = start_server(
        args.data or url,
        args.port,
        flags=["--prune-interval-seconds", interval, "--no-audit-reads", "--write-rate", "0"],
    )
    sampler = Sampler(args.port)
    started = time.monotonic()
    try:
        if not args.no_load:
            wrk = BackgroundWrk("post_event.lua", args.conns, 7200, args.port, key, out_dir)
            wrk.start()
        if via_service:
            deadline = time.monotonic() + PRUNE_TIMEOUT
            while (window := sampler.pruning_window()) is None or sampler.latest(
                SWEPT
            ) < args.events:
                if time.monotonic() > deadline:
                    raise RuntimeError("the prune did not finish in time")
                time.sleep(0.25)
            prune_start, prune_end = window
            prune_out = f"swept {sampler.latest(SWEPT):,.0f} events"
        else:
            time.sleep(first_round)
            prune_start = time.monotonic()
            _, prune_out = run_command("prune", "--tenant", "old", *where)
            prune_end = time.monotonic()
        time.sleep(0 if args.no_load else args.baseline)
        after_end = time.monotonic()
        subprocess.run(["pkill", "-INT", "-P", str(os.getpid()), "wrk"], check=False)
        time.sleep(0.5)
    finally:
        sampler.stop()
        stop_server(server)
    after = sqlite_bytes(Path(args.data) / "auditlog.db") if args.data else postgres_bytes(url)
    print(prune_out.strip())
    print()
    print(f"| phase | seconds | ingest events/s (tenant live, wrk c{args.conns}) |")
    print("|---|---|---|")
    base = (started + warmup, prune_start)
    print(f"| baseline | {base[1] - base[0]:.1f} | {sampler.rate(*base):,.0f} |")
    print(
        f"| prune of {args.events:,} ({args.via}) | {prune_end - prune_start:.1f}"
        f" | {sampler.rate(prune_start, prune_end):,.0f} |"
    )
    print(f"| after | {after_end - prune_end:.1f} | {sampler.rate(prune_end, after_end):,.0f} |")
    print(
        f"\narchive of {args.events:,} events (no other load): {archive_s:.1f} s,"
        f" {archive.stat().st_size / 1e6:.1f} MB"
    )
    print()
    if isinstance(before, int) and isinstance(after, int):
        print(f"SQLite files: {before / 1e6:,.0f} MB before, {after / 1e6:,.0f} MB after")
    else:
        assert isinstance(before, dict)
        assert isinstance(after, dict)
        for name in before:
            print(f"{name}: {before[name] / 1e6:,.0f} MB before, {after[name] / 1e6:,.0f} MB after")
    print(f"\nreproduce: {reproduce('prune.py', sys.argv[1:])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

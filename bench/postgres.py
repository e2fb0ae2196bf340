#!/usr/bin/env python3
"""PostgreSQL benchmark: ingest through several ``auditlog serve`` processes on one database,
and first pages of typical queries with 1,000,000 events stored.

Ingest (``--part ingest``): each run makes a fresh database (``--db``, dropped and made again
on the server of ``--admin-url``), starts ``--processes`` servers on it (127.0.0.1, free ports)
and drives each with its own wrk (``-t1``), the connections split between them:

* ``single``: ``bench/post_event.lua``, one ~500-byte event per POST, ``--single-conns`` (64);
* ``batch``:  ``bench/post_batch.lua``, 1,000 events per POST, ``--batch-conns`` (8).

Events/s is the sum over the wrk instances; p50/p99 the worst of them. Measured besides: CPU
of the servers, of their search indexers, of every PostgreSQL process (the indexer's backend
included), of wrk and of every other process (a run where
others used more than ``--max-noise`` % of a core is repeated), the servers' peak RSS, and
after the servers stopped: events stored >= events acknowledged, and ``next_seq`` = rows. Per
event besides: the CPU of the bench database's own backends (those of other databases on the
same server left out; the indexer's named) and the WAL written for it, by relation, from the
log's records (``pg_walinspect``).

Queries (``--part query``): builds ``--events`` synthetic events (bench/query.py's
distribution) in ``--query-db`` through ``PostgresStore.append`` in groups of ``--group``
(kept for reuse; ``--rebuild`` makes it again), indexes them for search
(``PostgresStore.index_pending``, what the indexer process does), builds the Merkle tree
and a checkpoint in one integrator round, runs ANALYZE, starts one
server and times each
query over HTTP (one keep-alive connection, ``--warm`` unmeasured then ``--samples`` measured
requests), and prints the median and p95 with the plan PostgreSQL chose for the first statement.

Reproduce:  .venv/bin/python bench/postgres.py                   (both parts, 3 runs each)
            .venv/bin/python bench/postgres.py --part ingest --scenario batch
Everything goes to 127.0.0.1; each run is bounded (~20 s), and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from ingest import (  # noqa: E402
    SCENARIOS,
    TICK,
    CpuWindow,
    children,
    code_version,
    create_key,
    free_port,
    others_now,
    proc_stat,
    run_wrk,
    start_server,
    stop_server,
    vm_hwm_kib,
)
from query import DAY_US, QUERY_TYPE, RARE, TENANT, integrate, raw_event  # noqa: E402

from auditlog.config import Settings  # noqa: E402
from auditlog.model import times  # noqa: E402
from auditlog.model.event import Limits, Principal, validate_event  # noqa: E402
from auditlog.model.query import parse_query  # noqa: E402
from auditlog.storage.base import AppendRequest  # noqa: E402
from auditlog.storage.postgres import database, querysql  # noqa: E402
from auditlog.storage.postgres.store import PostgresStore  # noqa: E402


def db_url(admin_url: str, db: str) -> str:
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{db}"


def remake_db(admin_url: str, db: str) -> str:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {db}")
    return db_url(admin_url, db)


def postgres_pids() -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/comm") as fh:
                    if fh.read().strip() == "postgres":
                        out.append(int(name))
            except OSError:
                pass
    return out


def db_backends(conn: psycopg.Connection[Any]) -> dict[int, str]:
    """The PostgreSQL backends of ``conn``'s database but ``conn``'s own: pid -> application."""
    found = conn.execute(
        "SELECT pid, application_name FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    ).fetchall()
    return {int(pid): str(app) for pid, app in found}


#: WAL records of the window that touch the bench database (by block reference), with the
#: commit records of their transactions, by relation (a partition's indexes as one).
_WAL_BY_RELATION = """
WITH r AS (
    SELECT xid, resource_manager AS rm, record_length AS len, fpi_length AS fpi,
           substring(block_ref FROM 'rel [0-9]+/([0-9]+)/')::oid AS db,
           substring(block_ref FROM 'rel [0-9]+/[0-9]+/([0-9]+)')::oid AS node
    FROM pg_get_wal_records_info(%(start)s, %(end)s)
), ours AS (
    SELECT * FROM r WHERE db = (SELECT oid FROM pg_database WHERE datname = current_database())
), x AS (SELECT DISTINCT xid FROM ours WHERE xid <> 0)
SELECT coalesce(regexp_replace(pg_filenode_relation(0, node)::text,
                               '^events_[0-9]{4}_[0-9]{2}', 'events_<month>'),
                'node ' || node::text) AS rel,
       count(*), sum(len), sum(fpi)
FROM ours GROUP BY 1
UNION ALL
SELECT '(commit records)', count(*), sum(len), sum(fpi) FROM r
WHERE rm = 'Transaction' AND xid IN (SELECT xid FROM x)
ORDER BY 3 DESC
"""


def postgres_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        stat = proc_stat(pid)
        if stat is not None:
            total += stat[0]
    return total


# -- ingest ------------------------------------------------------------------------------


def ingest_run(name: str, conns: int, args: argparse.Namespace) -> dict[str, Any]:
    script, batch = SCENARIOS[name]
    url = remake_db(args.admin_url, args.db)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
    subprocess.run(
        [str(BENCH.parent / ".venv/bin/auditlog"), "migrate", "--store", url],
        check=True,
        capture_output=True,
        timeout=60,
    )
    key = create_key(url)
    ports = [free_port() for _ in range(args.processes)]
    servers = [start_server(url, port, ready="/readyz") for port in ports]
    per = max(1, conns // args.processes)
    results: list[dict[str, float]] = [{} for _ in ports]
    wrk_ticks = [0.0 for _ in ports]
    try:
        if args.warmup > 0:
            _wrk_all(script, per, args.warmup, ports, key, args, results, wrk_ticks)
        warm_acked = sum(int(r["requests"] - r["non2xx"]) * batch for r in results)
        pg = postgres_pids()
        indexers = [kid for s in servers for kid in children(s.pid)]
        window = CpuWindow([s.pid for s in servers] + indexers + pg)
        # The bench database's own backends (others' databases on the server left out), and
        # its WAL, from the log's records.
        watch = psycopg.connect(url, autocommit=True)
        backends = db_backends(watch)
        start_ticks = {pid: postgres_ticks([pid]) for pid in backends}
        start_lsn = watch.execute("SELECT pg_current_wal_lsn()").fetchone()
        window.begin()
        _wrk_all(script, per, args.duration, ports, key, args, results, wrk_ticks)
        cpu = window.end(sum(wrk_ticks))
        backends |= db_backends(watch)
        db_ticks = {pid: postgres_ticks([pid]) - start_ticks.get(pid, 0) for pid in backends}
        end_lsn = watch.execute("SELECT pg_current_wal_lsn()").fetchone()
        hwm = [vm_hwm_kib(s.pid) or 0 for s in servers]
    finally:
        for server in servers:
            stop_server(server)
    acked = warm_acked + sum(int(r["requests"] - r["non2xx"]) * batch for r in results)
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT count(*) FROM events e JOIN tenants t USING (tenant_id) WHERE t.name = 'bench'"
        ).fetchone()
        size = conn.execute("SELECT next_seq FROM tenants WHERE name = 'bench'").fetchone()
    stored = int(rows[0]) if rows else 0
    measured = sum(r["requests"] * batch for r in results)  # the window's events
    wal: list[tuple[str, int, int, int]] = []
    if start_lsn is not None and end_lsn is not None:
        try:
            found = watch.execute(
                _WAL_BY_RELATION, {"start": start_lsn[0], "end": end_lsn[0]}
            ).fetchall()
            wal = [(str(r[0]), int(r[1]), int(r[2] or 0), int(r[3] or 0)) for r in found]
        except psycopg.errors.UndefinedFile:
            # A checkpoint recycled the window's first segments before they were read (the
            # server keeps only max_wal_size): the WAL written, all of it, as one line.
            (written,) = watch.execute(
                "SELECT pg_wal_lsn_diff(%s, %s)::bigint", (end_lsn[0], start_lsn[0])
            ).fetchone() or (0,)
            wal = [("(all: segments recycled before they were read)", 0, int(written), 0)]
    watch.close()
    if size is None or int(size[0]) != stored:
        raise RuntimeError(f"tenants.next_seq {size} but {stored} rows")
    secs = cpu["seconds"]
    events = sum(r["requests"] * batch for r in results)
    duration = max(r["duration_s"] for r in results)
    pg_pct = sum(cpu.get(f"pid{p}_pct", 0.0) for p in pg)
    indexer_pct = sum(cpu.get(f"pid{p}_pct", 0.0) for p in indexers)
    return {
        "scenario": name,
        "conns": conns,
        "events_per_s": events / duration,
        "p50_ms": max(r["p50_ms"] for r in results),
        "p99_ms": max(r["p99_ms"] for r in results),
        "non2xx": int(sum(r["non2xx"] for r in results)),
        "errors": int(sum(r["errors"] for r in results)),
        "servers_cpu_pct": sum(cpu[f"pid{s.pid}_pct"] for s in servers),
        "postgres_cpu_pct": pg_pct,
        "indexer_cpu_pct": indexer_pct,
        "wrk_cpu_pct": 100.0 * sum(wrk_ticks) / TICK / secs,
        "others_pct": cpu["others_pct"],
        "hwm_mib": max(hwm) / 1024,
        "acked": acked,
        "stored": stored,
        "measured": measured,
        "db_pg_us_per_event": 1e6 * sum(db_ticks.values()) / TICK / max(measured, 1),
        "db_indexer_us_per_event": 1e6
        * sum(t for p, t in db_ticks.items() if backends[p] == "auditlog-indexer")
        / TICK
        / max(measured, 1),
        "servers_us_per_event": 1e6
        * sum(cpu[f"pid{s.pid}_ticks"] for s in servers)
        / TICK
        / max(measured, 1),
        "wal_bytes_per_event": sum(w[2] for w in wal) / max(measured, 1),
        "wal_by_relation": wal,
        "code": code_version(),
    }


def fmt_per_event(r: dict[str, Any]) -> str:
    """CPU and WAL per event of a run: the bench database's backends, and its WAL by relation."""
    top = ", ".join(
        f"{rel} {size / max(r['measured'], 1):,.0f}"
        + (f" (FPI {fpi / max(r['measured'], 1):,.0f})" if fpi else "")
        for rel, _, size, fpi in r["wal_by_relation"]
        if size >= 10 * max(r["measured"], 1)
    )
    return (
        f"  per event: servers {r['servers_us_per_event']:.0f} µs, PostgreSQL (bench database's"
        f" backends) {r['db_pg_us_per_event']:.1f} µs, of which the indexer's"
        f" {r['db_indexer_us_per_event']:.1f} µs; WAL {r['wal_bytes_per_event']:,.0f} bytes: {top}"
    )


def _wrk_all(
    script: str,
    conns: int,
    seconds: int,
    ports: list[int],
    key: str,
    args: argparse.Namespace,
    results: list[dict[str, float]],
    ticks: list[float],
) -> None:
    errors: list[BaseException] = []

    def one(i: int, port: int) -> None:
        try:
            with tempfile.TemporaryDirectory(prefix="auditlog-bench-pg-", dir=args.tmp) as out:
                results[i], ticks[i] = run_wrk(script, conns, seconds, port, key, out)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i, p)) for i, p in enumerate(ports)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def fmt_ingest(r: dict[str, Any]) -> str:
    ok = "ok" if r["stored"] >= r["acked"] else "LOST"
    return (
        f"| {r['scenario']} c{r['conns']} | {r['events_per_s']:,.0f} | {r['p50_ms']:.1f} | "
        f"{r['p99_ms']:.1f} | {r['non2xx']} | {r['servers_cpu_pct']:.0f} | "
        f"{r['indexer_cpu_pct']:.0f} | {r['postgres_cpu_pct']:.0f} | {r['wrk_cpu_pct']:.0f} | "
        f"{r['others_pct']:.1f} | "
        f"{r['hwm_mib']:.0f} | {r['acked']:,} / {r['stored']:,} {ok} | {r['code']} |"
    )


INGEST_HEADER = (
    "| scenario | events/s | p50 ms | p99 ms | non-2xx | servers CPU % | indexers CPU % | "
    "postgres CPU % | wrk CPU % | others CPU % | server VmHWM MiB | acked / stored | code |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def ingest(args: argparse.Namespace) -> None:
    scenarios = ["single", "batch"] if args.scenario == "both" else [args.scenario]
    print(f"ingest: {args.processes} server processes on one PostgreSQL database")
    print(INGEST_HEADER)
    summary: list[str] = []
    for name in scenarios:
        conns = args.single_conns if name == "single" else args.batch_conns
        kept: list[dict[str, Any]] = []
        attempts = 0
        while len(kept) < args.runs and attempts < args.runs * 3:
            attempts += 1
            deadline = time.monotonic() + 30
            while others_now() > args.max_noise and time.monotonic() < deadline:
                pass
            run = ingest_run(name, conns, args)
            noisy = run["others_pct"] > args.max_noise
            print(fmt_ingest(run) + (" discarded (noise)" if noisy else ""), flush=True)
            print(fmt_per_event(run), flush=True)
            if not noisy:
                kept.append(run)
        if kept:
            eps = [r["events_per_s"] for r in kept]
            runs = ", ".join(f"{e:,.0f}" for e in eps)
            print(f"{name}: median {statistics.median(eps):,.0f} events/s ({runs})\n", flush=True)

            med = {key: statistics.median(r[key] for r in kept) for key in kept[0]
                   if key.endswith("_per_event")}  # fmt: skip
            summary.append(
                f"| {name} c{conns} | **{statistics.median(eps):,.0f}** | {runs} | "
                f"{med['servers_us_per_event']:.0f} | {med['db_pg_us_per_event']:.1f} | "
                f"{med['db_indexer_us_per_event']:.1f} | {med['wal_bytes_per_event']:,.0f} |"
            )
    if summary:
        print(
            "| scenario | events/s (median) | runs | servers CPU µs/event | PostgreSQL CPU "
            "µs/event (bench database) | of which the indexer's | WAL bytes/event |\n"
            "|---|---|---|---|---|---|---|"
        )
        print("\n".join(summary), flush=True)


# -- queries -----------------------------------------------------------------------------


async def build(url: str, n: int, group: int, seed: int) -> float:
    store = PostgresStore(url, Settings())
    await store.open()
    rng = random.Random(seed)
    principal = Principal("key:bench", "bench")
    limits = Limits()
    now = times.now_us()
    start_us = now - 30 * DAY_US
    t0 = time.perf_counter()
    try:
        for base in range(0, n, group):
            events = tuple(
                validate_event(raw_event(rng, i, n, start_us), principal, limits, now)
                for i in range(base, min(n, base + group))
            )
            await store.append([AppendRequest(TENANT, events)])
            if base and base % (group * 50) == 0:
                print(f"  appended {base:,} events, {time.perf_counter() - t0:.0f} s", flush=True)
        append_s = time.perf_counter() - t0
        print(
            f"  appended in {append_s:.1f} s ({n / append_s:,.0f} events/s); indexing", flush=True
        )
        t1 = time.perf_counter()
        indexed = await asyncio.to_thread(store.index_pending)
        index_s = time.perf_counter() - t1
        print(f"  indexed {indexed:,} events in {index_s:.1f} s ({indexed / index_s:,.0f}/s)")
        print(f"  integrated (Merkle tree, checkpoint) in {await integrate(store):.1f} s")
    finally:
        await store.close()
    return time.perf_counter() - t0


def stored(url: str) -> int:
    try:
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT next_seq FROM tenants WHERE name = %s", (TENANT,)).fetchone()
    except psycopg.Error:
        return 0
    return int(row[0]) if row else 0


def queries(url: str) -> list[tuple[str, str, list[tuple[str, str]]]]:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT max(time_us) FROM events").fetchone()
    assert row is not None
    newest = int(row[0])
    request_id = f"req-{stored(url) * 7 // 9:012d}"
    since = times.format_us(newest - 7 * DAY_US)
    until = times.format_us(newest)
    return [
        (
            "a",
            f"type={QUERY_TYPE} & last 7 days",
            [("type", QUERY_TYPE), ("since", since), ("until", until)],
        ),
        ("b", "data.location.city=Seattle", [("data.location.city", "Seattle")]),
        ("c", f"data.request_id={request_id} (1 match)", [("data.request_id", request_id)]),
        ("d", "q=refund (~24 % of events)", [("q", "refund")]),
        ("e", f"q={RARE} (~0.03 %)", [("q", RARE)]),
        ("f", f"q=refund & type={QUERY_TYPE}", [("q", "refund"), ("type", QUERY_TYPE)]),
        ("h", "no filter (the newest events)", []),
        ("j", "data.amount[gt]=999000 (~0.1 %)", [("data.amount[gt]", "999000")]),
        (
            "k",
            "data.amount[gte]=500000 & [lt]=500500 (~0.05 %)",
            [("data.amount[gte]", "500000"), ("data.amount[lt]", "500500")],
        ),
        ("l", "data.amount[gte]=500000 (~50 %)", [("data.amount[gte]", "500000")]),
    ]


def plan_of(url: str, params: list[tuple[str, str]]) -> str:
    query, _ = parse_query(params)
    with psycopg.connect(url, options=database.PAGE_SIZED) as conn:  # as the service's sessions
        row = conn.execute(
            "SELECT t.tenant_id, coalesce(p.next_seq, 0) FROM tenants AS t"
            " LEFT JOIN index_progress AS p USING (tenant_id) WHERE t.name = %s",
            (TENANT,),
        ).fetchone()
        assert row is not None
        compiled = querysql.compile_query(int(row[0]), query, int(row[1]))
        try:
            from auditlog.storage import numbers
        except ImportError:  # a snapshot of the code from before the numbers index
            span = None
        else:
            span = numbers.number_range(query.conditions, single=True)
        if span is not None:  # the plan through the numbers index, when the store takes it
            compiled = querysql.numbers_query(int(row[0]), query, int(row[1]), int(row[1]), span)
        segment = compiled.segments[-1 if compiled.descending else 0]  # the indexed part
        sql = "EXPLAIN " + segment.sql
        plan = conn.execute(sql, (*segment.params, compiled.start, query.limit + 1)).fetchall()
    return " / ".join(str(r[0]).strip() for r in plan[:4])


def query_part(args: argparse.Namespace) -> None:
    url = db_url(args.admin_url, args.query_db)
    have = stored(url)
    if args.rebuild or have < args.events:
        url = remake_db(args.admin_url, args.query_db)
        print(f"building {args.events:,} events in {args.query_db}", flush=True)
        seconds = asyncio.run(build(url, args.events, args.group, args.seed))
        print(f"  built in {seconds:.1f} s")
        with psycopg.connect(url, autocommit=True) as conn:
            t = time.perf_counter()
            conn.execute("VACUUM ANALYZE")
            print(f"  VACUUM ANALYZE {time.perf_counter() - t:.1f} s")
    with psycopg.connect(url) as conn:
        size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))")
        print(f"database size: {size.fetchone()}")
    key = create_key(url)
    qs = queries(url)
    medians: dict[str, list[float]] = {label: [] for label, _, _ in qs}
    p95s: dict[str, list[float]] = {label: [] for label, _, _ in qs}
    counts: dict[str, int] = {}
    for round_no in range(args.runs):
        port = free_port()
        flags = () if args.audit_reads else ("--no-audit-reads",)
        server = start_server(url, port, ready="/readyz", timeout=30, flags=flags)
        try:
            with httpx.Client(
                base_url=f"http://127.0.0.1:{port}",
                headers={"Authorization": f"Bearer {key}"},
                timeout=30,
            ) as client:
                for label, _, params in qs:
                    for _ in range(args.warm):
                        client.get("/v1/events", params=params)
                    ms = []
                    for _ in range(args.samples):
                        t = time.perf_counter()
                        r = client.get("/v1/events", params=params)
                        ms.append((time.perf_counter() - t) * 1000)
                        if r.status_code != 200:
                            raise RuntimeError(f"{label}: {r.status_code} {r.text[:300]}")
                    counts[label] = len(r.json()["events"])
                    ordered = sorted(ms)
                    medians[label].append(statistics.median(ms))
                    p95s[label].append(ordered[int(0.95 * (len(ordered) - 1))])
        finally:
            stop_server(server)
        print(f"round {round_no + 1} done", flush=True)
    reads = "reads recorded" if args.audit_reads else "reads not recorded (--no-audit-reads)"
    print(
        f"\nqueries over HTTP with {stored(url):,} events (median of {args.runs} rounds), {reads}"
    )
    print("| query | events on page | median ms | p95 ms |\n|---|---|---|---|")
    for label, desc, _ in qs:
        med = statistics.median(medians[label])
        p95 = statistics.median(p95s[label])
        print(f"| ({label}) {desc} | {counts[label]} | {med:.2f} | {p95:.2f} |")
    # Queries with conditions on data or words walk the log first; this is their GIN path.
    print("\nplans of each query's planned statement for the indexed part:")
    for label, _, params in qs:
        print(f"({label}) {plan_of(url, params)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--db", default="auditlog_bench")
    parser.add_argument("--query-db", default="auditlog_bench_1m")
    parser.add_argument("--part", choices=("ingest", "query", "both"), default="both")
    parser.add_argument("--scenario", choices=("single", "batch", "both"), default="both")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--single-conns", type=int, default=64)
    parser.add_argument("--batch-conns", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--max-noise", type=float, default=8.0)
    parser.add_argument("--tmp", default="/tmp")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--group", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--warm", type=int, default=5)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument(
        "--audit-reads",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the query server records each read in the log, as by default (each read then "
        "commits first, and the records pile up at the head of the log)",
    )
    args = parser.parse_args()
    print(f"code {code_version()}, {time.strftime('%Y-%m-%d %H:%M')}")
    if args.part in ("ingest", "both"):
        ingest(args)
    if args.part in ("query", "both"):
        query_part(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

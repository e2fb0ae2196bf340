#!/usr/bin/env python3
"""Query benchmark: first pages of typical queries against 1,000,000 stored events (SQLite).

1. Build (once; reused when ``--data`` already holds the events): a store of ``--events``
   synthetic events written through the Python API (``SQLiteStore.append`` in groups of
   ``--group`` events, validated by ``validate_event`` as the HTTP path does), then the search
   index in one ``index_pending()``, then the Merkle tree and a checkpoint in one integrator
   round (else the first server would build them while round 1 is timed). Each phase is
   timed, and the sizes of the files reported.
   Distribution (as measured-ceilings.md §D): 20 types (5 % each), 10,000 actors, 5,000
   subjects, times over 30 days in arrival order (each event a few minutes of jitter around
   its slot, as producers send events soon after they happen), nested ``data`` with
   ``location.city`` (50 cities: Seattle ~2 %), a unique ``request_id``, a ``message`` of 10
   words from a 36-word vocabulary (``refund`` in ~24.5 % of events) plus, in ~0.03 % of
   events, the rare word ``quokka``, an ``amount`` and a ``currency``.
2. Measure queries (a)-(g) as the issue asks, plus (a2), (h), (i), (i2) and the numeric ranges
   (j)-(l) on ``data.amount`` (uniform over 100..999,999), ``--rounds`` times
   (default 3): start ``auditlog serve --data DIR`` on 127.0.0.1, and time each query over
   HTTP (httpx, one keep-alive connection, sequential requests): ``--warm`` unmeasured
   requests, then ``--samples`` measured ones; median and p95 per round. Then the same
   queries in-process (``parse_query`` + ``SQLiteStore.query``, the server stopped), to
   separate the HTTP cost. Other processes' CPU use is measured during each round.
3. Print the table (median of the round medians), and the SQLite query plans of the
   statements ``querysql.compile_query`` makes for each query.

Reproduce:  .venv/bin/python bench/query.py --data /tmp/auditlog-bench-1m
The data directory (~1.1 GB) is kept for reuse; delete it when done. Everything is on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import httpx

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
from ingest import (  # noqa: E402
    AUDITLOG,
    CpuWindow,
    clean_env,
    code_version,
    free_port,
    others_now,
    start_server,
    stop_server,
)

from auditlog.config import Settings  # noqa: E402
from auditlog.model import cursor as cursors  # noqa: E402
from auditlog.model import times  # noqa: E402
from auditlog.model.event import Limits, Principal, validate_event  # noqa: E402
from auditlog.model.query import parse_query  # noqa: E402
from auditlog.service.integrator import Integrator  # noqa: E402
from auditlog.service.logkey import LogKey  # noqa: E402
from auditlog.storage.base import AppendRequest, Store  # noqa: E402
from auditlog.storage.sqlite import querysql  # noqa: E402
from auditlog.storage.sqlite.store import SQLiteStore  # noqa: E402

TENANT = "bench"
DAY_US = 86_400 * 1_000_000
TYPES = [
    "account.created",
    "account.updated",
    "account.deactivated",
    "auth.login",
    "auth.logout",
    "auth.mfa_challenge",
    "invoice.billed",
    "invoice.paid",
    "invoice.voided",
    "payment.captured",
    "payment.refunded",
    "resource.created",
    "resource.updated",
    "resource.deleted",
    "role.granted",
    "role.revoked",
    "plan.upgraded",
    "plan.downgraded",
    "export.started",
    "export.finished",
]
CITIES = [
    "Seattle",
    "Paris",
    "Lagos",
    "Lima",
    "Osaka",
    "Berlin",
    "Austin",
    "Pune",
    "Oslo",
    "Quito",
    "Accra",
    "Dublin",
    "Denver",
    "Seoul",
    "Tunis",
    "Perth",
    "Cairo",
    "Delhi",
    "Hanoi",
    "Kyiv",
    "Lisbon",
    "Madrid",
    "Milan",
    "Minsk",
    "Nairobi",
    "Porto",
    "Prague",
    "Riga",
    "Rome",
    "Sofia",
    "Tokyo",
    "Vienna",
    "Warsaw",
    "Zagreb",
    "Zurich",
    "Boston",
    "Chicago",
    "Dallas",
    "Miami",
    "Phoenix",
    "Toronto",
    "Montreal",
    "Vancouver",
    "Sydney",
    "Auckland",
    "Manila",
    "Jakarta",
    "Bangkok",
    "Santiago",
    "Bogota",
]
COUNTRY = {c: f"C{i % 30:02d}" for i, c in enumerate(CITIES)}
VOCAB = [
    "refund",
    "issued",
    "customer",
    "upgrade",
    "plan",
    "quota",
    "exceeded",
    "invoice",
    "renewal",
    "trial",
    "expired",
    "password",
    "reset",
    "granted",
    "revoked",
    "role",
    "payment",
    "declined",
    "card",
    "updated",
    "address",
    "email",
    "verified",
    "session",
    "started",
    "ended",
    "export",
    "report",
    "download",
    "api",
    "token",
    "rotated",
    "webhook",
    "delivered",
    "retry",
    "limit",
]
RARE = "quokka"
RARE_P = 0.0003
SOURCES = ["billing", "identity", "storage", "console", "api-gateway"]
OUTCOMES = ["success"] * 90 + ["failure"] * 8 + ["unknown"] * 2
TIERS = ["free", "team", "pro", "enterprise"]
CURRENCIES = ["EUR", "USD", "GBP", "JPY"]
QUERY_TYPE = "auth.login"
#: The type of the server's records of reads (service/selfaudit.py).
READ_RECORD = "auditlog.log.read"


def raw_event(rng: random.Random, i: int, n: int, start_us: int) -> dict[str, Any]:
    slot = start_us + (30 * DAY_US) * i // n
    words = [VOCAB[rng.randrange(36)] for _ in range(10)]
    if rng.random() < RARE_P:
        words[rng.randrange(10)] = RARE
    city = CITIES[rng.randrange(50)]
    return {
        "type": TYPES[rng.randrange(20)],
        "time": times.format_us(slot + rng.randrange(-120_000_000, 120_000_000)),
        "actor": {"id": f"user-{rng.randrange(10_000):05d}", "type": "user"},
        "subject": {"id": f"acct-{rng.randrange(5_000):04d}", "type": "account"},
        "source": SOURCES[rng.randrange(5)],
        "outcome": OUTCOMES[rng.randrange(100)],
        "data": {
            "request_id": f"req-{i:012d}",
            "amount": rng.randrange(100, 1_000_000),
            "currency": CURRENCIES[rng.randrange(4)],
            "location": {
                "city": city,
                "country": COUNTRY[city],
                "ip": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}",
            },
            "message": " ".join(words),
            "plan": {"tier": TIERS[rng.randrange(4)], "seats": rng.randrange(1, 500)},
            "tags": ["audit", SOURCES[rng.randrange(5)]],
            "user_agent": "Mozilla/5.0 (X11; Linux x86_64) bench/1.0",
        },
    }


def db_path(data: str) -> str:
    return os.path.join(data, "auditlog.db")


def stored_events(data: str) -> int:
    path = db_path(data)
    if not os.path.exists(path):
        return 0
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT size FROM tenants WHERE name = ?", (TENANT,)).fetchone()
    except sqlite3.Error:
        return 0
    finally:
        conn.close()
    return int(row[0]) if row else 0


def sizes(data: str) -> dict[str, int]:
    out = {}
    for name in sorted(os.listdir(data)):
        out[name] = os.path.getsize(os.path.join(data, name))
    return out


async def build(data: str, n: int, group: int, seed: int) -> dict[str, Any]:
    os.makedirs(data, exist_ok=True)
    if stored_events(data):
        raise SystemExit(f"{data} holds events already but not {n}; use --rebuild or another dir")
    store = SQLiteStore(db_path(data), Settings())
    await store.open()
    rng = random.Random(seed)
    principal = Principal("key:bench", "bench")
    limits = Limits()
    now = times.now_us()
    start_us = now - 30 * DAY_US
    t0 = time.perf_counter()
    gen_s = 0.0
    pending: asyncio.Future[Any] | None = None
    try:
        for base in range(0, n, group):
            g0 = time.perf_counter()
            events = tuple(
                validate_event(raw_event(rng, i, n, start_us), principal, limits, now)
                for i in range(base, min(n, base + group))
            )
            gen_s += time.perf_counter() - g0
            if pending is not None:
                await pending  # one group commits on the writer thread while the next is made
            pending = asyncio.ensure_future(store.append([AppendRequest(TENANT, events)]))
            if base and base % (group * 40) == 0:
                print(f"  appended {base:,} events, {time.perf_counter() - t0:.0f} s", flush=True)
        if pending is not None:
            await pending
        append_s = time.perf_counter() - t0
        print(f"  appended {n:,} events in {append_s:.1f} s; indexing", flush=True)
        t1 = time.perf_counter()
        indexed = await asyncio.to_thread(store.index_pending)
        index_s = time.perf_counter() - t1
        print(f"  indexed in {index_s:.1f} s; integrating", flush=True)
        integrate_s = await integrate(store)
    finally:
        await store.close()
    if indexed != n:
        raise SystemExit(f"indexed {indexed} events, expected {n}")
    return {
        "append_s": append_s,
        "generate_validate_s": gen_s,
        "index_s": index_s,
        "integrate_s": integrate_s,
        "total_s": time.perf_counter() - t0,
    }


async def integrate(store: Store) -> float:
    """Build the Merkle tree of every stored event and sign its checkpoint, as a running
    service keeps it; the seconds it took. Otherwise the first server started on the data
    does it, while the first round's queries are timed."""
    started = time.perf_counter()
    await Integrator(store, LogKey(store)).close()  # one round: everything
    return time.perf_counter() - started


# -- the queries -------------------------------------------------------------------------


def newest_time(data: str) -> int:
    conn = sqlite3.connect(f"file:{db_path(data)}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT max(time_us) FROM events").fetchone()[0])
    finally:
        conn.close()


def thread_cpu_ns(pid: int) -> int:
    """CPU time of every thread of a process, in ns (schedstat: exact, unlike clock ticks)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as fh:
                total += int(fh.read().split()[0])
        except OSError:
            pass
    return total


def queries(data: str) -> list[tuple[str, str, list[tuple[str, str]], int]]:
    """(label, description, params, pages): pages > 1 walks that many pages with the cursor."""
    newest = newest_time(data)
    request_id = f"req-{stored_events(data) * 7 // 9:012d}"
    since = times.format_us(newest - 7 * DAY_US)
    until = times.format_us(newest)
    old_since = times.format_us(newest - 21 * DAY_US)
    old_until = times.format_us(newest - 14 * DAY_US)
    hour_until = times.format_us(newest - 21 * DAY_US + 3600 * 1_000_000)
    a = [("type", QUERY_TYPE), ("since", since), ("until", until), ("limit", "100")]
    return [
        ("a", f"type={QUERY_TYPE} & last 7 days, first page", a, 1),
        (
            "a2",
            f"type={QUERY_TYPE} & 7 days ending 14 days ago, first page",
            [("type", QUERY_TYPE), ("since", old_since), ("until", old_until), ("limit", "100")],
            1,
        ),
        ("b", "data.location.city=Seattle, first page", [("data.location.city", "Seattle")], 1),
        ("c", f"data.request_id={request_id} (1 match)", [("data.request_id", request_id)], 1),
        ("d", "q=refund (~24 % of events), first page", [("q", "refund")], 1),
        ("e", f"q={RARE} (~0.03 %)", [("q", RARE)], 1),
        (
            "f",
            f"q=refund & type={QUERY_TYPE}, first page",
            [("q", "refund"), ("type", QUERY_TYPE)],
            1,
        ),
        ("g", "cursor walk: 5 pages of (a)", a, 5),
        ("h", "no filter (the newest events), first page", [], 1),
        ("i", "last 7 days, no type, first page", [("since", since)], 1),
        (
            "i2",
            "q=refund & one hour 21 days ago, first page",
            [("q", "refund"), ("since", old_since), ("until", hour_until), ("limit", "100")],
            1,
        ),
        ("j", "data.amount[gt]=999000 (~0.1 %), first page", [("data.amount[gt]", "999000")], 1),
        (
            "k",
            "data.amount[gte]=500000 & [lt]=500500 (~0.05 %), first page",
            [("data.amount[gte]", "500000"), ("data.amount[lt]", "500500")],
            1,
        ),
        ("l", "data.amount[gte]=500000 (~50 %), first page", [("data.amount[gte]", "500000")], 1),
    ]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


class Rows(NamedTuple):
    """What a query's pages held: events, and of them the server's records of reads."""

    events: int
    reads: int

    @staticmethod
    def of(events: list[Any]) -> Rows:
        """``events`` as answered over HTTP, or their bodies as the store gives them."""
        found = [json.loads(e) if isinstance(e, bytes) else e for e in events]
        return Rows(len(found), sum(1 for e in found if e.get("type") == READ_RECORD))

    def agrees(self, other: Rows) -> bool:
        """The same rows, or rows that differ only by read records.

        The server records every read in the log (``audit_reads``) after computing its
        answer, and a record holds the query's parameters: ``q=quokka``'s records match
        ``q=quokka``. So a query over HTTP does not see its own record, and the in-process
        run after the HTTP round sees the records of every HTTP request of the round,
        the last one's too: where the first page is not full, it holds one more row.
        """
        return self.events == other.events or (
            self.events - self.reads == other.events - other.reads
        )


def timed_samples(fn: Any, warm: int, samples: int, budget_s: float) -> tuple[list[float], Any]:
    rows = None
    for _ in range(warm):
        rows = fn()
    out: list[float] = []
    started = time.perf_counter()
    while len(out) < samples and (len(out) < 5 or time.perf_counter() - started < budget_s):
        t = time.perf_counter()
        rows = fn()
        out.append((time.perf_counter() - t) * 1000)
    return out, rows


async def async_timed_samples(
    fn: Any, warm: int, samples: int, budget_s: float
) -> tuple[list[float], Any]:
    rows = None
    for _ in range(warm):
        rows = await fn()
    out: list[float] = []
    started = time.perf_counter()
    while len(out) < samples and (len(out) < 5 or time.perf_counter() - started < budget_s):
        t = time.perf_counter()
        rows = await fn()
        out.append((time.perf_counter() - t) * 1000)
    return out, rows


def http_round(data: str, key: str, qs: list[Any], args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    server = start_server(data, port, ready="/readyz", timeout=30)
    results: dict[str, Any] = {}
    try:
        headers = {"Authorization": f"Bearer {key}"}
        window = CpuWindow([server.pid])
        window.begin()
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30
        ) as client:
            for label, _, params, pages in qs:

                def run(
                    params: list[tuple[str, str]] = params, pages: int = pages
                ) -> list[dict[str, Any]]:
                    got: list[dict[str, Any]] = []
                    extra: list[tuple[str, str]] = []
                    for _ in range(pages):
                        r = client.get("/v1/events", params=tuple(params + extra))
                        if r.status_code != 200:
                            raise RuntimeError(f"{r.status_code} {r.text[:300]}")
                        doc = r.json()
                        got += doc["events"]
                        if not doc["next_cursor"]:
                            break
                        extra = [("cursor", doc["next_cursor"])]
                    return got

                for _ in range(args.warm):
                    run()
                cpu0 = thread_cpu_ns(server.pid)
                ms, rows = timed_samples(run, 0, args.samples, args.budget)
                cpu_ms = (thread_cpu_ns(server.pid) - cpu0) / 1e6 / len(ms)
                results[label] = {"ms": ms, "rows": Rows.of(rows), "server_cpu_ms": cpu_ms}
        results["_round"] = window.end(0.0)
    finally:
        stop_server(server)
    return results


async def inprocess_round(data: str, qs: list[Any], args: argparse.Namespace) -> dict[str, Any]:
    store = SQLiteStore(db_path(data), Settings())
    await store.open()
    results: dict[str, Any] = {}
    window = CpuWindow([])
    window.begin()
    try:
        for label, _, params, pages in qs:

            async def run_async(
                params: list[tuple[str, str]] = params, pages: int = pages
            ) -> list[bytes]:
                query, _ = parse_query(params)
                got: list[bytes] = []
                for _ in range(pages):
                    page = await store.query(TENANT, query)
                    got += page.bodies
                    if not (page.more and page.last_seq is not None):
                        break
                    text = cursors.encode(query, page.last_seq)
                    query = cursors.apply(parse_query(params)[0], text)
                return got

            ms, rows = await async_timed_samples(run_async, args.warm, args.samples, args.budget)
            results[label] = {"ms": ms, "rows": Rows.of(rows)}
    finally:
        await store.close()
    results["_round"] = window.end(0.0)
    return results


def plans(data: str, qs: list[Any]) -> dict[str, list[str]]:
    conn = sqlite3.connect(f"file:{db_path(data)}?mode=ro", uri=True)
    conn.execute("ATTACH DATABASE ? AS t", (db_path(data) + "-terms",))
    conn.create_function("al_match", 2, lambda body, spec: 1, deterministic=True)
    tenant_id, upto = conn.execute(
        "SELECT n.tenant_id, coalesce(p.next_seq, 0) FROM tenants AS n"
        " LEFT JOIN t.progress AS p ON p.tenant_id = n.tenant_id WHERE n.name = ?",
        (TENANT,),
    ).fetchone()
    out: dict[str, list[str]] = {}
    for label, _, params, pages in qs:
        if pages > 1:
            continue
        query, _ = parse_query(params)
        if hasattr(querysql, "NUMBER_CANDIDATES"):  # path flags as if the path held numbers only
            compiled = querysql.compile_query(TENANT, tenant_id, query, upto, frozenset())
        else:  # a snapshot of the code from before the numbers index
            compiled = querysql.compile_query(TENANT, tenant_id, query, upto)
        lines = []
        for sql, sql_params in compiled.statements:
            lines.append("SQL: " + sql)
            rows = conn.execute("EXPLAIN QUERY PLAN " + sql, sql_params).fetchall()
            lines.append("  plan: " + " | ".join(r[3] for r in rows))
        narrows = getattr(compiled, "narrows", None)
        if narrows is None:
            narrows = [compiled.narrow] if getattr(compiled, "narrow", None) else []
        for narrow in narrows:
            kind = getattr(narrow, "kind", "time")
            limit = querysql.NARROW_EVENTS if kind == "time" else querysql.NUMBER_CANDIDATES
            sql, sql_params = narrow.probe
            count = conn.execute(sql, sql_params).fetchone()[0]
            more = "+" if count >= limit else ""
            what = "events in the time range" if kind == "time" else "numbers in the range"
            lines.append(
                f"{kind} probe: {count}{more} {what}; with fewer than {limit} the store runs"
                " instead:"
            )
            for sql, sql_params in narrow.plan.statements:
                rows = conn.execute("EXPLAIN QUERY PLAN " + sql, sql_params).fetchall()
                lines.append("  plan: " + " | ".join(r[3] for r in rows))
        out[label] = lines
    conn.close()
    return out


def stats(ms: list[float]) -> tuple[float, float]:
    return statistics.median(ms), percentile(ms, 95)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        default="/tmp/auditlog-bench-1m",
        help="data directory (kept for reuse; outside the repository)",
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--group", type=int, default=5000, help="events per append (build)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--rebuild", action="store_true", help="delete --data and build again")
    parser.add_argument("--build-only", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=50, help="measured requests per query")
    parser.add_argument("--warm", type=int, default=5, help="unmeasured requests per query first")
    parser.add_argument(
        "--budget",
        type=float,
        default=20.0,
        help="stop sampling a query after this many seconds (>= 5 samples)",
    )
    parser.add_argument(
        "--max-noise",
        type=float,
        default=8.0,
        help="repeat a round where others used more than this %% of a core",
    )
    parser.add_argument("--max-attempts", type=int, default=6)
    parser.add_argument("--json", help="also write the raw samples to this file")
    args = parser.parse_args()
    data = os.path.abspath(args.data)
    if data.startswith(str(ROOT) + os.sep):
        parser.error("keep --data outside the repository")

    print(f"# auditlog query benchmark, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, data {data}")
    if args.rebuild and os.path.isdir(data):
        for name in os.listdir(data):
            os.remove(os.path.join(data, name))
    have = stored_events(data)
    build_info_path = os.path.join(data, "bench-build.json")
    built = json.loads(Path(build_info_path).read_text()) if os.path.exists(build_info_path) else {}
    if have > args.events and built.get("events") == args.events:
        # Earlier runs' queries were recorded in the log (audit_reads): the newest events.
        print(f"reusing {args.events:,} events in {data}, and {have - args.events:,} read records")
    elif have != args.events:
        print(f"building {args.events:,} events in {data} (group {args.group})", flush=True)
        window = CpuWindow([])
        window.begin()
        info = asyncio.run(build(data, args.events, args.group, args.seed))
        info["others_pct"] = window.end(0.0)["others_pct"]
        info["events"] = args.events
        info["code"] = code_version()
        info["sizes"] = sizes(data)
        Path(build_info_path).write_text(json.dumps(info, indent=1))
    else:
        print(f"reusing {have:,} events in {data}")
    info = json.loads(Path(build_info_path).read_text()) if os.path.exists(build_info_path) else {}
    if info:
        print(
            f"build: append (validate + commit) {info['append_s']:.1f} s, of which generating and "
            f"validating {info['generate_validate_s']:.1f} s; index_pending {info['index_s']:.1f} s; "
            f"integrator {info.get('integrate_s', float('nan')):.1f} s; total {info['total_s']:.1f} s; other processes used {info.get('others_pct', float('nan')):.0f}% "
            f"of a core meanwhile; built by code {info.get('code', 'unknown')}"
        )
    for name, size in sizes(data).items():
        print(f"  {name}: {size / 2**20:,.1f} MiB")
    if args.build_only:
        return 0

    key_path = os.path.join(data, "bench-key.txt")
    if not os.path.exists(key_path):
        out = subprocess.run(
            [
                AUDITLOG,
                "keys",
                "create",
                "--data",
                data,
                "--tenant",
                TENANT,
                "--scopes",
                "events:read",
                "--name",
                "bench-reader",
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
            env=clean_env(),
        ).stdout
        Path(key_path).write_text(out.strip().splitlines()[-1])
    key = Path(key_path).read_text().strip()
    qs = queries(data)
    if info.get("code", "").split("+")[0] != code_version().split("+")[0]:
        print(
            f"WARNING: the data set was built by code {info.get('code', 'unknown')}, the server is "
            f"{code_version()}; if the search index format changed, use --rebuild"
        )

    http_rounds: list[dict[str, Any]] = []
    inproc_rounds: list[dict[str, Any]] = []
    attempts = 0
    while len(http_rounds) < args.rounds and attempts < args.max_attempts:
        attempts += 1
        waited = 0
        while (noise := others_now()) > args.max_noise and waited < 120:
            print(f"  (machine busy: others use {noise:.0f}% of a core; waiting)", flush=True)
            time.sleep(4)
            waited += 5
        code = code_version()
        h = http_round(data, key, qs, args)
        p = asyncio.run(inprocess_round(data, qs, args))
        h["_code"] = code
        for label, *_ in qs:
            hr, pr = Rows(*h[label]["rows"]), Rows(*p[label]["rows"])
            if not hr.agrees(pr):
                raise SystemExit(
                    f"({label}): HTTP gave {hr.events} rows ({hr.reads} read records), "
                    f"in-process {pr.events} ({pr.reads} read records)"
                )
        if h["c"]["rows"][0] != 1 or h["b"]["rows"][0] == 0:
            raise SystemExit(
                "the search index does not answer as expected (did its format change "
                "since the build?): run again with --rebuild"
            )
        worst = max(h["_round"]["others_pct"], p["_round"]["others_pct"])
        status = "kept" if worst <= args.max_noise else "discarded (noise)"
        print(
            f"round {attempts}: others used {h['_round']['others_pct']:.1f}% of a core during the HTTP"
            f" part ({h['_round']['seconds']:.0f} s), {p['_round']['others_pct']:.1f}% during the"
            f" in-process part ({p['_round']['seconds']:.0f} s), code {code}: {status}"
        )
        for label, *_ in qs:
            hm, hp = stats(h[label]["ms"])
            pm, pp = stats(p[label]["ms"])
            print(
                f"  {label}: http {hm:.2f} / p95 {hp:.2f} ms, in-process {pm:.2f} / p95 {pp:.2f} ms,"
                f" rows {h[label]['rows'][0]}, server CPU {h[label]['server_cpu_ms']:.2f} ms/query",
                flush=True,
            )
        if worst <= args.max_noise or attempts >= args.max_attempts:
            http_rounds.append(h)
            inproc_rounds.append(p)

    print()
    print(
        "| query | rows | HTTP median ms | HTTP p95 ms | HTTP round medians | in-process median ms "
        "| in-process p95 ms | server CPU ms/query |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for label, desc, _, _ in qs:
        hmeds = [stats(r[label]["ms"])[0] for r in http_rounds]
        hp95 = [stats(r[label]["ms"])[1] for r in http_rounds]
        pmeds = [stats(r[label]["ms"])[0] for r in inproc_rounds]
        pp95 = [stats(r[label]["ms"])[1] for r in inproc_rounds]
        cpu = statistics.median(r[label]["server_cpu_ms"] for r in http_rounds)
        print(
            f"| ({label}) {desc} | {http_rounds[0][label]['rows'][0]} | **{statistics.median(hmeds):.2f}** | "
            f"{statistics.median(hp95):.2f} | {', '.join(f'{m:.2f}' for m in hmeds)} | "
            f"{statistics.median(pmeds):.2f} | {statistics.median(pp95):.2f} | {cpu:.2f} |"
        )
    round_noise = [
        max(h["_round"]["others_pct"], p["_round"]["others_pct"])
        for h, p in zip(http_rounds, inproc_rounds, strict=True)
    ]
    print(
        f"\nOther processes used {', '.join(f'{n:.1f}' for n in round_noise)} % of a core in the kept rounds;"
        f" code {', '.join(sorted({h['_code'] for h in http_rounds}))}."
    )
    print()
    print("Query plans (EXPLAIN QUERY PLAN of the SQL compile_query makes):")
    for label, lines in plans(data, qs).items():
        print(f"({label})")
        for line in lines:
            print("  " + line)
    if args.json:
        Path(args.json).write_text(
            json.dumps({"http": http_rounds, "inproc": inproc_rounds, "build": info}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

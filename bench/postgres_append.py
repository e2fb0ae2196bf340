#!/usr/bin/env python3
"""PostgreSQL's CPU and WAL per event of the group commit alone, at a fixed group size.

``bench/postgres.py --part ingest`` measures the whole service, where the size of each group
commit follows the load (and so does every cost per event), and others' work on a shared
machine moves both. This drives ``PostgresStore.append`` directly: ``--tasks`` appenders at
once, each committing ``--groups`` groups of ``--group`` single-event requests (the events of
``bench/post_event.lua``) to one tenant, on a fresh database (``--db``). Measured: the CPU
(user + system, from /proc) of the database's own backends per event, and its WAL per event
from the log's records (``pg_walinspect``), by relation. Then, with ``--index``, the search
indexer's backend indexing those events in batches of ``--index-batch``, after the statements
of ``--index-sql`` (to compare storage parameters of the search indexes, say).

Reproduce:  .venv/bin/python bench/postgres_append.py --runs 3
To compare code versions, run each from a snapshot, alternating:
``git archive REV src | tar -x -C /tmp/snap`` and ``PYTHONPATH=/tmp/snap/src``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from pathlib import Path

import psycopg

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from ingest import code_version, proc_stat  # noqa: E402

from auditlog.config import Settings  # noqa: E402
from auditlog.model import times  # noqa: E402
from auditlog.model.event import Limits, Principal, validate_event  # noqa: E402
from auditlog.storage.base import AppendRequest  # noqa: E402
from auditlog.storage.postgres.indexer import Indexer  # noqa: E402
from auditlog.storage.postgres.store import PostgresStore  # noqa: E402
from postgres import _WAL_BY_RELATION, db_backends, remake_db  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
TYPES = ["account.created", "account.deactivated", "invoice.billed", "resource.updated"]
CITIES = ["Seattle", "Paris", "Lagos", "Lima", "Osaka", "Berlin", "Austin", "Pune"]
WORDS = [
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
]


def raw_event(rng: random.Random, i: int) -> dict[str, object]:
    """An event like bench/post_event.lua's (about 500 bytes stored)."""
    return {
        "type": rng.choice(TYPES),
        "actor": {"id": f"user-{rng.randrange(10000)}", "type": "user"},
        "subject": {"id": f"acct-{rng.randrange(5000)}", "type": "account"},
        "source": "billing",
        "outcome": "success",
        "data": {
            "amount": rng.randrange(100000),
            "currency": "EUR",
            "location": {"city": rng.choice(CITIES), "country": "XX"},
            "request_id": f"req-{rng.randrange(10**9)}-{i}",
            "message": " ".join(rng.choice(WORDS) for _ in range(8)),
            "tags": ["a", "b"],
            "plan": {"tier": "pro", "seats": rng.randrange(50)},
        },
    }


def ticks(pids: dict[int, str]) -> dict[int, int]:
    return {pid: (proc_stat(pid) or (0, 0, 0))[0] for pid in pids}


async def appenders(store: PostgresStore, args: argparse.Namespace, groups: int) -> None:
    principal, limits = Principal("key:bench", "bench"), Limits()

    async def one(task: int) -> None:
        rng = random.Random(task)
        for g in range(groups):
            now = times.now_us()
            requests = [
                AppendRequest("bench", (validate_event(raw_event(rng, g), principal, limits, now),))
                for _ in range(args.group)
            ]
            await store.append(requests)

    await asyncio.gather(*(one(t) for t in range(args.tasks)))


async def run(args: argparse.Namespace) -> dict[str, float]:
    url = remake_db(args.admin_url, args.db)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
    settings = Settings()
    store = PostgresStore(url, settings)
    await store.open()
    watch = psycopg.connect(url, autocommit=True)
    try:
        await appenders(store, args, max(1, args.groups // 10))  # warm: pool, plans, pages
        backends = db_backends(watch)
        start = ticks(backends)
        lsn0 = watch.execute("SELECT pg_current_wal_lsn()").fetchone()
        t0 = time.perf_counter()
        await appenders(store, args, args.groups)
        seconds = time.perf_counter() - t0
        backends |= db_backends(watch)
        used = {p: t - start.get(p, 0) for p, t in ticks(backends).items()}
        lsn1 = watch.execute("SELECT pg_current_wal_lsn()").fetchone()
        events = args.tasks * args.groups * args.group
        assert lsn0 is not None
        assert lsn1 is not None
        wal = watch.execute(_WAL_BY_RELATION, {"start": lsn0[0], "end": lsn1[0]}).fetchall()
    finally:
        await store.close()
    out = {
        "events_per_s": events / seconds,
        "pg_us": 1e6 * sum(used.values()) / TICK / events,
        "wal_bytes": sum(int(r[2] or 0) for r in wal) / events,
    }
    print(
        f"  append: {events:,} events in groups of {args.group}, {out['events_per_s']:,.0f}/s;"
        f" PostgreSQL {out['pg_us']:.1f} µs/event; WAL {out['wal_bytes']:,.0f} bytes/event: "
        + ", ".join(f"{r[0]} {int(r[2] or 0) / events:,.0f}" for r in wal[:10]),
        flush=True,
    )
    if args.index:
        with psycopg.connect(url, autocommit=True) as conn:
            for statement in args.index_sql:  # e.g. storage parameters of the GIN indexes
                conn.execute(statement)
            conn.execute("CHECKPOINT")  # every variant starts with the same full-page writes
        indexer = Indexer(url)
        pid = int(indexer._conn.execute("SELECT pg_backend_pid()").fetchone()[0])  # type: ignore[index]
        before = (proc_stat(pid) or (0, 0, 0))[0]
        done = 0
        while n := indexer.index_batch(args.index_batch):
            done += n
        out["index_us"] = 1e6 * ((proc_stat(pid) or (0, 0, 0))[0] - before) / TICK / max(done, 1)
        indexer.close()
        print(f"  indexer: {done:,} events, PostgreSQL {out['index_us']:.1f} µs/event", flush=True)
    watch.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--db", default="auditlog_bench_append")
    parser.add_argument("--group", type=int, default=8, help="single-event requests per group")
    parser.add_argument("--tasks", type=int, default=4, help="appenders at once")
    parser.add_argument("--groups", type=int, default=500, help="groups per appender")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--index", action="store_true", help="then index the events")
    parser.add_argument("--index-batch", type=int, default=250)
    parser.add_argument(
        "--index-sql",
        action="append",
        default=[],
        help="a statement to run before indexing (repeatable), e.g. "
        "'ALTER INDEX event_search_words SET (fastupdate = off)'",
    )
    args = parser.parse_args()
    print(f"code {code_version()}, {time.strftime('%Y-%m-%d %H:%M')}", flush=True)
    results = [asyncio.run(run(args)) for _ in range(args.runs)]
    for key in results[0]:
        values = [r[key] for r in results]
        print(
            f"{key}: median {statistics.median(values):,.1f} ({', '.join(f'{v:,.1f}' for v in values)})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The Python client (clients/python): what ``log`` costs the producer, and how many events
reach one local server through it.

Scenarios (each run in a fresh process state; ``--runs`` runs each, the median reported):

* ``enqueue``: one thread calls ``Client.log`` ``--events`` times (a typical event: type,
  actor, subject, outcome, three data fields) with the sender idle (a batch larger than the
  run, a long flush interval): events/s into the queue, and the per-call latency (p50, p99,
  p99.9, each call timed with ``perf_counter_ns``, in a second pass).
* ``enqueue-spool``: the same with ``spool_dir=``: every ``log`` commits to SQLite first.
* ``deliver``: a fresh ``auditlog serve`` (default settings, SQLite, ``synchronous=FULL``); one
  thread logs ``--events`` events as fast as ``log`` takes them (``on_full="block"``), then
  ``flush``: events/s stored (from the first ``log`` to the end of the flush), checked
  against the server's database, and the latency of each ``log`` while the sender is busy.
  ``--in-flight N`` lets the client send N batches at once (its ``max_in_flight``).
* ``raw``: no client: the same events, encoded beforehand, posted by plain httpx in batches
  of ``--batch-events`` (500), one request at a time as the sender sends them: the bound the
  sender works under on this machine.
* ``paced``: the same server kind; one thread logs ``--rate`` events/s for ``--seconds`` s
  (a service under load, not a flood) while the sender sends: the latency of ``log``.

Noise: before each run the script waits for a quiet machine (``harness.wait_quiet``) and
records what other processes used during the run; it does not throw runs away.

Reproduce:  .venv/bin/python bench/client.py            (~2 min on a quiet machine)
Everything goes to 127.0.0.1; every run is bounded and stops by itself.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from auditlog_client import Client
from harness import reproduce, wait_quiet
from ingest import (
    CpuWindow,
    code_version,
    create_key,
    free_port,
    start_server,
    stop_server,
    stored_counts,
)


def event_args(i: int) -> tuple[str, dict[str, Any]]:
    return "invoice.paid", {
        "actor": {"id": f"user-{i % 1000}", "type": "user"},
        "subject": {"id": f"inv-{i}", "type": "invoice"},
        "outcome": "success",
        "data": {"amount": i % 500, "currency": "EUR", "city": "Seattle"},
    }


def percentiles(samples_ns: list[int]) -> dict[str, float]:
    ordered = sorted(samples_ns)
    at = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000  # noqa: E731
    return {
        "p50_us": at(0.5),
        "p99_us": at(0.99),
        "p999_us": at(0.999),
        "max_us": ordered[-1] / 1000,
    }


def timed_calls(log: Callable[..., str], count: int, offset: int = 0) -> list[int]:
    samples = [0] * count
    clock = time.perf_counter_ns
    for i in range(count):
        kind, fields = event_args(offset + i)
        start = clock()
        log(kind, **fields)
        samples[i] = clock() - start
    return samples


def enqueue(args: argparse.Namespace, spool: bool) -> dict[str, float]:
    count = args.events if not spool else args.events // 4
    with tempfile.TemporaryDirectory() as tmp:
        client = Client(
            "http://127.0.0.1:9",  # never reached: the sender stays idle
            "alk_unused",
            batch_events=10 * count,
            batch_bytes=1 << 40,
            flush_interval=3600,
            max_queue_events=10 * count,
            max_queue_bytes=1 << 40,
            spool_dir=Path(tmp) / "spool" if spool else None,
        )
        prepared = [event_args(i) for i in range(count)]
        log = client.log
        window = CpuWindow([])
        window.begin()
        start = time.perf_counter()
        for kind, fields in prepared:
            log(kind, **fields)
        elapsed = time.perf_counter() - start
        noise = window.end(0.0)["others_pct"]
        samples = timed_calls(log, count, count)
        client.close(timeout=0)
    return {
        "events": count,
        "events_per_s": count / elapsed,
        "mean_us": elapsed / count * 1e6,
        **percentiles(samples),
        "others_pct": noise,
    }


def deliver(args: argparse.Namespace, paced: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        data = str(Path(tmp) / "data")
        token = create_key(data, "bench", "events:write")
        before, _ = stored_counts(data)  # the record of the key's creation
        port = free_port()
        server = start_server(data, port)
        try:
            client = Client(
                f"http://127.0.0.1:{port}",
                token,
                on_full="block",
                block_timeout=60,
                max_in_flight=args.in_flight,
                **({"batch_events": args.batch_events} if args.batch_events else {}),
            )
            count = int(args.rate * args.seconds) if paced else args.events
            samples = [0] * count
            clock = time.perf_counter_ns
            window = CpuWindow([server.pid])
            window.begin()
            start = time.perf_counter()
            interval = 1 / args.rate if paced else 0.0
            for i in range(count):
                if paced:
                    due = start + i * interval
                    while (now := time.perf_counter()) < due:
                        time.sleep(min(due - now, 0.001))
                kind, fields = event_args(i)
                t0 = clock()
                client.log(kind, **fields)
                samples[i] = clock() - t0
            logged = time.perf_counter() - start
            assert client.flush(600), "not flushed within 600 s"
            elapsed = time.perf_counter() - start
            noise = window.end(0.0)["others_pct"]
            stats = client.stats()
            client.close()
        finally:
            stop_server(server)
        stored, _ = stored_counts(data)
        stored -= before
    if stored != count or stats.sent != count:
        raise RuntimeError(f"{count} logged, {stats.sent} acknowledged, {stored} stored")
    return {
        "events": count,
        "log_s": logged,
        "stored_per_s": count / elapsed,
        "retried": stats.retried,
        **percentiles(samples),
        "others_pct": noise,
    }


def raw(args: argparse.Namespace) -> dict[str, float]:
    """The bound the sender works under: the same events, encoded beforehand, posted by plain
    httpx one batch after another (one request in flight, as the sender does)."""
    from auditlog_client import envelope

    size = args.batch_events or 500
    with tempfile.TemporaryDirectory() as tmp:
        data = str(Path(tmp) / "data")
        token = create_key(data, "bench", "events:write")
        port = free_port()
        server = start_server(data, port)
        try:
            lines = [
                envelope.encode(envelope.build(k, **f))
                for k, f in map(event_args, range(args.events))
            ]
            bodies = [b"\n".join(lines[i : i + size]) + b"\n" for i in range(0, len(lines), size)]
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"}
            window = CpuWindow([server.pid])
            window.begin()
            with httpx.Client(
                base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60
            ) as http:
                start = time.perf_counter()
                for body in bodies:
                    assert http.post("/v1/events", content=body).status_code == 201
                elapsed = time.perf_counter() - start
            noise = window.end(0.0)["others_pct"]
        finally:
            stop_server(server)
    return {"events": args.events, "stored_per_s": args.events / elapsed, "others_pct": noise}


SCENARIOS: dict[str, Callable[[argparse.Namespace], dict[str, float]]] = {
    "enqueue": lambda a: enqueue(a, spool=False),
    "enqueue-spool": lambda a: enqueue(a, spool=True),
    "deliver": lambda a: deliver(a, paced=False),
    "paced": lambda a: deliver(a, paced=True),
    "raw": raw,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rate", type=float, default=5000.0, help="events/s of 'paced'")
    parser.add_argument("--seconds", type=float, default=6.0, help="length of 'paced'")
    parser.add_argument("--batch-events", type=int, default=None, help="the client's batch_events")
    parser.add_argument("--in-flight", type=int, default=1, help="the client's max_in_flight")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quiet-wait", type=float, default=60.0)
    parser.add_argument("--max-noise", type=float, default=8.0)
    args = parser.parse_args()
    print(f"code {code_version()}; {reproduce('client.py', sys.argv[1:])}")
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    for name in names:
        results = []
        for run in range(1, args.runs + 1):
            wait_quiet(args.max_noise, args.quiet_wait)
            result = SCENARIOS[name](args)
            results.append(result)
            shown = ", ".join(f"{k}={v:,.1f}" for k, v in result.items())
            print(f"{name} run {run}: {shown}", flush=True)
        keys = results[0].keys()
        summary = {k: statistics.median(r[k] for r in results) for k in keys}
        print(f"{name} MEDIAN: " + ", ".join(f"{k}={v:,.1f}" for k, v in summary.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

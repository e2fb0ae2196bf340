#!/usr/bin/env python3
"""Overload: flood a real ``auditlog serve`` far beyond capacity and watch it refuse cleanly.

Scenarios (each on a fresh data directory, key and server; default settings unless said):

* ``queue``: ``--connections`` (256) keep-alive connections each POST a 1,000-event JSON array
  (~120 KB) one after another for ``--seconds`` s: up to 256,000 events in flight against a
  group-commit queue of 20,000 (``queue_max_events``) and ~30,000 events/s of commits.
  Expected: 201 for what fits, 503 + Retry-After for the rest.
* ``rate``: the same number of connections each POST one event after another, to a server
  whose key may write 1,000 requests/s (``--write-rate 1000 --write-burst 1000``).
  Expected: 201 up to the rate, 429 + Retry-After beyond it.
* ``big``: 64 connections each POST a 10,000-event batch (the most events allowed, ~1.2 MB):
  the memory a flood of the largest batches takes.
* ``huge``: 64 connections each POST a 10,000-event batch of ~1.6 KB events (15.5 MiB, near
  ``max_body_bytes``): up to 1 GiB of bodies at once against the 256 MiB that
  ``max_bodies_bytes`` lets the server hold; what is past it is refused with 503 unread.

For each: the answers by status, with p50/p99/max latency per status (how fast a refusal comes
back), refusals without Retry-After (must be 0), connection errors, acknowledged events/s,
the server's peak RSS (VmHWM from /proc/PID/status, and its indexer child's), and after the
flood: the status and latency of the first ordinary single-event write, and the time until a
write is stored (201).

Reproduce:  .venv/bin/python bench/overload.py                  (all three, ~1 min)
            .venv/bin/python bench/overload.py --scenario queue --connections 512 --seconds 20
            .venv/bin/python bench/overload.py --scenario huge --serve-flag=--max-bodies-bytes=4294967296
Everything goes to 127.0.0.1; every flood is bounded in time and count and stops by itself;
the script stops only the servers it started, by their pid.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from ingest import code_version  # noqa: E402

from live_server import Server, Storage, child_pids, create_key, peak_rss_kib  # noqa: E402
from reliability.flood import (  # noqa: E402
    FloodResult,
    batch_body,
    flood,
    percentile,
    post_request,
    single_body,
)

#: scenario: (events per request, connections or None for --connections, serve flags, bytes
#: of padding per event)
SCENARIOS: dict[str, tuple[int, int | None, tuple[str, ...], int]] = {
    "queue": (1000, None, (), 0),
    "rate": (1, None, ("--write-rate", "1000", "--write-burst", "1000"), 0),
    "big": (10_000, 64, (), 0),
    "huge": (10_000, 64, (), 1500),
}
RECOVERY_LIMIT = 30.0


class RssSampler:
    """Samples the server's current RSS every 100 ms while the flood runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            try:
                for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        self.samples.append(int(line.split()[1]))
            except OSError:
                return

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def recovery(url: str, token: str) -> dict[str, Any]:
    """The first ordinary write after the flood, and how long until one is stored."""
    headers = {"Authorization": f"Bearer {token}"}
    started = time.monotonic()
    first: dict[str, Any] = {}
    with httpx.Client(base_url=url, headers=headers, timeout=RECOVERY_LIMIT) as client:
        for attempt in range(10_000):
            sent = time.perf_counter()
            response = client.post(
                "/v1/events", json={"type": "after.flood", "data": {"n": attempt}}
            )
            latency = time.perf_counter() - sent
            if not first:
                first = {"status": response.status_code, "latency_ms": latency * 1000}
            if response.status_code == 201:
                return {**first, "stored_after_ms": (time.monotonic() - started) * 1000}
            if time.monotonic() - started > RECOVERY_LIMIT:
                break
            time.sleep(0.05)
    return {**first, "stored_after_ms": None}


def ms(values: list[float], fraction: float) -> str:
    return f"{percentile(values, fraction) * 1000:.1f}"


def one_scenario(name: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    events, conns, flags, pad = SCENARIOS[name]
    flags = (*flags, *args.serve_flag)
    connections = conns or args.connections
    data = workdir / name
    storage = Storage.sqlite(data)
    token = create_key(storage)
    server = Server(storage, workdir / f"{name}.log", *flags)
    try:
        server.wait_ready()
        body = batch_body(events, pad=pad) if events > 1 else single_body()
        request = post_request(server.port, token, body)
        with RssSampler(server.process.pid) as rss:
            result: FloodResult = flood(
                server.port,
                request,
                connections,
                args.seconds,
                args.max_requests,
                events_per_request=events,
            )
        after = recovery(server.url, token)
        peak = server.peak_rss_kib()
        indexer = [peak_rss_kib(pid) for pid in child_pids(server.process.pid)]
        alive = server.process.poll() is None
        returncode = server.terminate()
        log = server.log()
    finally:
        server.stop()
    acknowledged = sum(n for s, n in result.statuses.items() if 200 <= s < 300) * events
    out: dict[str, Any] = {
        "scenario": name,
        "serve_flags": list(flags),
        "connections": connections,
        "events_per_request": events,
        "request_bytes": len(request),
        "seconds": round(result.seconds, 1),
        "requests": result.requests,
        "statuses": {str(k): v for k, v in sorted(result.statuses.items())},
        "latency_ms": {
            str(status): {
                "p50": ms(values, 0.5),
                "p99": ms(values, 0.99),
                "max": ms(values, 1.0),
            }
            for status, values in sorted(result.latencies.items())
        },
        "refusals_without_retry_after": result.refusals_without_retry_after,
        "connection_errors": dict(result.connection_errors),
        "acknowledged_events_per_s": round(acknowledged / result.seconds) if result.seconds else 0,
        "server_peak_rss_mib": round(peak / 1024),
        "server_rss_median_mib": round(sorted(rss.samples)[len(rss.samples) // 2] / 1024)
        if rss.samples
        else None,
        "indexer_peak_rss_mib": [round(k / 1024) for k in indexer],
        "alive_after_flood": alive,
        "after_flood": after,
        "sigterm_exit_status": returncode,
        "tracebacks_in_log": log.count("Traceback"),
    }
    return out


def show(r: dict[str, Any]) -> None:
    print(
        f"\n## {r['scenario']}: {r['connections']} connections x {r['events_per_request']}-event "
        f"requests ({r['request_bytes']} bytes), {r['seconds']} s"
        + (f"; server flags {' '.join(r['serve_flags'])}" if r["serve_flags"] else "")
    )
    print(f"requests answered: {r['requests']}; by status: {r['statuses']}")
    for status, lat in r["latency_ms"].items():
        print(f"  {status}: p50 {lat['p50']} ms, p99 {lat['p99']} ms, max {lat['max']} ms")
    print(f"refusals without Retry-After: {r['refusals_without_retry_after']}")
    print(f"connection errors: {r['connection_errors'] or 0}")
    print(f"acknowledged events/s during the flood: {r['acknowledged_events_per_s']}")
    print(
        f"server peak RSS (VmHWM): {r['server_peak_rss_mib']} MiB (median during the flood "
        f"{r['server_rss_median_mib']} MiB); indexer: {r['indexer_peak_rss_mib']} MiB"
    )
    a = r["after_flood"]
    print(
        f"after the flood: first write {a.get('status')} in {a.get('latency_ms', 0):.1f} ms; "
        f"stored after {a['stored_after_ms'] if a['stored_after_ms'] is None else round(a['stored_after_ms'], 1)} ms"
    )
    print(
        f"server alive after the flood: {r['alive_after_flood']}; SIGTERM exit status "
        f"{r['sigterm_exit_status']}; tracebacks in its log: {r['tracebacks_in_log']}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    parser.add_argument("--connections", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument(
        "--max-requests", type=int, default=100_000, help="per connection (default 100000)"
    )
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument(
        "--serve-flag",
        action="append",
        default=[],
        help="a further flag for the server, as --serve-flag=--name=value (repeatable)",
    )
    args = parser.parse_args()
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    workdir = Path(tempfile.mkdtemp(prefix="auditlog-overload-"))
    print(f"overload: code {code_version()}, scenarios {', '.join(names)}, {args.seconds:g} s each")
    results = []
    try:
        for name in names:
            results.append(one_scenario(name, args, workdir))
            show(results[-1])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    bad = [
        r["scenario"]
        for r in results
        if r["refusals_without_retry_after"]
        or any(s.startswith("5") and s != "503" for s in r["statuses"])
        or not r["alive_after_flood"]
        or r["after_flood"]["stored_after_ms"] is None
    ]
    print(
        "\nRESULT: "
        + (
            "every refusal was a 503/429 with Retry-After; recovered"
            if not bad
            else f"FAILED: {bad}"
        )
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

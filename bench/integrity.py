#!/usr/bin/env python3
"""Integrity benchmark: checkpoint lag under full ingest, proofs and ``verify`` at 1,000,000 events.

Three measurements, each bounded in time and stopped by itself; all traffic goes to 127.0.0.1.

* ``lag``: a fresh ``auditlog serve`` (default settings: SQLite FULL, ``checkpoint_interval_ms``
  200) takes the batch load of ``bench/ingest.py`` (``post_batch.lua``, 1,000 events per POST,
  8 connections, wrk ``-t1``) for ``--duration`` seconds after a 2 s warm-up, and is stopped
  (SIGTERM). Then, from the database alone: every event was committed at its ``received_at``
  and first covered by the checkpoint signed at ``timestamp_us`` of the first checkpoint whose
  size exceeds its seq. The delay of an event is the difference; the figures are the maximum
  and the p99 over every event committed while the load ran (the last checkpoint, signed at
  shutdown, is left out: it is not a round of the loop). Target: the maximum <= 1 s.
* ``proofs``: a copy of a 1,000,000-event data set (``--data``, as ``bench/query.py`` builds it;
  copied to ``--scratch`` so that the original is not changed) is integrated in process (timed),
  then served; ``--requests`` sequential keep-alive GETs of inclusion proofs (random seq, latest
  tree; then random seq and tree size) and of consistency proofs, after 20 warm-up requests.
  Figures: median and p95. Target: inclusion median <= 5 ms.
* ``verify``: ``auditlog verify --data <scratch>`` on that integrated copy, wall time and peak
  RSS. Target: <= 60 s.

Reproduce:  .venv/bin/python bench/integrity.py                     (all three; ~1 min after
            the 1M set exists: .venv/bin/python bench/query.py --build-only builds it)
            .venv/bin/python bench/integrity.py --only lag --duration 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV_BIN = ROOT / ".venv" / "bin"
AUDITLOG = str(VENV_BIN / "auditlog")
WRK = shutil.which("wrk") or "/usr/bin/wrk"
sys.path.insert(0, str(ROOT / "src"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("AUDITLOG_")}


def create_key(data: Path, tenant: str, scopes: str) -> str:
    out = subprocess.run(
        [AUDITLOG, "keys", "create", "--data", str(data), "--tenant", tenant, "--scopes", scopes],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env=environment(),
    )
    return out.stdout.strip().splitlines()[-1]


class Server:
    """``auditlog serve`` on a free port; stopped by its pid."""

    def __init__(self, data: Path, *flags: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(data / "serve.log", "ab")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [AUDITLOG, "serve", "--data", str(data), "--port", str(self.port), *flags],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=environment(),
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1):  # noqa: S310
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise SystemExit("the server did not start")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


# -- lag ---------------------------------------------------------------------------------------


def parse_us(text: str) -> int:
    from auditlog.model import times

    return times.parse_rfc3339(text)


def measure_lag(duration: float, connections: int, flags: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="auditlog-bench-lag-") as tmp:
        data = Path(tmp)
        token = create_key(data, "bench", "events:write")
        server = Server(data, "--log-level", "warning", *flags)
        try:
            env = {**os.environ, "AUDITLOG_KEY": token}
            script = str(BENCH / "post_batch.lua")
            common = [WRK, "-t1", f"-c{connections}", "--timeout", "10s", "-s", script]
            subprocess.run(
                [*common, "-d2s", server.url], env=env, capture_output=True, check=True, timeout=60
            )
            started_us = time.time_ns() // 1000
            run = subprocess.run(
                [*common, f"-d{duration:g}s", server.url],
                env=env,
                capture_output=True,
                text=True,
                check=True,
                timeout=duration + 60,
            )
            ended_us = time.time_ns() // 1000
        finally:
            server.stop()
        result = re.search(r"RESULT .*", run.stdout)
        db = sqlite3.connect(data / "auditlog.db")
        try:
            checkpoints = db.execute(
                "SELECT size, timestamp_us FROM checkpoints ORDER BY size"
            ).fetchall()
            received = [
                parse_us(json.loads(body)["received_at"])
                for (body,) in db.execute("SELECT body FROM events ORDER BY key")
            ]
        finally:
            db.close()
    delays: list[int] = []
    start = 0
    for size, signed_us in checkpoints[:-1]:  # the last one: signed at shutdown
        for seq in range(start, size):
            if started_us <= received[seq] <= ended_us:
                delays.append(signed_us - received[seq])
        start = size
    delays.sort()
    return {
        "wrk": result.group(0) if result else run.stdout[-300:],
        "events": len(received),
        "checkpoints": len(checkpoints),
        "events_measured": len(delays),
        "max_delay_ms": delays[-1] / 1000 if delays else None,
        "p99_delay_ms": delays[int(len(delays) * 0.99)] / 1000 if delays else None,
        "median_delay_ms": statistics.median(delays) / 1000 if delays else None,
    }


# -- proofs and verify at 1M -------------------------------------------------------------------


def integrate(path: Path) -> float:
    sys.path.insert(0, str(BENCH))
    from query import integrate as integrate_store

    from auditlog.storage.sqlite.store import SQLiteStore

    async def run() -> float:
        store = SQLiteStore(str(path / "auditlog.db"))
        await store.open()
        try:
            return await integrate_store(store)
        finally:
            await store.close()

    return asyncio.run(run())


def timed_gets(url: str, token: str, requests: int) -> dict[str, Any]:
    import httpx

    rng = random.Random(1)
    out: dict[str, Any] = {}
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
        size = client.get("/v1/log/checkpoint").json()["tree_size"]
        out["tree_size"] = size
        cases = {
            "inclusion": lambda: ("inclusion", {"seq": rng.randrange(size)}),
            "inclusion_old_tree": lambda: (
                "inclusion",
                {
                    "seq": rng.randrange(size // 2),
                    "tree_size": size // 2 + rng.randrange(size // 2),
                },
            ),
            "consistency": lambda: ("consistency", {"first": rng.randrange(1, size)}),
        }
        for _ in range(20):
            client.get("/v1/log/proof/inclusion", params={"seq": rng.randrange(size)})
        for name, make in cases.items():
            times_ms = []
            for _ in range(requests):
                kind, params = make()
                started = time.perf_counter()
                answer = client.get(f"/v1/log/proof/{kind}", params=params)
                times_ms.append((time.perf_counter() - started) * 1000)
                assert answer.status_code == 200, answer.text
            times_ms.sort()
            out[name] = {
                "median_ms": round(statistics.median(times_ms), 3),
                "p95_ms": round(times_ms[int(len(times_ms) * 0.95)], 3),
            }
    return out


def measure_million(source: Path, scratch: Path, requests: int) -> dict[str, Any]:
    if not (source / "auditlog.db").exists():
        raise SystemExit(f"no data set in {source}: run bench/query.py --build-only first")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    for name in ("auditlog.db", "auditlog.db-terms"):
        shutil.copy(source / name, scratch / name)
    out: dict[str, Any] = {"integrate_s": round(integrate(scratch), 2)}
    token = create_key(scratch, "bench", "log:read")
    server = Server(scratch, "--log-level", "warning", "--read-rate", "0")
    try:
        out["proofs"] = timed_gets(server.url, token, requests)
    finally:
        server.stop()
    started = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-f", "%M", AUDITLOG, "verify", "--data", str(scratch), "--wait", "0"],
        capture_output=True,
        text=True,
        timeout=600,
        env=environment(),
        check=False,
    )
    out["verify"] = {
        "seconds": round(time.perf_counter() - started, 2),
        "exit": done.returncode,
        "last_line": done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "",
        "peak_rss_mib": round(int(done.stderr.strip().splitlines()[-1]) / 1024),
    }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("lag", "million"))
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--data", type=Path, default=Path("/tmp/auditlog-bench-1m"))
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/auditlog-bench-integrity"))
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument(
        "--serve-flag",
        action="append",
        default=[],
        help="an extra flag for the lag run's server, e.g. --serve-flag=--checkpoint-interval-ms=100",
    )
    args = parser.parse_args()
    results: dict[str, Any] = {}
    if args.only in (None, "lag"):
        results["lag"] = measure_lag(args.duration, args.connections, args.serve_flag)
        print(json.dumps({"lag": results["lag"]}, indent=1), flush=True)
    if args.only in (None, "million"):
        try:
            results["million"] = measure_million(args.data, args.scratch, args.requests)
        finally:
            shutil.rmtree(args.scratch, ignore_errors=True)
        print(json.dumps({"million": results["million"]}, indent=1), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

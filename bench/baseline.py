#!/usr/bin/env python3
"""Baseline: how fast this machine answers POSTs with no service behind them.

The bare ASGI app ``bare_apps:ceiling`` (read the body, orjson, ``201`` with a uuid4; as
measured-ceilings.md §A) on one uvicorn process (uvloop, httptools), unpinned, loaded by
``wrk -t1 -c64`` for ``--duration`` s after a ``--warmup``: with ``post_fixed.lua`` (the same
594-byte event each time, as §A) and with ``post_event.lua`` (the random ~500-byte events that
the ingest benchmarks send). The service's targets were set on a machine where this answers
``--reference`` (~43,000) POSTs/s; the ratio scales them to this one. Noise control as
``ingest.py``: each run is kept only if other processes used at most ``--max-noise`` % of a
core, median of ``--runs`` kept runs.

Reproduce:  .venv/bin/python bench/baseline.py        (~1.5 min on a quiet machine)
Everything goes to 127.0.0.1; every run is bounded (~15 s) and stops by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import add_noise_args, kept_runs, median, reproduce, start_uvicorn
from ingest import TICK, CpuWindow, free_port, run_wrk, stop_server

SCRIPTS = {"fixed": "post_fixed.lua", "event": "post_event.lua"}


@dataclass
class Run:
    body: str
    rps: float
    p50_ms: float
    p99_ms: float
    non2xx: int
    errors: int
    server_cpu_pct: float
    wrk_cpu_pct: float
    others_pct: float


def one_run(body: str, args: argparse.Namespace) -> Run:
    port = free_port()
    server = start_uvicorn("bare_apps:ceiling", port)
    out = tempfile.mkdtemp(prefix="auditlog-bench-baseline-")
    try:
        if args.warmup:
            run_wrk(SCRIPTS[body], 64, args.warmup, port, "", out)
        window = CpuWindow([server.pid])
        window.begin()
        result, wrk_ticks = run_wrk(SCRIPTS[body], 64, args.duration, port, "", out)
        cpu = window.end(wrk_ticks)
    finally:
        stop_server(server)
        for name in os.listdir(out):
            os.remove(os.path.join(out, name))
        os.rmdir(out)
    return Run(
        body=body,
        rps=result["rps"],
        p50_ms=result["p50_ms"],
        p99_ms=result["p99_ms"],
        non2xx=int(result["non2xx"]),
        errors=int(result["errors"]),
        server_cpu_pct=cpu[f"pid{server.pid}_pct"],
        wrk_cpu_pct=100.0 * wrk_ticks / TICK / cpu["seconds"],
        others_pct=cpu["others_pct"],
    )


def row(r: Run, quiet: bool) -> str:
    return (
        f"| {r.body} | {r.rps:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.non2xx} | {r.errors} | "
        f"{r.server_cpu_pct:.0f} | {r.wrk_cpu_pct:.0f} | {r.others_pct:.1f} | "
        f"{'' if quiet else 'discarded (noise)'} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--body", choices=["fixed", "event", "both"], default="both")
    parser.add_argument("--duration", type=int, default=10, help="measured seconds per run")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up seconds per run")
    parser.add_argument(
        "--reference",
        type=float,
        default=43_000.0,
        help="POSTs/s of this baseline on the machine the targets were set on",
    )
    parser.add_argument("--json", help="also write every run as JSON to this file")
    add_noise_args(parser)
    args = parser.parse_args()
    bodies = ["fixed", "event"] if args.body == "both" else [args.body]
    print(
        f"# baseline: bare ASGI on uvicorn, wrk -t1 -c64, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, "
        f"{os.cpu_count()} CPUs, warm-up {args.warmup} s + {args.duration} s"
    )
    print(
        "| body | POSTs/s | p50 ms | p99 ms | non-2xx | errors | server CPU % | wrk CPU % | "
        "others CPU % | note |\n|---|---|---|---|---|---|---|---|---|---|"
    )
    summary = []
    every: list[Run] = []
    for body in bodies:
        kept, tried = kept_runs(
            lambda _attempt, body=body: one_run(body, args),
            lambda r: r.others_pct,
            lambda r, quiet: print(row(r, quiet), flush=True),
            args,
        )
        every += tried
        summary.append((body, kept))
    print()
    print(
        "| baseline | POSTs/s (median) | runs | p99 ms | others CPU % (max) | "
        f"ratio to {args.reference:,.0f} |\n|---|---|---|---|---|---|"
    )
    for body, kept in summary:
        rps = median([r.rps for r in kept])
        print(
            f"| bare ASGI on uvicorn, {SCRIPTS[body]} | **{rps:,.0f}** | "
            f"{', '.join(f'{r.rps:,.0f}' for r in kept)} | {median([r.p99_ms for r in kept]):.2f} | "
            f"{max(r.others_pct for r in kept):.1f} | {rps / args.reference:.2f} |"
        )
    print(f"\nReproduce: `{reproduce('baseline.py', sys.argv[1:])}`")
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in every], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Log-stream delivery benchmark: one webhook stream (``POST /v1/streams``, no filter) delivered
to a local receiver while single-event ingest runs at full speed (SQLite).

The receiver is ``bare_apps:receiver``: a bare ASGI app on its own uvicorn process (uvloop,
httptools), which reads each body, counts its events and answers ``204`` at once, verifying
nothing (the stack of measured-ceilings.md §A, which answers tens of thousands of requests a
second; a stream sends a few dozen batches a second).

Each run: a fresh data directory, receiver and ``auditlog serve`` (default settings: batches of
up to 500 events and 1 MiB, 50 ms linger), a wrk warm-up, then in alternating order: (a)
``post_event.lua`` ``-c64`` for ``--duration`` s with no stream; (b) a stream made with
``start: "now"``, the same wrk run, the stream's state (``GET /v1/streams/{id}``:
``delivered_seq``, ``lag_events``, ``deliveries``) read every ``--sample`` s during it and
after it until the lag is 0 (at most ``--drain`` s); the stream is deleted after (b).

Printed per run: ingest events/s without and with the stream, events delivered per second
during the wrk run, the lag when wrk stopped, the largest lag, the lag's growth over the
second half of the run (events/s; about 0 when delivery keeps up, about ingest - delivery
when it does not), the time to drain it, the lag every second, and the receiver's counts
(events received >= events delivered: delivery is at least once). Noise control as
``ingest.py``.

Reproduce:  .venv/bin/python bench/delivery.py      (~2 min on a quiet machine)
Everything goes to 127.0.0.1; every run is bounded (~60 s) and stops by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (
    BackgroundWrk,
    add_noise_args,
    kept_runs,
    median,
    reproduce,
    start_uvicorn,
)
from ingest import (
    CpuWindow,
    children,
    code_version,
    create_key,
    free_port,
    run_wrk,
    start_server,
    stop_server,
)


@dataclass
class Sample:
    t: float  # seconds since wrk started
    delivered_seq: int
    lag: int
    deliveries: int


@dataclass
class Run:
    ingest_alone: float
    ingest_stream: float
    p99_alone_ms: float
    p99_stream_ms: float
    non2xx: int
    delivered_per_s: float
    lag_at_end: int
    lag_max: int
    lag_growth_per_s: float
    drain_s: float | None
    receiver_events: int
    receiver_requests: int
    delivered_total: int
    server_cpu_alone: float
    server_cpu_stream: float
    receiver_cpu: float
    others_alone: float
    others_stream: float
    code: str
    samples: list[Sample] = field(default_factory=list)

    @property
    def others_pct(self) -> float:
        return max(self.others_alone, self.others_stream)


def stream_state(client: httpx.Client, stream_id: str, started: float) -> Sample:
    view = client.get(f"/v1/streams/{stream_id}").raise_for_status().json()
    return Sample(
        time.monotonic() - started,
        view["delivered_seq"] if view["delivered_seq"] is not None else -1,
        view["lag_events"],
        view["deliveries"],
    )


def at(samples: list[Sample], t: float) -> Sample:
    """The last sample taken at or before ``t``."""
    return [s for s in samples if s.t <= t][-1]


def with_stream(
    port: int,
    rport: int,
    keys: dict[str, str],
    pids: list[int],
    out_dir: str,
    args: argparse.Namespace,
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {keys['admin']}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=10) as client:
        made = client.post(
            "/v1/streams",
            json={
                "name": "bench",
                "destination": {"kind": "webhook", "url": f"http://127.0.0.1:{rport}/hook"},
                "start": "now",
            },
        )
        if made.status_code != 201:
            raise RuntimeError(f"POST /v1/streams answered {made.status_code}: {made.text}")
        stream_id = made.json()["id"]
        time.sleep(1.0)  # claimed by this process's delivery manager
        window = CpuWindow(pids)
        wrk = BackgroundWrk("post_event.lua", 64, args.duration, port, keys["write"], out_dir)
        window.begin()
        wrk.start()
        samples = [stream_state(client, stream_id, wrk.started)]
        while wrk.running():
            time.sleep(args.sample)
            samples.append(stream_state(client, stream_id, wrk.started))
        result, wrk_ticks = wrk.join()
        cpu = window.end(wrk_ticks)
        end = at(samples, args.duration - 0.1)  # the last state read while wrk still ran
        drained_at = None
        deadline = time.monotonic() + args.drain
        while time.monotonic() < deadline:
            last = stream_state(client, stream_id, wrk.started)
            samples.append(last)
            if last.lag == 0:
                drained_at = last.t
                break
            time.sleep(args.sample)
        client.delete(f"/v1/streams/{stream_id}").raise_for_status()
    return {
        "result": result,
        "cpu": cpu,
        "samples": samples,
        "end": end,
        "drain_s": None if drained_at is None else drained_at - end.t,
    }


def one_run(attempt: int, args: argparse.Namespace) -> Run:
    data = tempfile.mkdtemp(prefix="auditlog-bench-delivery-", dir=args.tmp)
    receiver = None
    try:
        keys = {
            "write": create_key(data, scopes="events:write", name="bench-write"),
            "admin": create_key(data, scopes="admin", name="bench-admin"),
        }
        rport = free_port()
        receiver = start_uvicorn("bare_apps:receiver", rport)
        port = free_port()
        code = code_version()
        server = start_server(data, port, ready="/readyz")
        try:
            pids = [server.pid, *children(server.pid), receiver.pid]
            run_wrk("post_event.lua", 64, args.warmup, port, keys["write"], data)
            alone: tuple[dict[str, float], dict[str, float]] | None = None
            streamed: dict[str, Any] | None = None
            for stream_now in [False, True] if attempt % 2 else [True, False]:
                if stream_now:
                    streamed = with_stream(port, rport, keys, pids, data, args)
                else:
                    window = CpuWindow(pids)
                    window.begin()
                    result, ticks = run_wrk(
                        "post_event.lua", 64, args.duration, port, keys["write"], data
                    )
                    alone = (result, window.end(ticks))
        finally:
            stop_server(server)
        counts = httpx.get(f"http://127.0.0.1:{rport}/stats", timeout=10).json()
    finally:
        if receiver is not None:
            stop_server(receiver)
        shutil.rmtree(data, ignore_errors=True)
    assert alone is not None
    assert streamed is not None
    samples: list[Sample] = streamed["samples"]
    end: Sample = streamed["end"]
    first = samples[0]
    half = at(samples, end.t / 2)
    result = streamed["result"]
    return Run(
        ingest_alone=alone[0]["requests"] / alone[0]["duration_s"],
        ingest_stream=result["requests"] / result["duration_s"],
        p99_alone_ms=alone[0]["p99_ms"],
        p99_stream_ms=result["p99_ms"],
        non2xx=int(alone[0]["non2xx"] + result["non2xx"]),
        delivered_per_s=(end.deliveries - first.deliveries) / (end.t - first.t),
        lag_at_end=end.lag,
        lag_max=max(s.lag for s in samples),
        lag_growth_per_s=(end.lag - half.lag) / (end.t - half.t),
        drain_s=streamed["drain_s"],
        receiver_events=int(counts["events"]),
        receiver_requests=int(counts["requests"]),
        delivered_total=samples[-1].deliveries,
        server_cpu_alone=alone[1][f"pid{pids[0]}_pct"],
        server_cpu_stream=streamed["cpu"][f"pid{pids[0]}_pct"],
        receiver_cpu=streamed["cpu"][f"pid{receiver.pid}_pct"],
        others_alone=alone[1]["others_pct"],
        others_stream=streamed["cpu"]["others_pct"],
        code=code,
        samples=samples,
    )


def lag_series(r: Run) -> str:
    """The lag at each whole second of the wrk run."""
    out = []
    t = 1.0
    end = r.samples[-1].t
    while t <= min(end, 60):
        out.append(f"{at(r.samples, t).lag:,}")
        t += 1.0
    return " ".join(out)


def row(r: Run, quiet: bool) -> str:
    drain = "-" if r.drain_s is None else f"{r.drain_s:.1f}"
    return (
        f"| {r.ingest_alone:,.0f} | {r.ingest_stream:,.0f} | "
        f"{r.ingest_stream / r.ingest_alone - 1:+.0%} | {r.p99_alone_ms:.1f} / "
        f"{r.p99_stream_ms:.1f} | **{r.delivered_per_s:,.0f}** | "
        f"{r.delivered_per_s / r.ingest_stream:.0%} | {r.lag_at_end:,} | {r.lag_max:,} | "
        f"{r.lag_growth_per_s:+,.0f} | {drain} | {lag_series(r)} | "
        f"{r.delivered_total:,} / {r.receiver_events:,} in {r.receiver_requests:,} | "
        f"{r.server_cpu_alone:.0f} / {r.server_cpu_stream:.0f} | {r.receiver_cpu:.0f} | "
        f"{r.others_alone:.1f} / {r.others_stream:.1f} | {r.code} | "
        f"{'' if quiet else 'discarded (noise)'} |"
    )


HEADER = (
    "| ingest alone events/s | with the stream events/s | change | wrk p99 ms (alone / with) | "
    "delivered events/s | of ingest | lag at end | max lag | lag growth /s (2nd half) | "
    "drain s | lag each second | delivered / received in requests | server CPU % (alone / "
    "with) | receiver CPU % | others CPU % | code | note |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="wrk seconds per phase")
    parser.add_argument("--warmup", type=int, default=2, help="wrk warm-up seconds")
    parser.add_argument("--sample", type=float, default=0.25, help="s between state reads")
    parser.add_argument("--drain", type=float, default=30.0, help="longest wait for lag 0, s")
    parser.add_argument("--tmp", default=tempfile.gettempdir(), help="where data dirs are made")
    parser.add_argument("--json", help="also write every run as JSON to this file")
    add_noise_args(parser)
    args = parser.parse_args()
    print(
        f"# auditlog log-stream delivery benchmark, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, "
        f"{os.cpu_count()} CPUs, one webhook stream to bare_apps:receiver, wrk -t1 -c64 "
        f"{args.duration} s, code {code_version()}"
    )
    print(HEADER)
    kept, tried = kept_runs(
        lambda attempt: one_run(attempt, args),
        lambda r: r.others_pct,
        lambda r, quiet: print(row(r, quiet), flush=True),
        args,
    )
    alone = median([r.ingest_alone for r in kept])
    ingest = median([r.ingest_stream for r in kept])
    delivered = median([r.delivered_per_s for r in kept])
    print()
    print("| measurement | result |\n|---|---|")
    print(
        f"| webhook delivery during full single-event ingest | **{delivered:,.0f} events/s** "
        f"delivered against **{ingest:,.0f}** ingested ({delivered / ingest:.0%}); lag at the "
        f"end {', '.join(f'{r.lag_at_end:,}' for r in kept)} events, growth over the second "
        f"half {', '.join(f'{r.lag_growth_per_s:+,.0f}' for r in kept)} events/s; drained in "
        f"{', '.join('-' if r.drain_s is None else f'{r.drain_s:.1f}' for r in kept)} s |"
    )
    print(
        f"| single-event ingest c64 without / with the stream | **{alone:,.0f}** / "
        f"**{ingest:,.0f} events/s** ({ingest / alone - 1:+.0%}) |"
    )
    print(f"\nReproduce: `{reproduce('delivery.py', sys.argv[1:])}`")
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in tried], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Live-tail benchmark: 100 open ``GET /v1/events/stream`` while single-event ingest runs at
full speed (SQLite): how long an event takes from its write's answer to its SSE frame at a
reader, and what the streams cost ingest.

The streams (``--streams``, 100): ``--unfiltered`` (4) with no filter, which receive every
event, and the others filtered on ``actor.id[in]=`` a share of the 10,000 actors that
``post_event.lua`` draws from (``user-1`` .. ``user-10000``, uniformly): with 96 filtered
streams, stream j takes the actors i with (i - 1) mod 96 = j, ~104 actors, so each receives
~1 % of the events and every event goes to exactly one filtered stream. Actors, not types:
``post_event.lua`` has 5 types (20 % each), too few to give 1 %. The few unfiltered streams
are the costly case (every event to send) that a console or a SIEM following everything is.

The readers are raw asyncio connections in this process (one HTTP/1.1 GET each; the chunked
body is scanned as it arrives, not decoded: frames counted, probe ids found with a regex), so
that a reader costs little next to the server. A probe writer (httpx, one keep-alive
connection) POSTs an event every ``--probe-interval`` s whose ``data.request_id`` is
``tprobe-<n>`` and whose actor belongs to filtered stream n mod 96; it records when each POST
was answered, and each reader when the frame with that probe arrived. Latency = arrival -
answer, at the filtered stream and at the unfiltered ones (p50, p99, max; probes that never
arrived are counted).

Each run: a fresh data directory and ``auditlog serve`` (default settings but
``--live-streams-per-credential``, raised so that one key may hold every stream), a wrk
warm-up, then in alternating order: (a) ``post_event.lua`` ``-c64`` for ``--duration`` s alone;
(b) the streams opened, ``--idle-probes`` s of probes with no other load (the floor), then the
same wrk run with probes from its second second to its end, then ``--grace`` s for the last
frames. Noise control as ``ingest.py``.

Reproduce:  .venv/bin/python bench/tail.py          (~2 min on a quiet machine)
Everything goes to 127.0.0.1; every run is bounded (~35 s) and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import quote

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (
    BackgroundWrk,
    add_noise_args,
    kept_runs,
    median,
    peak_rss_kib,
    reproduce,
)
from ingest import (
    TICK,
    CpuWindow,
    children,
    code_version,
    create_key,
    free_port,
    run_wrk,
    self_ticks,
    start_server,
    stop_server,
)
from query import percentile

ACTORS = 10_000  # post_event.lua: user-1 .. user-10000
FRAME = b"event: audit\n"
PROBE = re.compile(rb'"tprobe-(\d{8})"')
SEQ_ID = re.compile(rb"id: (\d+)\nevent: audit\n")  # not the opening block's id (no event)
TOO_SLOW = b": too slow"
CARRY = 64  # longer than any pattern above, so a match cut between two reads is found


def actor_groups(n: int) -> list[list[str]]:
    return [[f"user-{i}" for i in range(j + 1, ACTORS + 1, n)] for j in range(n)]


class Reader:
    """One live stream, read as raw bytes: frames counted, probes' arrival times kept."""

    def __init__(self, index: int, actors: list[str] | None) -> None:
        self.index = index
        self.actors = actors
        self.frames = 0
        self.arrivals: dict[int, float] = {}
        self.first_seq: int | None = None
        self.last_seq: int | None = None
        self.opened = asyncio.Event()
        self.cut = False
        self.ended = False
        self.error: str | None = None

    def target(self) -> str:
        if self.actors is None:
            return "/v1/events/stream"
        return "/v1/events/stream?" + quote("actor.id[in]") + "=" + ",".join(self.actors)

    async def run(self, port: int, key: str) -> None:
        writer = None
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                (
                    f"GET {self.target()} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                    f"Authorization: Bearer {key}\r\nAccept: text/event-stream\r\n\r\n"
                ).encode()
            )
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(head.split(b"\r\n")[0].decode())
            carry = b""
            count_seqs = self.actors is None
            while True:
                data = await reader.read(1 << 18)
                if not data:
                    self.ended = True
                    return
                now = time.monotonic()
                buf = carry + data
                self.frames += buf.count(FRAME) - carry.count(FRAME)
                if not self.opened.is_set() and b"retry:" in buf:
                    self.opened.set()
                for match in PROBE.finditer(buf):
                    self.arrivals.setdefault(int(match.group(1)), now)
                if count_seqs:
                    for match in SEQ_ID.finditer(buf):
                        seq = int(match.group(1))
                        if self.first_seq is None:
                            self.first_seq = seq
                        self.last_seq = seq
                if TOO_SLOW in buf:
                    self.cut = True
                carry = buf[-CARRY:]
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            self.opened.set()
        finally:
            if writer is not None:
                writer.close()


@dataclass
class Probes:
    answered: dict[int, float]  # probe number -> when its POST was answered
    post_ms: list[float]


async def send_probes(
    client: httpx.AsyncClient, groups: list[list[str]], first: int, until: float, every: float
) -> Probes:
    """POST probes from number ``first`` on, one every ``every`` s until ``until``, each in a
    task of its own, so that a slow answer does not delay the next probe."""
    out = Probes({}, [])

    async def probe(n: int) -> None:
        group = groups[n % len(groups)]
        body = {
            "type": "bench.probe",
            "actor": {"id": group[(n // len(groups)) % len(group)], "type": "user"},
            "source": "bench",
            "outcome": "success",
            "data": {"request_id": f"tprobe-{n:08d}"},
        }
        sent = time.monotonic()
        response = await client.post("/v1/events", json=body)
        answered = time.monotonic()
        if response.status_code not in (200, 201):
            raise RuntimeError(f"a probe was answered {response.status_code}: {response.text}")
        out.answered[n] = answered
        out.post_ms.append((answered - sent) * 1000)

    tasks = []
    n = first
    tick = time.monotonic()
    while tick < until:
        tasks.append(asyncio.create_task(probe(n)))
        n += 1
        tick += every
        await asyncio.sleep(max(0.0, tick - time.monotonic()))
    await asyncio.gather(*tasks)
    return out


@dataclass
class Latencies:
    probes: int
    filtered: list[float]
    unfiltered: list[float]
    missing_filtered: int
    missing_unfiltered: int
    post_ms: list[float]


def latencies(probes: Probes, readers: list[Reader], filtered: int) -> Latencies:
    lat_f: list[float] = []
    lat_u: list[float] = []
    miss_f = miss_u = 0
    for n, answered in probes.answered.items():
        got = readers[n % filtered].arrivals.get(n)
        if got is None:
            miss_f += 1
        else:
            lat_f.append((got - answered) * 1000)
        for reader in readers[filtered:]:
            got = reader.arrivals.get(n)
            if got is None:
                miss_u += 1
            else:
                lat_u.append((got - answered) * 1000)
    return Latencies(len(probes.answered), lat_f, lat_u, miss_f, miss_u, probes.post_ms)


@dataclass
class Run:
    ingest_alone: float
    ingest_streams: float
    p99_alone_ms: float
    p99_streams_ms: float
    non2xx: int
    idle: Latencies
    loaded: Latencies
    frames_unfiltered: list[int]
    gapless_unfiltered: bool
    frames_filtered: int
    cut: int
    errors: list[str]
    server_cpu_alone: float
    server_cpu_streams: float
    readers_cpu_pct: float
    server_hwm_mib: float
    others_alone: float
    others_streams: float
    code: str

    @property
    def others_pct(self) -> float:
        return max(self.others_alone, self.others_streams)

    def all_loaded(self) -> list[float]:
        return self.loaded.filtered + self.loaded.unfiltered


async def with_streams(
    port: int, key: str, pids: list[int], out_dir: str, args: argparse.Namespace
) -> tuple[dict[str, float], float, dict[str, float], Latencies, Latencies, list[Reader]]:
    filtered = args.streams - args.unfiltered
    groups = actor_groups(filtered)
    readers = [Reader(j, groups[j]) for j in range(filtered)]
    readers += [Reader(filtered + j, None) for j in range(args.unfiltered)]
    tasks = [asyncio.create_task(r.run(port, key)) for r in readers]
    headers = {"Authorization": f"Bearer {key}"}
    try:
        async with asyncio.timeout(30):
            for r in readers:
                await r.opened.wait()
        errors = [r.error for r in readers if r.error]
        if errors:
            raise RuntimeError(f"{len(errors)} streams failed to open: {errors[0]}")
        await asyncio.sleep(0.5)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30
        ) as client:
            idle = await send_probes(
                client, groups, 0, time.monotonic() + args.idle_probes, args.probe_interval
            )
            await asyncio.sleep(args.grace)
            window = CpuWindow(pids)
            wrk = BackgroundWrk("post_event.lua", 64, args.duration, port, key, out_dir)
            window.begin()
            client0 = self_ticks()
            wrk.start()
            await asyncio.sleep(1.0)  # ingest up to speed before the first probe
            loaded = await send_probes(
                client,
                groups,
                len(idle.answered),
                wrk.started + args.duration - 0.2,
                args.probe_interval,
            )
            result, wrk_ticks = await asyncio.to_thread(wrk.join)
            cpu = window.end(wrk_ticks)
            cpu["readers_pct"] = 100.0 * (self_ticks() - client0) / TICK / cpu["seconds"]
        await asyncio.sleep(args.grace)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return (
        result,
        wrk_ticks,
        cpu,
        latencies(idle, readers, filtered),
        latencies(loaded, readers, filtered),
        readers,
    )


def one_run(attempt: int, args: argparse.Namespace) -> Run:
    data = tempfile.mkdtemp(prefix="auditlog-bench-tail-", dir=args.tmp)
    try:
        key = create_key(data)
        port = free_port()
        code = code_version()
        server = start_server(
            data,
            port,
            ready="/readyz",
            flags=["--live-streams-per-credential", str(args.streams + 10)],
        )
        try:
            pids = [server.pid, *children(server.pid)]
            run_wrk("post_event.lua", 64, args.warmup, port, key, data)
            alone: tuple[dict[str, float], dict[str, float]] | None = None
            streamed = None
            for with_streams_now in [False, True] if attempt % 2 else [True, False]:
                if with_streams_now:
                    streamed = asyncio.run(with_streams(port, key, pids, data, args))
                else:
                    window = CpuWindow(pids)
                    window.begin()
                    result, ticks = run_wrk("post_event.lua", 64, args.duration, port, key, data)
                    alone = (result, window.end(ticks))
            hwm = peak_rss_kib(server.pid) or 0
        finally:
            stop_server(server)
    finally:
        shutil.rmtree(data, ignore_errors=True)
    assert alone is not None
    assert streamed is not None
    result_s, _, cpu_s, idle, loaded, readers = streamed
    filtered = args.streams - args.unfiltered
    unfiltered = readers[filtered:]
    return Run(
        ingest_alone=alone[0]["requests"] / alone[0]["duration_s"],
        ingest_streams=result_s["requests"] / result_s["duration_s"],
        p99_alone_ms=alone[0]["p99_ms"],
        p99_streams_ms=result_s["p99_ms"],
        non2xx=int(alone[0]["non2xx"] + result_s["non2xx"]),
        idle=idle,
        loaded=loaded,
        frames_unfiltered=[r.frames for r in unfiltered],
        gapless_unfiltered=all(
            r.first_seq is not None
            and r.last_seq is not None
            and r.frames == r.last_seq - r.first_seq + 1
            for r in unfiltered
        ),
        frames_filtered=sum(r.frames for r in readers[:filtered]),
        cut=sum(r.cut for r in readers),
        errors=[r.error for r in readers if r.error],
        server_cpu_alone=alone[1][f"pid{pids[0]}_pct"],
        server_cpu_streams=cpu_s[f"pid{pids[0]}_pct"],
        readers_cpu_pct=cpu_s["readers_pct"],
        server_hwm_mib=hwm / 1024,
        others_alone=alone[1]["others_pct"],
        others_streams=cpu_s["others_pct"],
        code=code,
    )


def ms(values: list[float], p: float) -> str:
    return f"{percentile(values, p):.1f}" if values else "-"


def row(r: Run, quiet: bool) -> str:
    lo = r.loaded
    return (
        f"| {r.ingest_alone:,.0f} | {r.ingest_streams:,.0f} | "
        f"{r.ingest_streams / r.ingest_alone - 1:+.0%} | {r.p99_alone_ms:.1f} / "
        f"{r.p99_streams_ms:.1f} | {lo.probes} | {ms(lo.filtered, 50)} / {ms(lo.filtered, 99)} | "
        f"{ms(lo.unfiltered, 50)} / {ms(lo.unfiltered, 99)} | "
        f"{max(r.all_loaded(), default=0):.0f} | {lo.missing_filtered + lo.missing_unfiltered} | "
        f"{ms(r.idle.filtered + r.idle.unfiltered, 50)} / "
        f"{ms(r.idle.filtered + r.idle.unfiltered, 99)} | {ms(lo.post_ms, 50)} | "
        f"{min(r.frames_unfiltered):,} | {'yes' if r.gapless_unfiltered else 'NO'} | "
        f"{r.frames_filtered:,} | {r.cut} | {r.server_cpu_alone:.0f} / {r.server_cpu_streams:.0f} "
        f"| {r.readers_cpu_pct:.0f} | {r.server_hwm_mib:.0f} | {r.others_alone:.1f} / "
        f"{r.others_streams:.1f} | {r.code} | {'' if quiet else 'discarded (noise)'} |"
    )


HEADER = (
    "| ingest alone events/s | with streams events/s | change | wrk p99 ms (alone / with) | "
    "probes | filtered p50 / p99 ms | unfiltered p50 / p99 ms | max ms | missing | "
    "idle p50 / p99 ms | probe POST p50 ms | frames per unfiltered stream (min) | gapless | "
    "frames, all filtered | cut off | server CPU % (alone / with) | readers CPU % | "
    "server VmHWM MiB | others CPU % | code | note |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--unfiltered", type=int, default=4)
    parser.add_argument("--duration", type=int, default=10, help="wrk seconds per phase")
    parser.add_argument("--warmup", type=int, default=2, help="wrk warm-up seconds")
    parser.add_argument("--probe-interval", type=float, default=0.02, help="s between probes")
    parser.add_argument("--idle-probes", type=float, default=2.0, help="s of probes, no load")
    parser.add_argument("--grace", type=float, default=2.0, help="s to wait for last frames")
    parser.add_argument("--tmp", default=tempfile.gettempdir(), help="where data dirs are made")
    parser.add_argument("--json", help="also write every run as JSON to this file")
    add_noise_args(parser)
    args = parser.parse_args()
    if not 0 < args.unfiltered < args.streams:
        parser.error("--unfiltered must be between 1 and --streams - 1")
    filtered = args.streams - args.unfiltered
    print(
        f"# auditlog live-tail benchmark, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, "
        f"{os.cpu_count()} CPUs, {args.streams} streams ({filtered} on actor.id[in] of "
        f"~{ACTORS // filtered} actors, {args.unfiltered} unfiltered), wrk -t1 -c64 "
        f"{args.duration} s, a probe every {args.probe_interval * 1000:.0f} ms, code {code_version()}"
    )
    print(HEADER)
    kept, tried = kept_runs(
        lambda attempt: one_run(attempt, args),
        lambda r: r.others_pct,
        lambda r, quiet: print(row(r, quiet), flush=True),
        args,
    )
    every = [lat for r in kept for lat in r.all_loaded()]
    filt = [lat for r in kept for lat in r.loaded.filtered]
    unf = [lat for r in kept for lat in r.loaded.unfiltered]
    alone = median([r.ingest_alone for r in kept])
    streams = median([r.ingest_streams for r in kept])
    print()
    print("| measurement | result |\n|---|---|")
    print(
        f"| latency, write answered → SSE frame, under full ingest ({len(every):,} arrivals of "
        f"{sum(r.loaded.probes for r in kept):,} probes in {len(kept)} runs) | p50 "
        f"**{ms(every, 50)} ms**, p99 **{ms(every, 99)} ms**, max {max(every, default=0):.0f} ms "
        f"(filtered streams {ms(filt, 50)} / {ms(filt, 99)}, unfiltered {ms(unf, 50)} / "
        f"{ms(unf, 99)}); missing "
        f"{sum(r.loaded.missing_filtered + r.loaded.missing_unfiltered for r in kept)} |"
    )
    print(
        f"| single-event ingest c64 without / with {args.streams} streams | **{alone:,.0f}** / "
        f"**{streams:,.0f} events/s** ({streams / alone - 1:+.0%}); runs "
        f"{', '.join(f'{r.ingest_alone:,.0f} / {r.ingest_streams:,.0f}' for r in kept)} |"
    )
    print(
        f"| readers cut off as too slow | {sum(r.cut for r in kept)}; stream errors "
        f"{sum(len(r.errors) for r in kept)}; unfiltered streams gapless: "
        f"{'all' if all(r.gapless_unfiltered for r in kept) else 'NOT all'} |"
    )
    print(f"\nReproduce: `{reproduce('tail.py', sys.argv[1:])}`")
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in tried], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Export benchmark: ``GET /v1/events/export`` of 1,000,000 events (SQLite), NDJSON and CSV.

Data: the 1,000,000 events of ``query.py``'s distribution (tenant ``bench``), built once in
``--data`` (default ``/tmp/auditlog-bench-export``, outside the repository) by ``query.build``
through ``SQLiteStore.append``, and indexed; later runs reuse it. Each export adds one
``auditlog.log.read`` record to the tenant (reads are recorded, as by default).

Part ``export`` (rounds until each export of the round has ``--runs`` quiet ones, each export
judged by the noise during it): a fresh ``auditlog serve`` (default settings) on the
data, and four exports one after the other (``SEQUENCE``: NDJSON three times, then CSV), each
read by a client that counts lines and discards them (httpx, ``iter_raw``). For each export:
events/s = events received / seconds from the request to the last byte (checked against
``Auditlog-Log-Size``: every event, once), MiB/s, time to the first byte, and the server's
memory: its RSS before (anonymous + mapped file), its peak during (VmHWM, set back before the
export through ``/proc/PID/clear_refs``, and VmRSS sampled every 20 ms), and how much each part
grew. The first export fills SQLite's page caches (``sqlite_cache_mb``, 64 MiB, per reader
connection) and its mmap of the database (256 MiB per reader connection, file pages the
kernel may take back); the later ones show what an export itself holds.

Part ``ingest`` (``--runs`` kept runs): a fresh server, a wrk warm-up, then the single-event
ingest of ``ingest.py`` (``post_event.lua``, ``-c64``, ``--duration`` s) into a second tenant
(``ingest``) of the same database: alone, with NDJSON exports of ``bench`` running the whole
time, and with CSV exports running the whole time (as soon as one ends the next begins; the
one running when wrk stops is cut off), in an order that turns from run to run. The writes go
to another tenant so that the million events stay as they are from run to run; the database,
its one writer and the server's event loop are the same, which is what an export could block
or starve.

Noise control as ``ingest.py``: before each run the script waits for a quiet machine, and a
run where other processes used more than ``--max-noise`` % of a core is repeated.

Reproduce:  .venv/bin/python bench/export.py     (~5 min after the build, which takes ~6 min)
Everything goes to 127.0.0.1; every run is bounded and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (
    BackgroundWrk,
    RssSampler,
    add_noise_args,
    kept_runs,
    median,
    peak_rss_kib,
    reproduce,
    reset_peak_rss,
    rss_parts_kib,
    wait_quiet,
)
from ingest import (
    ROOT,
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
from query import TENANT, build, db_path, stored_events

INGEST_TENANT = "ingest"


def ensure_data(data: str, events: int) -> None:
    """Build the data set unless ``data`` holds it (the events, perhaps read records after)."""
    have = stored_events(data)
    if have >= events:
        return
    if have:
        raise SystemExit(f"{data} holds {have:,} events, fewer than {events:,}: delete it first")
    print(f"building {events:,} events in {data} (query.py's builder)", flush=True)
    info = asyncio.run(build(data, events, 5000, 42))
    print(f"  built in {info['total_s']:.0f} s", flush=True)


def key_file(data: str, name: str, tenant: str, scopes: str) -> str:
    """An API key kept in the data directory, made the first time."""
    path = os.path.join(data, f"bench-key-{name}.txt")
    if not os.path.exists(path):
        Path(path).write_text(create_key(data, tenant, scopes, f"bench-{name}"))
    return Path(path).read_text().strip()


@dataclass
class Received:
    events: int
    bytes: int
    seconds: float
    first_byte_s: float
    log_size: int
    complete: bool


def export(
    port: int,
    key: str,
    fmt: str,
    timeout: float,
    stop: threading.Event | None = None,
) -> Received:
    """One export, streamed and counted; ``stop`` cuts it off (``complete`` is then False)."""
    lines = size = 0
    first = 0.0
    started = time.perf_counter()
    with (
        httpx.Client(timeout=httpx.Timeout(30.0)) as client,
        client.stream(
            "GET",
            f"http://127.0.0.1:{port}/v1/events/export",
            params={"format": fmt},
            headers={"Authorization": f"Bearer {key}"},
        ) as response,
    ):
        if response.status_code != 200:
            raise RuntimeError(f"export answered {response.status_code}: {response.read()[:300]!r}")
        log_size = int(response.headers["auditlog-log-size"])
        for chunk in response.iter_raw(1 << 16):
            if not first:
                first = time.perf_counter() - started
            lines += chunk.count(b"\n")
            size += len(chunk)
            if time.perf_counter() - started > timeout:
                raise RuntimeError(f"the export took more than {timeout:g} s")
            if stop is not None and stop.is_set():
                break
    seconds = time.perf_counter() - started
    events = lines - 1 if fmt == "csv" else lines  # CSV: a header row; no cell holds a newline
    return Received(events, size, seconds, first, log_size, events == log_size)


# -- part export -------------------------------------------------------------------------

#: The exports of one run, in order, on one fresh server: the first finds SQLite's page caches
#: (``sqlite_cache_mb`` per reader connection) and its mmap of the database empty and fills
#: them; by the third they are as full as on any server that has been answering queries for a
#: while, so what is left of the growth is what an export itself holds.
SEQUENCE = (("ndjson", "1st"), ("ndjson", "2nd"), ("ndjson", "3rd"), ("csv", "4th"))


@dataclass
class ExportRun:
    format: str
    server: str  # the how-manieth export on its server
    events: int
    seconds: float
    events_per_s: float
    mib_per_s: float
    first_byte_ms: float
    complete: bool
    rss_before_mib: float
    anon_before_mib: float
    file_before_mib: float
    peak_during_mib: float
    growth_mib: float
    anon_growth_mib: float
    file_growth_mib: float
    server_cpu_pct: float
    client_cpu_pct: float
    others_pct: float
    code: str


def measured_export(
    pid: int, pids: list[int], port: int, key: str, fmt: str, state: str, code: str, timeout: float
) -> ExportRun:
    before = rss_parts_kib(pid)
    if not reset_peak_rss(pid):
        print("  (cannot reset VmHWM; the peak during is the sampled one)")
    window = CpuWindow(pids)
    window.begin()
    client0 = self_ticks()
    with RssSampler(pid) as sampler:
        got = export(port, key, fmt, timeout)
    client = self_ticks() - client0
    cpu = window.end(0.0)
    peak = max(peak_rss_kib(pid) or 0, sampler.max_kib["VmRSS"])
    return ExportRun(
        format=fmt,
        server=state,
        events=got.events,
        seconds=got.seconds,
        events_per_s=got.events / got.seconds,
        mib_per_s=got.bytes / got.seconds / 2**20,
        first_byte_ms=got.first_byte_s * 1000,
        complete=got.complete,
        rss_before_mib=before["VmRSS"] / 1024,
        anon_before_mib=before["RssAnon"] / 1024,
        file_before_mib=before["RssFile"] / 1024,
        peak_during_mib=peak / 1024,
        growth_mib=(peak - before["VmRSS"]) / 1024,
        anon_growth_mib=(sampler.max_kib["RssAnon"] - before["RssAnon"]) / 1024,
        file_growth_mib=(sampler.max_kib["RssFile"] - before["RssFile"]) / 1024,
        server_cpu_pct=cpu[f"pid{pid}_pct"],
        client_cpu_pct=100.0 * client / TICK / cpu["seconds"],
        others_pct=cpu["others_pct"],
        code=code,
    )


@dataclass
class ExportRound:
    exports: list[ExportRun]
    others_pct: float = field(init=False)

    def __post_init__(self) -> None:
        self.others_pct = max(r.others_pct for r in self.exports)

    def pick(self, fmt: str, state: str) -> ExportRun:
        return next(r for r in self.exports if r.format == fmt and r.server == state)


def export_round(data: str, key: str, args: argparse.Namespace) -> ExportRound:
    port = free_port()
    code = code_version()
    server = start_server(data, port, ready="/readyz", timeout=60)
    try:
        pids = [server.pid, *children(server.pid)]
        time.sleep(1.0)  # the indexer child has nothing to do; let start-up settle
        runs = [
            measured_export(server.pid, pids, port, key, fmt, state, code, args.timeout)
            for fmt, state in SEQUENCE
        ]
    finally:
        stop_server(server)
    return ExportRound(runs)


def export_rows(round_: ExportRound, max_noise: float) -> str:
    return "\n".join(
        f"| {r.format} | {r.server} | {r.events:,} | {r.seconds:.1f} | {r.events_per_s:,.0f} | "
        f"{r.mib_per_s:.0f} | {r.first_byte_ms:.0f} | {'yes' if r.complete else 'NO'} | "
        f"{r.rss_before_mib:.0f} ({r.anon_before_mib:.0f} + {r.file_before_mib:.0f}) | "
        f"{r.peak_during_mib:.0f} | {r.growth_mib:+.1f} | {r.anon_growth_mib:+.1f} | "
        f"{r.file_growth_mib:+.1f} | {r.server_cpu_pct:.0f} | {r.client_cpu_pct:.0f} | "
        f"{r.others_pct:.1f} | {r.code} | "
        f"{'' if r.others_pct <= max_noise else 'discarded (noise)'} |"
        for r in round_.exports
    )


EXPORT_HEADER = (
    "| format | export on the server | events | s | events/s | MiB/s | first byte ms | complete | "
    "RSS before MiB (anon + file) | peak during MiB | growth MiB | anon growth MiB | "
    "file growth MiB | server CPU % | client CPU % | others CPU % | code | note |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def cell(
    rounds: list[ExportRound], fmt: str, state: str, args: argparse.Namespace
) -> list[ExportRun]:
    """The ``--runs`` least noisy exports of one place in ``SEQUENCE``: the quiet ones when
    there are enough."""
    return sorted((r.pick(fmt, state) for r in rounds), key=lambda r: r.others_pct)[: args.runs]


def export_part(data: str, key: str, args: argparse.Namespace) -> list[ExportRound]:
    """Rounds until every place in ``SEQUENCE`` has ``--runs`` quiet exports (each export is
    judged by the noise during it: a CSV export takes a minute, which a busy machine seldom
    leaves quiet whole together with the rest of its round), at most ``--max-attempts``."""
    rounds: list[ExportRound] = []
    while len(rounds) < args.max_attempts:
        quiet = min(
            sum(r.pick(f, s).others_pct <= args.max_noise for r in rounds) for f, s in SEQUENCE
        )
        if quiet >= args.runs:
            break
        wait_quiet(args.max_noise, args.quiet_wait)
        rounds.append(export_round(data, key, args))
        print(export_rows(rounds[-1], args.max_noise), flush=True)
    return rounds


def export_summary(rounds: list[ExportRound], args: argparse.Namespace) -> list[str]:
    out = []
    for fmt, state in SEQUENCE:
        runs = cell(rounds, fmt, state, args)
        noisy = "" if all(r.others_pct <= args.max_noise for r in runs) else " (NOT all quiet)"
        out.append(
            f"| export {fmt}, {state} on its server, {median([r.events for r in runs]):,.0f} events | "
            f"**{median([r.events_per_s for r in runs]):,.0f} events/s** "
            f"({', '.join(f'{r.events_per_s:,.0f}' for r in runs)}), "
            f"{median([r.mib_per_s for r in runs]):.0f} MiB/s | RSS before "
            f"{median([r.rss_before_mib for r in runs]):.0f} MiB, peak during "
            f"{max(r.peak_during_mib for r in runs):.0f} MiB, growth "
            f"**{max(r.growth_mib for r in runs):+.1f} MiB** (max; anonymous "
            f"{max(r.anon_growth_mib for r in runs):+.1f}, mapped file "
            f"{max(r.file_growth_mib for r in runs):+.1f}) | complete: "
            f"{'all' if all(r.complete for r in runs) else 'NOT all'} | others ≤ "
            f"{max(r.others_pct for r in runs):.1f} %{noisy} |"
        )
    return out


# -- part ingest -------------------------------------------------------------------------


@dataclass
class IngestRun:
    export: str  # "" (alone), "ndjson" or "csv"
    events_per_s: float
    p50_ms: float
    p99_ms: float
    non2xx: int
    server_cpu_pct: float
    others_pct: float
    exports_done: int = 0
    export_events_per_s: float = 0.0
    code: str = ""


@dataclass
class IngestRound:
    runs: dict[str, IngestRun]
    others_pct: float = field(init=False)

    def __post_init__(self) -> None:
        self.others_pct = max(r.others_pct for r in self.runs.values())


def exports_until(
    port: int, key: str, fmt: str, stop: threading.Event, out: list[Received]
) -> None:
    while not stop.is_set():
        out.append(export(port, key, fmt, 600.0, stop))


def ingest_phase(
    server_pid: int,
    pids: list[int],
    port: int,
    keys: dict[str, str],
    fmt: str,
    out_dir: str,
    args: argparse.Namespace,
) -> IngestRun:
    """wrk for ``--duration`` s, with exports of ``fmt`` one after another (none if "")."""
    window = CpuWindow(pids)
    stop = threading.Event()
    received: list[Received] = []
    exporter = threading.Thread(
        target=exports_until, args=(port, keys["read"], fmt, stop, received), name="export"
    )
    wrk = BackgroundWrk("post_event.lua", 64, args.duration, port, keys["write"], out_dir)
    window.begin()
    if fmt:
        exporter.start()
    wrk.start()
    result, wrk_ticks = wrk.join()
    stop.set()
    if fmt:
        exporter.join(timeout=60)
    cpu = window.end(wrk_ticks)
    counted = sum(r.events for r in received)
    secs = sum(r.seconds for r in received)
    return IngestRun(
        export=fmt,
        events_per_s=result["requests"] / result["duration_s"],
        p50_ms=result["p50_ms"],
        p99_ms=result["p99_ms"],
        non2xx=int(result["non2xx"]),
        server_cpu_pct=cpu[f"pid{server_pid}_pct"],
        others_pct=cpu["others_pct"],
        exports_done=sum(r.complete for r in received),
        export_events_per_s=counted / secs if secs else 0.0,
    )


INGEST_PHASES = ("", "ndjson", "csv")


def ingest_round(
    data: str, keys: dict[str, str], attempt: int, args: argparse.Namespace
) -> IngestRound:
    """One fresh server: a warm-up, then ingest alone, with NDJSON exports and with CSV
    exports, in an order that turns from round to round."""
    port = free_port()
    code = code_version()
    server = start_server(data, port, ready="/readyz", timeout=60)
    shift = (attempt - 1) % len(INGEST_PHASES)
    order = INGEST_PHASES[shift:] + INGEST_PHASES[:shift]
    try:
        pids = [server.pid, *children(server.pid)]
        run_wrk("post_event.lua", 64, args.warmup, port, keys["write"], data)
        runs = {f: ingest_phase(server.pid, pids, port, keys, f, data, args) for f in order}
    finally:
        stop_server(server)
    for r in runs.values():
        r.code = code
    return IngestRound(runs)


def ingest_rows(round_: IngestRound, quiet: bool) -> str:
    alone = round_.runs[""]
    return "\n".join(
        f"| {r.export or 'none (alone)'} | {r.events_per_s:,.0f} | "
        f"{r.events_per_s / alone.events_per_s - 1:+.0%} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | "
        f"{r.non2xx} | {r.exports_done if r.export else '-'} | "
        f"{f'{r.export_events_per_s:,.0f}' if r.export else '-'} | {r.server_cpu_pct:.0f} | "
        f"{r.others_pct:.1f} | {r.code} | {'' if quiet else 'discarded (noise)'} |"
        for r in (round_.runs[f] for f in INGEST_PHASES)
    )


INGEST_HEADER = (
    "| export running | ingest events/s | change | p50 ms | p99 ms | non-2xx | exports completed "
    "| export events/s meanwhile | server CPU % | others CPU % | code | note |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def ingest_summary(rounds: list[IngestRound]) -> list[str]:
    alone = median([r.runs[""].events_per_s for r in rounds])
    out = []
    for fmt in INGEST_PHASES:
        runs = [r.runs[fmt] for r in rounds]
        rate = median([r.events_per_s for r in runs])
        exporting = (
            f"export meanwhile {median([r.export_events_per_s for r in runs]):,.0f} events/s"
            if fmt
            else "-"
        )
        out.append(
            f"| single-event ingest c64, {f'one {fmt} export running' if fmt else 'alone'} | "
            f"**{rate:,.0f} events/s** ({', '.join(f'{r.events_per_s:,.0f}' for r in runs)})"
            f"{f', {rate / alone - 1:+.0%}' if fmt else ''} | p50 "
            f"{median([r.p50_ms for r in runs]):.1f} ms, p99 "
            f"{median([r.p99_ms for r in runs]):.1f} ms | {exporting} | others ≤ "
            f"{max(r.others_pct for r in runs):.1f} % |"
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="/tmp/auditlog-bench-export")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--part", choices=["export", "ingest", "all"], default="all")
    parser.add_argument("--timeout", type=float, default=120.0, help="longest export, s")
    parser.add_argument("--duration", type=int, default=10, help="wrk seconds per ingest run")
    parser.add_argument("--warmup", type=int, default=2, help="wrk warm-up seconds")
    parser.add_argument("--json", help="also write every run as JSON to this file")
    add_noise_args(parser)
    args = parser.parse_args()
    data = os.path.abspath(args.data)
    if data.startswith(str(ROOT) + os.sep):
        parser.error("keep --data outside the repository")
    print(
        f"# auditlog export benchmark, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, "
        f"{os.cpu_count()} CPUs, data {data}, code {code_version()}"
    )
    ensure_data(data, args.events)
    keys = {
        "read": key_file(data, "read", TENANT, "events:read"),
        "write": key_file(data, "write", INGEST_TENANT, "events:write"),
    }
    started = time.perf_counter()
    with open(db_path(data), "rb") as fh:  # into the page cache, if it fits
        while fh.read(1 << 24):
            pass
    print(
        f"{stored_events(data):,} events in tenant {TENANT}; database "
        f"{os.path.getsize(db_path(data)) / 2**20:,.0f} MiB read in "
        f"{time.perf_counter() - started:.1f} s"
    )
    record: dict[str, Any] = {}
    summary: list[str] = []
    if args.part in ("export", "all"):
        print(EXPORT_HEADER)
        rounds = export_part(data, keys["read"], args)
        record["export"] = [asdict(r) for r in rounds]
        summary += export_summary(rounds, args)
    if args.part in ("ingest", "all"):
        print()
        print(INGEST_HEADER)
        ingest_rounds, tried_ingest = kept_runs(
            lambda attempt: ingest_round(data, keys, attempt, args),
            lambda r: r.others_pct,
            lambda r, quiet: print(ingest_rows(r, quiet), flush=True),
            args,
        )
        record["ingest"] = [asdict(r) for r in tried_ingest]
        summary += ingest_summary(ingest_rounds)
    print()
    print("| measurement | result | memory / latency | check | noise |\n|---|---|---|---|---|")
    for line in summary:
        print(line)
    print(f"\nReproduce: `{reproduce('export.py', sys.argv[1:])}`")
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

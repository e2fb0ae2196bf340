#!/usr/bin/env python3
"""Ingest benchmark: one ``auditlog serve`` (SQLite, default settings) driven by wrk on 127.0.0.1.

Scenarios (each run gets a fresh data directory, a fresh key and a fresh server):

* ``single``: ``bench/post_event.lua``, one ~500-byte event per POST, ``-c64``.
* ``batch``:  ``bench/post_batch.lua``, a JSON array of 1,000 events per POST, ``-c8``
  (``--batch-conns``): 8 batches in flight let the next groups be parsed while one commits;
  more connections only lengthen the queue (latency) on 2 cores, see bench/RESULTS.md.

Per run: wrk warm-up (``--warmup`` s), then the measured wrk run (``--duration`` s), ``-t1``.
Measured: events/s, wrk's p50/p99, non-2xx answers, the CPU used by the server, its indexer child,
wrk and every *other* process on the machine (system-wide user+nice+system ticks minus ours and
minus kernel threads), peak RSS (VmHWM) of the server and of the indexer, and after the server
stopped (SIGTERM, wait): events stored >= events acknowledged (2xx) over warm-up + measured run.

A run where other processes used more than ``--max-noise`` % of one core is thrown away and
repeated (at most ``--max-attempts`` per scenario). Before each run the script waits (at most
``--quiet-wait`` s) for the machine to be quiet.

Reproduce:  .venv/bin/python bench/ingest.py            (both scenarios, 3 runs each)
            .venv/bin/python bench/ingest.py --scenario batch --batch-conns 16
Everything goes to 127.0.0.1; every run is bounded (~20 s) and stops by itself.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
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
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV_BIN = ROOT / ".venv" / "bin"
AUDITLOG = str(VENV_BIN / "auditlog")
WRK = shutil.which("wrk") or "/usr/bin/wrk"
TICK = os.sysconf("SC_CLK_TCK")
PF_KTHREAD = 0x00200000

#: scenario: (wrk script, events per request)
SCENARIOS: dict[str, tuple[str, int]] = {
    "single": ("post_event.lua", 1),
    "batch": ("post_batch.lua", 1000),
}

# -- /proc accounting --------------------------------------------------------------------


def proc_stat(pid: int) -> tuple[int, int, int] | None:
    """(utime+stime ticks, ppid, flags) of a process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read().decode("ascii", "replace")
    except OSError:
        return None
    rest = raw[raw.rindex(")") + 2 :].split()
    # fields after the command: state(0) ppid(1) ... flags(6) ... utime(11) stime(12)
    return int(rest[11]) + int(rest[12]), int(rest[1]), int(rest[6])


def system_ticks() -> int:
    """user + nice + system ticks of all CPUs since boot (no idle, iowait, irq, softirq)."""
    with open("/proc/stat") as fh:
        parts = fh.readline().split()
    return int(parts[1]) + int(parts[2]) + int(parts[3])


def kthread_ticks() -> int:
    total = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = proc_stat(int(entry))
            if st is not None and st[2] & PF_KTHREAD:
                total += st[0]
    return total


def children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = proc_stat(int(entry))
            if st is not None and st[1] == pid:
                out.append(int(entry))
    return out


def vm_hwm_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def self_ticks() -> float:
    t = os.times()
    return (t.user + t.system) * TICK


@dataclass
class CpuWindow:
    """CPU ticks of the whole machine, of our processes and of kernel threads over a window."""

    pids: list[int]
    start_sys: int = 0
    start_k: int = 0
    start_self: float = 0.0
    start_pids: dict[int, int] = field(default_factory=dict)
    started: float = 0.0

    def begin(self) -> None:
        self.start_pids = {p: (proc_stat(p) or (0, 0, 0))[0] for p in self.pids}
        self.start_k = kthread_ticks()
        self.start_self = self_ticks()
        self.start_sys = system_ticks()
        self.started = time.monotonic()

    def end(self, extra_ticks: float) -> dict[str, float]:
        """Per-core percentages; ``extra_ticks``: CPU of our processes that already exited (wrk)."""
        sys_d = system_ticks() - self.start_sys
        secs = time.monotonic() - self.started
        self_d = self_ticks() - self.start_self
        k_d = kthread_ticks() - self.start_k
        per_pid = {
            p: (proc_stat(p) or (self.start_pids[p], 0, 0))[0] - self.start_pids[p]
            for p in self.pids
        }
        ours = sum(per_pid.values()) + extra_ticks + self_d
        others = max(0.0, sys_d - ours - k_d)

        def pct(ticks: float) -> float:
            return 100.0 * ticks / TICK / secs

        return {
            "seconds": secs,
            "others_pct": pct(others),
            "kthreads_pct": pct(k_d),
            "machine_pct": pct(sys_d),
            **{f"pid{p}_pct": pct(d) for p, d in per_pid.items()},
            **{f"pid{p}_ticks": d for p, d in per_pid.items()},
        }


def others_now(seconds: float = 1.0) -> float:
    """Percent of one core used by processes other than kernel threads and this one."""
    window = CpuWindow([])
    window.begin()
    time.sleep(seconds)
    return window.end(0.0)["others_pct"]


def code_version() -> str:
    """Which code the servers run: the commit, and how many files under src/ differ from it.

    Others may edit src/ while benchmarks run; each server imports the code once, at its start,
    so every run records the version it measured. To measure a fixed commit whatever happens
    to the working tree, run from a snapshot of it, e.g.
    ``git archive REV src | tar -x -C /tmp/snap && echo REV > /tmp/snap/COMMIT`` and then
    ``PYTHONPATH=/tmp/snap/src .venv/bin/python bench/ingest.py``; servers inherit PYTHONPATH.
    """
    spec = importlib.util.find_spec("auditlog")
    origin = Path(spec.origin).resolve() if spec is not None and spec.origin else None
    if origin is not None and not origin.is_relative_to(ROOT / "src"):
        marker = origin.parents[2] / "COMMIT"
        if marker.exists():
            return "snapshot:" + marker.read_text().strip()
        return f"path:{origin.parent}"
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head or "unknown") + (f"+{len(dirty)}dirty" if dirty else "")


# -- server ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env() -> dict[str, str]:
    """The environment without AUDITLOG_* settings, so the server runs with its defaults."""
    return {k: v for k, v in os.environ.items() if not k.startswith("AUDITLOG_")}


def store_flags(data: str) -> list[str]:
    """``--store URL`` for a storage URL, else ``--data DIR`` for a data directory."""
    return ["--store", data] if "://" in data else ["--data", data]


def create_key(
    data: str, tenant: str = "bench", scopes: str = "events:write,events:read", name: str = "bench"
) -> str:
    """A new API key (its secret) of ``tenant`` with ``scopes``, made by ``auditlog keys create``."""
    out = subprocess.run(
        [
            AUDITLOG,
            "keys",
            "create",
            *store_flags(data),
            "--tenant",
            tenant,
            "--scopes",
            scopes,
            "--name",
            name,
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(),
    ).stdout
    return out.strip().splitlines()[-1]


def start_server(
    data: str,
    port: int,
    ready: str = "/healthz",
    timeout: float = 15.0,
    flags: Sequence[str] = (),
) -> subprocess.Popen[bytes]:
    """``auditlog serve`` on ``data`` (a data directory or a store URL) at
    127.0.0.1:``port`` with ``flags`` besides the defaults, once ``ready`` answers 200."""
    server = subprocess.Popen(
        [
            AUDITLOG,
            "serve",
            *store_flags(data),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            *flags,
        ],
        stdin=subprocess.DEVNULL,
        env=clean_env(),
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"server exited with {server.returncode} during start-up")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{ready}", timeout=1) as r:
                if r.status == 200:
                    return server
        except OSError:
            time.sleep(0.1)
    stop_server(server)
    raise RuntimeError(f"server did not answer {ready} within {timeout:g} s")


def stop_server(server: subprocess.Popen[bytes]) -> tuple[float, bool]:
    """SIGTERM the server by pid and wait; (seconds it took, whether SIGKILL was needed)."""
    started = time.monotonic()
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=40)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
            return time.monotonic() - started, True
    return time.monotonic() - started, False


# -- wrk ---------------------------------------------------------------------------------

_RESULT = re.compile(r"^RESULT (.*)$", re.M)


def run_wrk(
    script: str, conns: int, seconds: int, port: int, key: str, out_dir: str
) -> tuple[dict[str, float], float]:
    """Run wrk to completion; (its RESULT fields, its CPU ticks from wait4)."""
    env = dict(os.environ, AUDITLOG_KEY=key)
    out_path = os.path.join(out_dir, "wrk.out")
    with open(out_path, "wb") as out:
        wrk = subprocess.Popen(
            [
                WRK,
                "-t1",
                f"-c{conns}",
                f"-d{seconds}s",
                "--timeout",
                "10s",
                "-s",
                str(BENCH / script),
                f"http://127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        deadline = time.monotonic() + seconds + 20
        while True:
            pid, status, usage = os.wait4(wrk.pid, os.WNOHANG)
            if pid:
                wrk.returncode = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline:
                wrk.kill()
                wrk.wait()
                raise RuntimeError("wrk did not stop by itself")
            time.sleep(0.02)
    text = Path(out_path).read_text()
    match = _RESULT.search(text)
    if wrk.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed ({wrk.returncode}):\n{text}")
    fields = {k: float(v) for k, v in (kv.split("=") for kv in match.group(1).split())}
    return fields, (usage.ru_utime + usage.ru_stime) * TICK


# -- one run -----------------------------------------------------------------------------


@dataclass
class Run:
    scenario: str
    conns: int
    events_per_s: float
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    non2xx: int
    errors: int
    server_cpu_pct: float
    indexer_cpu_pct: float
    wrk_cpu_pct: float
    others_pct: float
    server_hwm_mib: float
    indexer_hwm_mib: float | None
    server_cpu_us_per_event: float
    acked: int
    stored: int
    indexed_at_stop: int
    stop_s: float
    killed: bool
    code: str
    kept: bool = True


def stored_counts(data: str) -> tuple[int, int]:
    db = os.path.join(data, "auditlog.db")
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        stored = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        size = conn.execute("SELECT coalesce(sum(size), 0) FROM tenants").fetchone()[0]
        if stored != size:
            raise RuntimeError(f"events table holds {stored} rows but tenants say {size}")
        conn.execute("ATTACH DATABASE ? AS t", (db + "-terms",))
        indexed = conn.execute("SELECT coalesce(sum(next_seq), 0) FROM t.progress").fetchone()[0]
    finally:
        conn.close()
    return int(stored), int(indexed)


def one_run(name: str, conns: int, args: argparse.Namespace) -> Run:
    script, batch = SCENARIOS[name]
    data = tempfile.mkdtemp(prefix=f"auditlog-bench-{name}-", dir=args.tmp)
    try:
        key = create_key(data)
        port = free_port()
        code = code_version()
        server = start_server(data, port)
        try:
            kids = children(server.pid)
            indexer = kids[0] if kids else None
            acked = 0
            if args.warmup > 0:
                warm, _ = run_wrk(script, conns, args.warmup, port, key, data)
                acked += int(warm["requests"] - warm["non2xx"]) * batch
            window = CpuWindow([server.pid] + ([indexer] if indexer else []))
            window.begin()
            result, wrk_ticks = run_wrk(script, conns, args.duration, port, key, data)
            cpu = window.end(wrk_ticks)
            server_hwm = vm_hwm_kib(server.pid) or 0
            indexer_hwm = vm_hwm_kib(indexer) if indexer else None
        finally:
            stop_s, killed = stop_server(server)
        acked += int(result["requests"] - result["non2xx"]) * batch
        stored, indexed = stored_counts(data)
    finally:
        if not args.keep:
            shutil.rmtree(data, ignore_errors=True)
    events = result["requests"] * batch
    server_ticks = cpu[f"pid{server.pid}_ticks"]
    secs = cpu["seconds"]
    return Run(
        scenario=name,
        conns=conns,
        events_per_s=events / result["duration_s"],
        requests_per_s=result["requests"] / result["duration_s"],
        p50_ms=result["p50_ms"],
        p99_ms=result["p99_ms"],
        non2xx=int(result["non2xx"]),
        errors=int(result["errors"]),
        server_cpu_pct=cpu[f"pid{server.pid}_pct"],
        indexer_cpu_pct=cpu.get(f"pid{indexer}_pct", 0.0) if indexer else 0.0,
        wrk_cpu_pct=100.0 * wrk_ticks / TICK / secs,
        others_pct=cpu["others_pct"],
        server_hwm_mib=server_hwm / 1024,
        indexer_hwm_mib=None if indexer_hwm is None else indexer_hwm / 1024,
        server_cpu_us_per_event=1e6 * server_ticks / TICK / max(events, 1),
        acked=acked,
        stored=stored,
        indexed_at_stop=indexed,
        stop_s=stop_s,
        killed=killed,
        code=code,
    )


# -- reporting ---------------------------------------------------------------------------


def fmt_run(r: Run) -> str:
    idx = "-" if r.indexer_hwm_mib is None else f"{r.indexer_hwm_mib:.0f}"
    ok = "ok" if r.stored >= r.acked else "LOST"
    return (
        f"| {r.scenario} c{r.conns} | {r.events_per_s:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | "
        f"{r.non2xx} | {r.server_cpu_pct:.0f} | {r.indexer_cpu_pct:.0f} | {r.wrk_cpu_pct:.0f} | "
        f"{r.others_pct:.1f} | {r.server_cpu_us_per_event:.0f} | {r.server_hwm_mib:.0f} | {idx} | "
        f"{r.acked:,} / {r.stored:,} {ok} | {r.indexed_at_stop:,} | {r.code} | "
        f"{'' if r.kept else 'discarded (noise)'} |"
    )


HEADER = (
    "| scenario | events/s | p50 ms | p99 ms | non-2xx | server CPU % | indexer CPU % | wrk CPU % | "
    "others CPU % | server CPU µs/event | server VmHWM MiB | indexer VmHWM MiB | "
    "acked / stored | indexed at stop | code | note |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def summary_row(runs: list[Run]) -> str:
    med = statistics.median
    r0 = runs[0]
    eps = sorted(r.events_per_s for r in runs)
    spread = (eps[-1] - eps[0]) / med(eps) * 100 if len(eps) > 1 else 0.0
    hwm_idx = [r.indexer_hwm_mib for r in runs if r.indexer_hwm_mib is not None]
    return (
        f"| {r0.scenario} c{r0.conns} | **{med(eps):,.0f}** | "
        f"{', '.join(f'{r.events_per_s:,.0f}' for r in runs)} | {spread:.0f}% | "
        f"{med(r.p50_ms for r in runs):.2f} | {med(r.p99_ms for r in runs):.2f} | "
        f"{med(r.server_cpu_us_per_event for r in runs):.0f} | "
        f"{max(r.server_hwm_mib for r in runs):.0f} | "
        f"{(max(hwm_idx) if hwm_idx else 0):.0f} | "
        f"{max(r.others_pct for r in runs):.1f} | "
        f"{'all' if all(r.stored >= r.acked for r in runs) else 'NOT all'} | "
        f"{', '.join(sorted({r.code for r in runs}))} |"
    )


SUMMARY_HEADER = (
    "| scenario | events/s (median) | runs | spread | p50 ms | p99 ms | server CPU µs/event | "
    "server VmHWM MiB (max) | indexer VmHWM MiB (max) | others CPU % (max) | stored >= acked | "
    "code |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=["single", "batch", "all"], default="all")
    parser.add_argument("--runs", type=int, default=3, help="kept runs per scenario")
    parser.add_argument("--duration", type=int, default=10, help="measured seconds per run")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up seconds per run")
    parser.add_argument("--single-conns", type=int, default=64)
    parser.add_argument("--batch-conns", type=int, default=8)
    parser.add_argument(
        "--max-noise",
        type=float,
        default=8.0,
        help="discard a run where other processes used more than this %% of a core",
    )
    parser.add_argument("--max-attempts", type=int, default=8, help="runs tried per scenario")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=120.0,
        help="seconds to wait for a quiet machine before each run",
    )
    parser.add_argument("--tmp", default=tempfile.gettempdir(), help="where data dirs are made")
    parser.add_argument("--keep", action="store_true", help="keep the data directories")
    parser.add_argument("--json", help="also write every run as JSON to this file")
    args = parser.parse_args()
    if args.duration + args.warmup > 25:
        parser.error("a run must stay under 30 s: --duration + --warmup <= 25")

    names = ["single", "batch"] if args.scenario == "all" else [args.scenario]
    conns = {"single": args.single_conns, "batch": args.batch_conns}
    print(
        f"# auditlog ingest benchmark, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, "
        f"{os.cpu_count()} CPUs, wrk -t1, warm-up {args.warmup} s + {args.duration} s, "
        f"code {code_version()}"
    )
    all_runs: list[Run] = []
    summaries = []
    for name in names:
        kept: list[Run] = []
        attempts = 0
        while len(kept) < args.runs and attempts < args.max_attempts:
            attempts += 1
            waited = 0.0
            while (noise := others_now()) > args.max_noise and waited < args.quiet_wait:
                print(f"  (machine busy: others use {noise:.0f}% of a core; waiting)", flush=True)
                time.sleep(4)
                waited += 5
            run = one_run(name, conns[name], args)
            run.kept = run.others_pct <= args.max_noise
            all_runs.append(run)
            if run.kept:
                kept.append(run)
            print(fmt_run(run) if len(all_runs) > 1 else HEADER + "\n" + fmt_run(run), flush=True)
        if len(kept) < args.runs:
            print(
                f"  WARNING: only {len(kept)} quiet runs of {name} in {attempts} attempts; "
                "the summary uses the least noisy runs"
            )
            extra = sorted(
                (r for r in all_runs if r.scenario == name and not r.kept),
                key=lambda r: r.others_pct,
            )
            kept += extra[: args.runs - len(kept)]
        summaries.append(summary_row(kept))
    print()
    print(SUMMARY_HEADER)
    for row in summaries:
        print(row)
    lost = [r for r in all_runs if r.stored < r.acked]
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in all_runs], indent=1))
    if lost:
        print("ERROR: a run stored fewer events than it acknowledged", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

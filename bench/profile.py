#!/usr/bin/env python3
"""Where the server's CPU goes: py-spy profiles of the write path, the integrator and the indexer.

For each load (``single``: one event per request, ``post_event.lua`` with 32 connections;
``batch``: 1,000 events per request, ``post_batch.lua`` with 8), a fresh SQLite store is served
(``auditlog serve``, every feature on: durable commit, integrator, metrics, rate limits, the
indexer process) and loaded with wrk for ``--seconds``, while ``py-spy record`` samples the server
process and, separately, its search indexer child (``--rate`` samples a second, idle threads
left out). The integrator runs in the server's event loop, so its share is the
``service/integrator.py`` frames of the server's profile.

Each profile is summarised in ``bench/profiles/<load>-<process>.txt``: the functions with the
most samples on the CPU, by self time (the function itself) and by inclusive time (it and what
it calls), as percentages of the process's samples; and the share of a few named parts of the
path (HTTP parsing, validation, canonical bytes, the group commit, hashing, signing, metrics).
The raw collapsed stacks are written beside it (``.collapsed``, py-spy's raw format) for a
flame graph (``flamegraph.pl`` or speedscope).

py-spy takes a thread waiting in the disk's flush (``fsync``, in SQLite's commit) for one on
the CPU, so the writer thread's share overstates its CPU. ``--gil`` samples only the thread
holding the GIL, which is the process's Python work (SQLite and hashing let go of the GIL):
those profiles are written as ``<load>-<process>-gil``. ``perf record -g -p PID`` gives the
split between Python, the kernel and SQLite that neither shows.

Reproduce:  .venv/bin/python bench/profile.py
            .venv/bin/python bench/profile.py --gil
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from harness import BackgroundWrk, reproduce  # noqa: E402
from ingest import children, code_version, create_key, free_port, start_server, stop_server  # noqa: E402

PY_SPY = str(Path(sys.executable).parent / "py-spy")
OUT = BENCH / "profiles"
LOADS = {"single": ("post_event.lua", 32), "batch": ("post_batch.lua", 8)}
#: Parts of the path, by the file (or function) their frames come from.
PARTS = {
    "HTTP (uvicorn, httptools, our ASGI layer)": ("uvicorn/", "httptools", "server/asgi.py"),
    "routing, auth, rate limits": (
        "server/routing.py",
        "server/app.py",
        "service/auth.py",
        "service/ratelimit.py",
    ),
    "validation (model/event.py)": ("model/event.py", "model/fields.py", "model/batch.py"),
    "tokenising (model/text.py)": ("model/text.py",),
    "canonical bytes and JSON (orjson)": ("model/canonical.py", "orjson"),
    "ingest queue and group commit": (
        "service/ingest.py",
        "storage/sqlite/events.py",
        "storage/sqlite/base.py",
        "storage/base.py",
    ),
    "integrator": ("service/integrator.py", "service/treelog.py", "integrity/"),
    "metrics (prometheus_client)": ("prometheus_client", "auditlog/metrics.py"),
    "asyncio and uvloop": ("asyncio/", "uvloop"),
    "indexer": ("storage/sqlite/indexer.py", "storage/sqlite/terms.py"),
}
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>.*?)(?::\d+)?\)$")


def record(pid: int, seconds: int, rate: int, out: Path, gil: bool) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [PY_SPY, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", str(rate),
         "--format", "raw", "--nonblocking", *(["--gil"] if gil else []), "-o", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def short(path: str) -> str:
    for marker in ("/site-packages/", "/src/", "/lib/python3"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def summarise(collapsed: Path, title: str, top: int) -> str:
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    parts: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        total += count
        frames = []
        for raw in stack.split(";"):
            m = _FRAME.match(raw)
            frames.append(f"{m['func']} ({short(m['file'])})" if m else raw)
        self_time[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
        # A sample counts for the innermost named part its stack passes through.
        for frame in reversed(frames):
            name = next((p for p, keys in PARTS.items() if any(k in frame for k in keys)), None)
            if name is not None:
                parts[name] += count
                break
        else:
            parts["other"] += count
    if not total:
        return f"{title}: no samples\n"
    lines = [f"{title}: {total} samples", "", "by part of the path (innermost part of each stack):"]
    lines += [f"  {100 * n / total:5.1f} %  {name}" for name, n in parts.most_common()]
    lines += ["", f"top {top} by self time:"]
    lines += [f"  {100 * n / total:5.1f} %  {f}" for f, n in self_time.most_common(top)]
    lines += ["", f"top {top} by inclusive time (our code, below the entry points):"]
    ours = [
        (f, n)
        for f, n in inclusive.most_common()
        if "(auditlog/" in f and "(auditlog/cli/" not in f and not f.startswith("<module>")
        and " main (" not in f and " run_loop (" not in f and " run (" not in f
    ]  # fmt: skip
    lines += [f"  {100 * n / total:5.1f} %  {f}" for f, n in ours[:top]]
    return "\n".join(lines) + "\n"


def profile(load: str, args: argparse.Namespace) -> list[Path]:
    script, conns = LOADS[load]
    root = Path(tempfile.mkdtemp(prefix=f"profile-{load}-"))
    data = str(root / "data")
    key = create_key(data)
    port = free_port()
    server = start_server(data, port)
    written = []
    try:
        time.sleep(1)
        kids = children(server.pid)
        wrk = BackgroundWrk(script, conns, args.seconds + 4, port, key, str(root))
        wrk.start()
        time.sleep(2)  # past the start of the load
        suffix = "-gil" if args.gil else ""
        spies = [
            (
                f"{load}-server{suffix}",
                record(server.pid, args.seconds, args.rate, root / "s.raw", args.gil),
            )
        ]
        if kids:
            spies.append(
                (
                    f"{load}-indexer{suffix}",
                    record(kids[0], args.seconds, args.rate, root / "i.raw", args.gil),
                )
            )
        for name, spy in spies:
            _, err = spy.communicate(timeout=args.seconds + 60)
            raw = root / ("s.raw" if "-server" in name else "i.raw")
            if spy.returncode != 0 or not raw.exists():
                raise RuntimeError(f"py-spy failed for {name}: {err.decode()[-500:]}")
            collapsed = OUT / f"{name}.collapsed"
            collapsed.write_text(raw.read_text())
            summary = OUT / f"{name}.txt"
            summary.write_text(summarise(raw, name, args.top))
            written.append(summary)
        fields, _ = wrk.join()
        print(f"  {load}: {fields['rps']:,.0f} requests/s during the profile", flush=True)
    finally:
        stop_server(server)
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples a second")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--gil", action="store_true", help="sample only the GIL's holder")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    print(
        f"code {code_version()}, {os.cpu_count()} CPUs, py-spy at {args.rate} Hz for {args.seconds} s"
    )
    for load in LOADS:
        for summary in profile(load, args):
            print()
            print(summary.read_text())
    print(reproduce("profile.py", sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

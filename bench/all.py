#!/usr/bin/env python3
"""The whole benchmark set in one run, written as one dated file: every later change can be
compared with one command.

In one sitting, in this order (each its own script, run as it is documented):

1. ``baseline.py``: a bare uvicorn ASGI app that reads the body and answers 201, the HTTP
   ceiling of this machine;
2. ``ingest.py``: one SQLite server, single events and batches of 1,000;
3. ``postgres.py --part ingest``: several processes on one PostgreSQL database;
4. ``query.py``: first pages of typical queries at ``--events`` (1,000,000) on SQLite, and
   ``postgres.py --part query`` the same on PostgreSQL;
5. ``indexer.py``: the search index rebuilt from scratch over the query store;
6. ``integrity.py``: checkpoint lag under full ingest, proofs and ``verify``.

Every table row a script prints is kept, under its script's heading; each ingest figure (a bold
median of events/s) is also given as a ratio to the baseline's median. The file is
``bench/results/<date>.md`` (``--out`` to choose), with the code version and the machine.
``--quick`` shortens every part (fewer runs, 100,000 events) to check that the set runs; its
figures are not for comparison.

Reproduce:  .venv/bin/python bench/all.py
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from ingest import code_version  # noqa: E402

PYTHON = sys.executable
_BOLD = re.compile(r"\*\*([\d,]+)\*\*")


def parts(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    quick = args.quick
    events = "100000" if quick else str(args.events)
    runs = ["--runs", "1"] if quick else []
    data = str(args.scratch / "query")
    return [
        ("baseline", ["baseline.py", *runs]),
        ("SQLite ingest", ["ingest.py", *runs, *(["--duration", "5"] if quick else [])]),
        ("PostgreSQL ingest", ["postgres.py", "--part", "ingest", *runs]),
        ("SQLite queries", ["query.py", "--data", data, "--events", events,
                            *(["--rounds", "1", "--samples", "10"] if quick else [])]),
        ("PostgreSQL queries", ["postgres.py", "--part", "query", *runs]),
        ("SQLite indexer", ["indexer.py", "--data", data, *(["--runs", "1"] if quick else [])]),
        ("integrity", ["integrity.py", "--data", data, *(["--only", "lag"] if quick else [])]),
    ]  # fmt: skip


def table_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("|")]


def ratios(rows: list[str], baseline: float | None) -> list[str]:
    """For each row with a bold median, a line giving that median's ratio to the baseline."""
    if not baseline:
        return []
    out = []
    for row in rows:
        match = _BOLD.search(row)
        if match:
            value = float(match.group(1).replace(",", ""))
            name = row.strip("|").split("|")[0].strip()
            out.append(f"- {name}: {value:,.0f} events/s, {value / baseline:.2f} of the baseline")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/auditlog-bench-all"))
    parser.add_argument("--out", type=Path)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", action="append", help="run only these parts (by heading)")
    args = parser.parse_args()
    args.scratch.mkdir(parents=True, exist_ok=True)
    today = datetime.date.today().isoformat()
    out = args.out or BENCH / "results" / f"{today}{'-quick' if args.quick else ''}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        f"# Benchmarks, {today}",
        "",
        f"Code {code_version()}, {os.cpu_count()} CPUs, `{' '.join(['bench/all.py', *sys.argv[1:]])}`"
        + (" (quick: not for comparison)" if args.quick else ""),
        "",
    ]
    baseline: float | None = None
    failed = []
    for heading, argv in parts(args):
        if args.only and heading not in args.only:
            continue
        print(f"== {heading}: {' '.join(argv)}", flush=True)
        started = time.monotonic()
        done = subprocess.run(
            [PYTHON, str(BENCH / argv[0]), *argv[1:]], capture_output=True, text=True,
            check=False,
        )  # fmt: skip
        took = time.monotonic() - started
        text = done.stdout + done.stderr
        rows = table_rows(done.stdout)
        if heading == "baseline":
            medians = [_BOLD.search(r) for r in rows]
            found = [float(m.group(1).replace(",", "")) for m in medians if m]
            baseline = found[0] if found else None
        elif heading.endswith("ingest"):
            rows = [*rows, "", *ratios(rows, baseline)]
        lines += [f"## {heading} ({took:.0f} s)", "", f"`bench/{' '.join(argv)}`", ""]
        if done.returncode != 0:
            failed.append(heading)
            lines += [f"failed (exit {done.returncode}):", "", "```", text[-3000:], "```", ""]
        elif rows:
            lines += [*rows, ""]
        else:  # a script that prints no table: its last lines as they came
            lines += ["```", *done.stdout.strip().splitlines()[-40:], "```", ""]
        out.write_text("\n".join(lines) + "\n")
        print(f"   {took:.0f} s, exit {done.returncode}", flush=True)
    if baseline:
        lines.insert(4, f"Baseline (bare uvicorn, `post_fixed.lua`): {baseline:,.0f} POSTs/s, "
                        f"{baseline / 43000:.2f} of 43,000.\n")  # fmt: skip
    out.write_text("\n".join(lines) + "\n")
    print(f"written to {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

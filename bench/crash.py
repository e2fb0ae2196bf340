#!/usr/bin/env python3
"""Crash test, long form: many SIGKILLs of a loaded ``auditlog serve``, none may lose an event.

Each round: producer threads (httpx, one keep-alive connection each) write single events and
batches (JSON arrays and NDJSON; with producer-chosen ids, without, and mixed) for two tenants
to a running server; after the first answer and a random further delay of up to
``--seconds-per-round`` s the server is killed with SIGKILL; a new server is started on the same
store; every request that got no answer and whose events all carry ids is retried (as a
producer would: it must be answered 200 or 201); then every tenant's whole log is read back and
checked against everything ever sent (tests/reliability/ledger.py):

* lost: acknowledged (2xx) events that are not stored (must be 0);
* duplicates: events stored more than once (must be 0);
* partial: requests without an answer of which only some events are stored (must be 0);
* changed: stored bytes or seq that differ from the answer (must be 0);
* seq gaps (must be 0).

After the last round the server gets SIGTERM (exit status 0 expected), ``auditlog verify``
checks every log against its signed checkpoints, and SQLite's ``PRAGMA integrity_check`` runs
on both database files. The store accumulates over all rounds, so every kill also puts the
events of all earlier rounds at risk.

Reproduce:  .venv/bin/python bench/crash.py --kills 30 --seconds-per-round 2 --seed N
            (the seed, printed at the start, fixes the kill moments and the requests)
Everything goes to 127.0.0.1; every round is bounded and the script stops by itself; it stops
only the servers it started, by their pid.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from ingest import code_version  # noqa: E402

from live_server import Storage  # noqa: E402
from reliability.crashing import CrashRun  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=30, help="SIGKILLs (rounds), default 30")
    parser.add_argument(
        "--seconds-per-round",
        type=float,
        default=2.0,
        help="the kill comes up to this many seconds after the first answer (default 2)",
    )
    parser.add_argument("--workers", type=int, default=8, help="producer threads (default 8)")
    parser.add_argument("--seed", type=int, default=None, help="default: a random one")
    parser.add_argument("--data", help="data directory (default: a fresh temporary one)")
    parser.add_argument("--store", help="a store URL instead of --data (e.g. postgresql://...)")
    parser.add_argument(
        "--fetch-limit",
        type=int,
        default=200,
        help="acknowledged single events also fetched by id after each kill (default 200)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    workdir = Path(tempfile.mkdtemp(prefix="auditlog-crash-"))
    if args.store:
        storage = Storage.at(args.store)
        where = args.store
    else:
        data = Path(args.data) if args.data else workdir / "data"
        storage = Storage.sqlite(data)
        where = str(data)
    print(
        f"crash run: code {code_version()}, seed {seed}, {args.kills} kills, up to "
        f"{args.seconds_per_round:g} s per round, {args.workers} producers, store {where}",
        flush=True,
    )
    run = CrashRun(
        storage,
        workdir,
        seed=seed,
        seconds=args.seconds_per_round,
        workers=args.workers,
        fetch_limit=args.fetch_limit,
    )
    started = time.monotonic()
    failed = False
    try:
        run.start()
        for _ in range(args.kills):
            done = run.crash_round()
            r = done.report
            print(
                f"kill {done.number:3d} after {done.kill_after:5.2f} s: {done.requests:5d} "
                f"requests this round, {done.unanswered} cut off ({done.in_flight} in flight; "
                f"{done.retried} retried, "
                f"{done.committed_unanswered} of them already stored); "
                f"log {r.stored_events} events, acknowledged {r.acknowledged_events}, "
                f"lost {r.lost}, duplicates {r.duplicates}, partial {r.partial}, "
                f"changed {r.changed}, seq gaps {r.seq_gaps}",
                flush=True,
            )
            for problem in r.problems:
                print(f"  PROBLEM: {problem}", flush=True)
            if r.problems:
                failed = True
                break
        returncode, verified, integrity = run.finish()
    finally:
        run.stop()
    last = run.rounds[-1].report if run.rounds else None
    cut_off = sum(d.unanswered for d in run.rounds)
    retried = sum(d.retried for d in run.rounds)
    committed = sum(d.committed_unanswered for d in run.rounds)
    verify_line = verified.strip().splitlines()[-1] if verified.strip() else "(no output)"
    print()
    print(f"kills: {len(run.rounds)} in {time.monotonic() - started:.0f} s (seed {seed})")
    if last is not None:
        print(f"requests sent: {len(run.ledger.requests)}, cut off by a kill: {cut_off}")
        print(f"  of these retried with the same ids after the restart: {retried}")
        print(f"    answered 200 (stored before the kill, answer lost): {committed}")
        print(f"  without an answer and not retried, found stored whole: {last.unanswered_stored}")
        print(f"acknowledged events: {last.acknowledged_events}")
        print(f"stored events (both tenants): {last.stored_events}")
        print(f"lost events: {last.lost}")
        print(f"duplicates: {last.duplicates}")
        print(f"partially stored requests: {last.partial}")
        print(f"changed (bytes or seq differ from the answer): {last.changed}")
        print(f"seq gaps: {last.seq_gaps}")
    print(f"SIGTERM exit status of the last server: {returncode}")
    print(f"auditlog verify: {verify_line}")
    if storage.sqlite_file is None:
        print("PRAGMA integrity_check: not applicable (not SQLite)")
    else:
        print(f"PRAGMA integrity_check: {integrity or '(not run)'}")
    where_flag = f" --store '{args.store}'" if args.store else ""
    print(
        f"reproduce: .venv/bin/python bench/crash.py --kills {args.kills} "
        f"--seconds-per-round {args.seconds_per_round:g} --workers {args.workers} "
        f"--seed {seed}{where_flag}"
    )
    ok = not failed and returncode == 0 and verify_line.startswith("intact") and integrity == "ok"
    if args.keep or not ok:
        print(f"work directory kept: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    print("RESULT: " + ("no acknowledged event lost" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

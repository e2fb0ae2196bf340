#!/usr/bin/env python3
"""What a group commit costs SQLite, by group size: CPU per event and per commit.

A fresh database in ``--tmp`` with the events table and its indexes as the store makes them
(WAL, ``synchronous=FULL``), written the way the writer thread writes a group: ``BEGIN
IMMEDIATE``, read the tenant's size, one multi-row ``INSERT``, write the size back,
``COMMIT``. Events are ~380-byte bodies of 20 types. Process CPU (user + system, the WAL
writes and flushes included) per event and per commit, and wall time per commit.

Reproduce:  .venv/bin/python bench/sqlite_groups.py
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

SCHEMA = """
CREATE TABLE tenants (tenant_id INTEGER PRIMARY KEY, name TEXT NOT NULL, size INTEGER NOT NULL);
CREATE TABLE events (key INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, id TEXT NOT NULL,
                     type TEXT NOT NULL, time_us INTEGER NOT NULL, body BLOB NOT NULL);
CREATE UNIQUE INDEX events_id ON events (tenant_id, id);
CREATE INDEX events_type ON events (tenant_id, type, key, time_us);
CREATE INDEX events_time ON events (tenant_id, time_us);
INSERT INTO tenants VALUES (1, 'acme', 0);
"""


def run(path: Path, group: int, events: int) -> tuple[float, float, float]:
    """(CPU µs per event, CPU µs per commit, wall µs per commit)."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA cache_size = -65536")
    conn.executescript(SCHEMA)
    body = os.urandom(190).hex().encode()
    key, time_us = 1 << 40, 1_700_000_000_000_000
    marks = ",".join(["(?,?,?,?,?,?)"] * group)
    commits = events // group
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(commits):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("SELECT size FROM tenants WHERE tenant_id = 1").fetchone()
        values: list[object] = []
        for _ in range(group):
            key += 1
            time_us += 37
            values += [key, 1, f"01J{key:023d}", f"type.{key % 20}", time_us, body]
        conn.execute(f"INSERT INTO events VALUES {marks}", values)
        conn.execute("UPDATE tenants SET size = ? WHERE tenant_id = 1", (key,))
        conn.execute("COMMIT")
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    conn.close()
    return cpu / (commits * group) * 1e6, cpu / commits * 1e6, wall / commits * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--groups", default="1,5,10,20,50,200")
    parser.add_argument("--tmp", default=tempfile.gettempdir())
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.tmp) as scratch:
        path = Path(scratch) / "groups.db"
        print("| events a commit | CPU µs an event | CPU µs a commit | wall µs a commit |")
        print("|---|---|---|---|")
        for group in (int(g) for g in args.groups.split(",")):
            per_event, per_commit, wall = run(path, group, args.events)
            print(f"| {group} | {per_event:.1f} | {per_commit:.0f} | {wall:.0f} |")
    print(f"\nReproduce: .venv/bin/python bench/sqlite_groups.py --events {args.events}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""One integrator per deployment on PostgreSQL: the turn moves when its holder dies.

Two ``auditlog serve`` processes on one database. Exactly one holds the integrator's lock (a
session advisory lock on a connection of its own, ``application_name`` auditlog-integrator);
which one is found from ``pg_locks`` and the lock's client port, matched to the process that
owns that TCP connection. That process is killed with SIGKILL, as a crash would; the other
takes the turn, and the checkpoints go on covering what is written through it, within seconds.
At the end ``auditlog verify`` finds every checkpoint consistent with the one tree recomputed
from the events: no leaf was hashed into two different trees.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import psycopg
import pytest

import pgtest
from auditlog.storage.postgres import database
from live_server import Server, Storage, auditlog, create_key, serving_many, storage_flags

pytestmark = pytest.mark.slow

#: Seconds for the turn to move and the survivor's checkpoint to cover new events.
TAKEOVER_SECONDS = 30.0


def lock_holders(url: str) -> list[int]:
    """The client ports of the sessions that hold this deployment's integrator lock (its
    database and schema: other deployments on the server hold locks of their own)."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT a.client_port FROM pg_locks AS l JOIN pg_stat_activity AS a USING (pid)"
            " WHERE l.locktype = 'advisory' AND l.granted"
            " AND a.application_name = 'auditlog-integrator'"
            " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND l.classid::bigint = %s"
            " AND l.objid::bigint = hashtext(current_schema())::bigint & 4294967295",
            (database.LOCK_INTEGRATOR,),
        ).fetchall()
    return [int(port) for (port,) in rows if port is not None]


def socket_inodes(pid: int) -> set[str]:
    """The inodes of the sockets the process ``pid`` has open."""
    found = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            found.add(target[len("socket:[") : -1])
    return found


def owner_of_port(servers: list[Server], port: int) -> Server:
    """The server process that owns the TCP connection whose local port is ``port``."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    alive = [s for s in servers if s.process.poll() is None]
    owners = [s for s in alive if socket_inodes(s.process.pid) & inodes]
    assert len(owners) == 1, f"port {port}: owners {[s.process.pid for s in owners]}"
    return owners[0]


def holder(url: str, servers: list[Server], deadline: float) -> Server:
    while True:
        ports = lock_holders(url)
        if len(ports) == 1:
            return owner_of_port(servers, ports[0])
        assert len(ports) <= 1, f"the integrator's lock is held {len(ports)} times"
        assert time.monotonic() < deadline, "no process took the integrator's lock"
        time.sleep(0.1)


def write_and_wait_covered(server: Server, token: str, n: int, deadline: float) -> int:
    """Write ``n`` events through ``server``; the checkpoint size once it covers them."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=10) as client:
        seqs = []
        for i in range(n):
            answer = client.post("/v1/events", json={"type": "lease.test", "data": {"i": i}})
            assert answer.status_code == 201, answer.text
            seqs.append(answer.json()["seq"])
        while True:
            size = client.get("/v1/log/checkpoint").json()["tree_size"]
            if size > max(seqs):
                return int(size)
            assert time.monotonic() < deadline, f"no checkpoint past seq {max(seqs)}: {size}"
            time.sleep(0.1)


def test_the_integrator_turn_moves_when_its_holder_is_killed(tmp_path: Path) -> None:
    url = pgtest.private_url()
    storage = Storage.at(url)
    with serving_many(storage, tmp_path, 2, "--checkpoint-interval-ms", "100") as servers:
        token = create_key(storage, "acme", "events:write,events:read,log:read")
        first = write_and_wait_covered(servers[0], token, 20, time.monotonic() + 20)
        holding = holder(url, servers, time.monotonic() + 20)
        survivor = next(s for s in servers if s is not holding)
        killed_at = time.monotonic()
        holding.kill()
        covered = write_and_wait_covered(survivor, token, 20, killed_at + TAKEOVER_SECONDS)
        assert covered > first
        assert holder(url, servers, time.monotonic() + 10) is survivor
        # The survivor keeps integrating: more writes, more checkpoints.
        again = write_and_wait_covered(survivor, token, 10, time.monotonic() + 10)
        assert again > covered
    checked = auditlog("verify", *storage_flags(storage))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "intact" in checked.stdout

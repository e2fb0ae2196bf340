"""SIGKILL of the service while its schedule prunes, with ingest and queries going on.

A tenant's first ``OLD`` events are archived and become due; the service is started with a
pruning round every second (the first at once: moving the horizon, then sweeping the ``OLD``
rows and their index entries in steps) and killed with SIGKILL: the first time right after
it starts, then each time once the sweep has removed a random part of the rows (watched in
the store), while a producer writes and a reader queries. After every kill
the store is checked offline (``auditlog verify``, and on SQLite ``PRAGMA
integrity_check`` and the full-text index's own check); at the end the prune has finished:
the horizon is at ``OLD``, no row below it is left, every event acknowledged after it is
there, and a pruned id answers 404 saying so.

Bounded: ``ROUNDS`` kills, each round at most a few seconds, on 127.0.0.1 only.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from live_server import (
    LOAD,
    Server,
    Storage,
    all_events,
    auditlog,
    create_key,
    storage_flags,
    verify,
)
from reliability.crashing import CRASH_FLAGS, sqlite_integrity

pytestmark = [pytest.mark.slow, LOAD]

OLD = 12_000
ROUNDS = 4
KEEP_SECONDS = 2
SWEEP_WAIT = 10.0
SCOPES = "events:write,events:read,log:read"


def _batch(prefix: str, start: int, count: int) -> list[dict[str, object]]:
    return [
        {"id": f"{prefix}{i}", "type": "load.test", "data": {"n": i, "w": "quince"}}
        for i in range(start, start + count)
    ]


def _write_old(server: Server, token: str) -> None:
    with httpx.Client(base_url=server.url, timeout=30.0) as client:
        client.headers["authorization"] = f"Bearer {token}"
        for start in range(0, OLD, 1000):
            answer = client.post("/v1/events", json=_batch("old", start, 1000))
            assert answer.status_code == 201, answer.text
        deadline = time.monotonic() + 30
        while client.get("/v1/log/checkpoint").json()["tree_size"] < OLD:
            assert time.monotonic() < deadline, "no checkpoint covered the events"
            time.sleep(0.1)


def _load_until_killed(
    server: Server, token: str, round_: int, acked: dict[str, int], problems: list[str]
) -> None:
    """Write and query until the server goes away (it is killed meanwhile); what went wrong
    goes to ``problems``."""
    with httpx.Client(base_url=server.url, timeout=5.0) as client:
        client.headers["authorization"] = f"Bearer {token}"
        for number in range(1000):
            try:
                answer = client.post("/v1/events", json=_batch(f"r{round_}-", number * 20, 20))
                if answer.status_code != 201:
                    problems.append(f"write: {answer.status_code} {answer.text}")
                    return
                for event in answer.json()["events"]:
                    acked[event["id"]] = event["seq"]
                first_kept = horizon(client)
                found = client.get(
                    "/v1/events", params={"q": "quince", "order": "asc", "limit": "5"}
                )
                if found.status_code != 200:
                    problems.append(f"query: {found.status_code} {found.text}")
                    return
                seqs = [e["seq"] for e in found.json()["events"]]
                if any(seq < first_kept for seq in seqs):
                    problems.append(f"query below the horizon {first_kept}: {seqs}")
            except httpx.HTTPStatusError as exc:
                problems.append(f"GET /v1/log/pruned: {exc}")
                return
            except httpx.TransportError:
                return


def horizon(client: httpx.Client) -> int:
    answer = client.get("/v1/log/pruned")
    answer.raise_for_status()
    return int(answer.json()["horizon"])


def _rows_below(storage: Storage, horizon: int) -> int:
    if storage.sqlite_file is not None:
        conn = sqlite3.connect(storage.sqlite_file)
        try:
            row = conn.execute(
                "SELECT count(*) FROM events AS e JOIN tenants AS n USING (tenant_id)"
                " WHERE n.name = 't' AND e.key < (n.tenant_id << 40) + ?",
                (horizon,),
            ).fetchone()
            return int(row[0])
        finally:
            conn.close()
    with psycopg.connect(storage.flags[1]) as conn:
        found = conn.execute(
            "SELECT count(*) FROM events AS e JOIN tenants AS n USING (tenant_id)"
            " WHERE n.name = 't' AND e.seq < %s",
            (horizon,),
        ).fetchone()
        return int(found[0]) if found else 0


def _wait_for_sweep(storage: Storage, fraction: float) -> None:
    """Return once the sweep has removed ``fraction`` of the old rows (or all there were),
    polling the store; at most ``SWEEP_WAIT`` seconds."""
    deadline = time.monotonic() + SWEEP_WAIT
    while time.monotonic() < deadline:
        left = _rows_below(storage, OLD)
        if left <= OLD * (1 - fraction) or left == 0:
            return
        time.sleep(0.005)


def _check_offline(storage: Storage) -> None:
    checked = verify(storage)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    if storage.sqlite_file is not None:
        assert sqlite_integrity(storage) == "ok"
        terms = sqlite3.connect(f"{storage.sqlite_file}-terms")
        try:
            terms.execute("INSERT INTO events_terms (events_terms) VALUES ('integrity-check')")
        finally:
            terms.close()


def test_sigkill_during_a_scheduled_prune_leaves_a_log_that_verifies(
    storage: Storage, tmp_path: Path
) -> None:
    rng = random.Random(20261206)
    token = create_key(storage, "t", SCOPES)
    log = tmp_path / "serve.log"
    server = Server(storage, log, *CRASH_FLAGS, "--prune-interval-seconds", "0")
    try:
        server.wait_ready()
        _write_old(server, token)
    finally:
        server.stop()
    made = auditlog(
        "archive", "--tenant", "t", "--through-seq", str(OLD - 1), "-o",
        str(tmp_path / "old.zip"), *storage_flags(storage),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    policy = auditlog("retention", "set", "--tenant", "t", "--keep", f"{KEEP_SECONDS}s",
                      *storage_flags(storage))  # fmt: skip
    assert policy.returncode == 0, policy.stderr
    time.sleep(KEEP_SECONDS + 0.5)  # the old events are due now; what follows is not archived

    acked: dict[str, int] = {}
    left: list[int] = []  # rows below the horizon after each kill
    problems: list[str] = []  # of the writes and queries while the prune ran
    for round_ in range(ROUNDS):
        server = Server(storage, log, *CRASH_FLAGS, "--prune-interval-seconds", "1")
        try:
            server.wait_ready()
            loader = threading.Thread(
                target=_load_until_killed,
                args=(server, token, round_, acked, problems),
                daemon=True,
            )
            loader.start()
            # The first round is killed right after the start (before or as the horizon
            # moves); the others once the sweep has removed a random part of the rows.
            _wait_for_sweep(storage, rng.uniform(0.1, 0.9) if round_ else 0.0)
            server.kill()
            loader.join(timeout=30)
        finally:
            server.stop()
        left.append(_rows_below(storage, OLD))
        assert not problems, problems
        _check_offline(storage)

    server = Server(storage, log, *CRASH_FLAGS, "--prune-interval-seconds", "1")
    try:
        server.wait_ready()
        with httpx.Client(base_url=server.url, timeout=30.0) as client:
            client.headers["authorization"] = f"Bearer {token}"
            deadline = time.monotonic() + 60
            while client.get("/v1/log/pruned").json()["horizon"] < OLD:
                assert time.monotonic() < deadline, "the prune did not finish"
                time.sleep(0.2)
            time.sleep(1.5)  # a round that started before the horizon check finishes its sweep
            assert client.get("/v1/log/pruned").json()["horizon"] == OLD  # no archive past it
            gone = client.get("/v1/events/old5")
            assert gone.status_code == 404
            assert "pruned" in gone.json()["detail"]
            events = [e for e in all_events(client) if not str(e["type"]).startswith("auditlog.")]
            stored = {e["id"]: e["seq"] for e in events}
        assert server.terminate() == 0
    finally:
        server.stop()
    assert all(seq >= OLD for seq in stored.values())
    assert acked == {i: stored.get(i) for i in acked}
    assert _rows_below(storage, OLD) == 0
    _check_offline(storage)
    # At least one kill came in the middle of a sweep (rows removed, and rows left).
    assert any(0 < n < OLD for n in left), left

"""The durable spool: events on disk before ``log`` returns, removed once acknowledged,
resent in order by the next client after an outage, a crash or a ``kill -9`` of the producer;
and spools of live clients never taken over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from auditlog_client import Client
from auditlog_client.spool import Spool, all_pending

from .conftest import Live
from .helpers import WAIT, eventually, stored

PRODUCER = Path(__file__).with_name("producer.py")


def test_append_remove_fail_and_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    ids = [spool.append(f"line {i}".encode()) for i in range(5)]
    assert ids == sorted(ids)
    spool.remove(ids[:2])
    spool.fail([ids[3]], "409 Conflict")
    assert spool.pending() == [(ids[2], b"line 2"), (ids[4], b"line 4")]
    assert spool.failed() == [(b"line 3", "409 Conflict")]
    spool.close()


def test_an_empty_spool_leaves_no_files(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.remove([spool.append(b"x")])
    spool.close()
    assert list(tmp_path.iterdir()) == []


def test_orphans_are_adopted_in_order_and_live_spools_are_not(tmp_path: Path) -> None:
    first, second, alive = Spool(tmp_path), Spool(tmp_path), Spool(tmp_path)
    for i in range(3):
        first.append(f"first {i}".encode())
    first.fail([first.append(b"refused")], "422")
    second.append(b"second 0")
    alive.append(b"alive 0")
    first.close()  # their owners ended: orphans
    second.close()

    heir = Spool(tmp_path)
    assert heir.adopted == 4
    assert [line for _, line in heir.pending()] == [
        b"first 0",
        b"first 1",
        b"first 2",
        b"second 0",
    ]
    assert heir.failed() == [(b"refused", "422")]
    assert [line for _, line in alive.pending()] == [b"alive 0"]  # a live client's: untouched
    assert sorted(all_pending(tmp_path)) == sorted([heir.path, alive.path])
    heir.close()
    alive.close()


def test_events_logged_during_an_outage_are_sent_by_the_next_client(
    live: Live, token: str, tmp_path: Path
) -> None:
    spool_dir = tmp_path / "spool"
    closed_port = "http://127.0.0.1:9"  # nothing listens there
    down = Client(closed_port, token, spool_dir=spool_dir, flush_interval=0.01)
    ids = [down.log("outage.test", data={"i": i}) for i in range(200)]
    assert down.spool is not None
    assert down.spool.count() == 200  # on disk before log returned
    assert not down.close(timeout=0.2)

    up = Client(live.url, token, spool_dir=spool_dir)
    try:
        assert up.flush(WAIT)
        assert up.stats().sent == 200
        assert up.spool is not None
        assert up.spool.count() == 0
    finally:
        up.close()
    assert list(spool_dir.glob("*.db")) == []
    assert [e["id"] for e in stored(live.url, token, type="outage.test")] == ids


def run_producer(live: Live, token: str, spool: Path, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(PRODUCER), live.url, token, str(spool), str(count)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_a_producer_killed_mid_stream_loses_nothing_and_stores_nothing_twice(
    live: Live, token: str, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    first = run_producer(live, token, spool, 5000)
    logged: list[str] = []
    try:
        assert first.stdout is not None
        while len(logged) < 2000:
            line = first.stdout.readline()
            assert line, "the producer ended before it was killed"
            logged.append(line.strip())
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait(WAIT)
    assert first.stdout is not None
    logged += first.stdout.read().split()  # printed before the kill, not read yet
    first.stdout.close()
    assert first.returncode == -signal.SIGKILL

    second = run_producer(live, token, spool, 500)
    out, _ = second.communicate(timeout=120)
    assert second.returncode == 0
    logged += out.split()

    ids = [e["id"] for e in stored(live.url, token, type="spooled")]
    assert len(ids) == len(set(ids)), "an event was stored twice"
    assert set(logged) <= set(ids), "an event logged before the kill was lost"
    # At most the one event whose id the killed producer had not printed yet is extra.
    assert len(ids) - len(logged) <= 1
    assert [i for i in ids if i in set(logged)] == logged  # in the order logged
    assert list(spool.glob("*.db")) == []


def test_a_running_client_adopts_the_spool_of_one_that_ended_beside_it(
    live: Live, token: str, tmp_path: Path
) -> None:
    spool_dir = tmp_path / "spool"
    client = Client(live.url, token, spool_dir=spool_dir, spool_adopt_interval=0.05)
    try:
        own = client.log("adopt.test", data={"who": "alive"})
        assert client.flush(WAIT)
        # A worker beside it logs and dies before sending: its spool is left behind.
        dead = Spool(spool_dir)
        for i in range(3):
            dead.append(f'{{"id":"dead-{i}","type":"adopt.test","data":{{"who":"dead"}}}}'.encode())
        dead.close()
        eventually(lambda: client.stats().sent == 4, "the orphaned events sent")
        assert client.flush(WAIT)
    finally:
        client.close()
    ids = [e["id"] for e in stored(live.url, token, type="adopt.test")]
    assert ids == [own, "dead-0", "dead-1", "dead-2"]
    assert list(spool_dir.glob("*.db")) == []

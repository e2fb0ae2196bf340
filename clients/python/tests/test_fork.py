"""Fork safety: a forked child gets a sender of its own (threads do not survive a fork), an
empty queue and, with a spool, a spool of its own; it never sends its parent's queue, and
the parent still does."""

from __future__ import annotations

import json
import os
import sqlite3
import traceback
import warnings
from pathlib import Path

import pytest
from auditlog_client import Client

from .conftest import Live
from .helpers import WAIT, stored


def fork() -> int:
    with warnings.catch_warnings():  # Python 3.12+ warns of fork() in a threaded process
        warnings.simplefilter("ignore", DeprecationWarning)
        return os.fork()


@pytest.mark.parametrize("spooled", [False, True], ids=["memory", "spool"])
def test_a_forked_child_sends_its_own_events_only(
    live: Live, token: str, tmp_path: Path, spooled: bool
) -> None:
    spool_dir = tmp_path / "spool" if spooled else None
    client = Client(live.url, token, flush_interval=600, spool_dir=spool_dir)
    try:
        first = client.log_sync("fork.before")  # the sender's HTTP client exists before the fork
        parent_ids = [client.log("fork.parent", data={"i": i}) for i in range(5)]
        read_end, write_end = os.pipe()
        pid = fork()
        if pid == 0:  # the child
            status = 1
            try:
                os.close(read_end)
                child_ids = [client.log("fork.child", data={"i": i}) for i in range(3)]
                flushed = client.flush(WAIT)
                stats = client.stats()
                read_back = client.get(first["id"])["id"]  # through a connection of its own
                report = {
                    "ids": child_ids,
                    "flushed": flushed,
                    "sent": stats.sent,
                    "read": read_back,
                }
                client.close()
                os.write(write_end, json.dumps(report).encode())
                status = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(status)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            report = json.loads(pipe.read() or b"{}")
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert report["flushed"] is True
        assert report["sent"] == 3  # its own three, not the parent's five
        assert report["read"] == first["id"]

        assert client.stats().queued == 5  # the parent's queue is still the parent's
        if client.spool is not None:  # and so is its spool, untouched by the child
            assert [json.loads(line)["id"] for _, line in client.spool.pending()] == parent_ids
        assert client.flush(WAIT)
        assert client.stats().sent == 5
    finally:
        client.close()
    assert [e["id"] for e in stored(live.url, token, type="fork.parent")] == parent_ids
    assert [e["id"] for e in stored(live.url, token, type="fork.child")] == report["ids"]
    assert first["type"] == "fork.before"
    if spool_dir is not None:
        for db in spool_dir.glob("*.db"):
            with sqlite3.connect(db) as conn:
                assert conn.execute("SELECT count(*) FROM events").fetchone() == (0,)
            conn.close()

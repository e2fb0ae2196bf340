"""Disk full: SQLite on a small filesystem of the test's own (a size-limited tmpfs).

While producers write, a filler file takes the rest of the space. From then on writes are
answered 503 with Retry-After (never a 5xx of another kind, never a 2xx for an event that was
not stored), reads keep working, and once the filler is removed writes succeed again. The log
then holds exactly what was acknowledged, batches whole, verifies against its checkpoints and
passes ``PRAGMA integrity_check``.

Mounting needs root (CAP_SYS_ADMIN); where it is refused the tests are skipped, saying why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from live_server import Storage, create_key, serving, verify
from reliability.crashing import CRASH_FLAGS, sqlite_integrity
from reliability.ledger import Ledger, Sent, check
from reliability.producers import REQUEST_TIMEOUT, Producers

pytestmark = pytest.mark.slow

#: Room for the databases, their WAL and the search index, and little more.
FILESYSTEM_SIZE = "24m"
#: 503s the producers must have had before the disk is given back.
REFUSALS = 40
CHUNK = b"\0" * 65536


@pytest.fixture
def small_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of ``FILESYSTEM_SIZE`` mounted in the test's directory, unmounted afterwards."""
    if not sys.platform.startswith("linux") or shutil.which("mount") is None:
        pytest.skip("a size-limited tmpfs needs Linux and its mount command")
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    done = subprocess.run(
        [
            "mount",
            "-t",
            "tmpfs",
            "-o",
            f"size={FILESYSTEM_SIZE},mode=0700",
            "tmpfs",
            str(mount_point),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(path: Path) -> int:
    """Write ``path`` until the filesystem is full; the bytes written."""
    written = 0
    with open(path, "wb") as fh:
        try:
            while True:
                written += os.write(fh.fileno(), CHUNK)
        except OSError as exc:
            if exc.errno != 28:  # ENOSPC
                raise
    return written


def free_bytes(path: Path) -> int:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


@pytest.mark.parametrize("audit_reads", [False, True], ids=["reads-not-recorded", "reads-recorded"])
def test_a_full_disk_refuses_writes_with_503_and_recovers(
    small_filesystem: Path, tmp_path: Path, audit_reads: bool
) -> None:
    storage = Storage.sqlite(small_filesystem / "data")
    token = create_key(storage)
    ledger = Ledger()
    refused = threading.Semaphore(0)

    def count_refusals(sent: Sent) -> None:
        if sent.status == 503:
            refused.release()

    flags = CRASH_FLAGS if not audit_reads else ("--read-rate", "0", "--write-rate", "0")
    headers = {"Authorization": f"Bearer {token}"}
    with (
        serving(storage, tmp_path / "serve.log", *flags) as server,
        httpx.Client(base_url=server.url, headers=headers, timeout=REQUEST_TIMEOUT) as client,
    ):
        before = client.post("/v1/events", json={"id": "before", "type": "disk.ok"})
        assert before.status_code == 201
        producers = Producers(
            server.url, {"t": token}, ledger, "full", workers=4, on_answer=count_refusals
        )
        producers.start()
        try:
            assert producers.answered.acquire(timeout=REQUEST_TIMEOUT)
            filler = small_filesystem / "filler"
            fill(filler)
            for _ in range(REFUSALS):
                assert refused.acquire(timeout=REQUEST_TIMEOUT), server.log()
        finally:
            producers.stop()
        assert free_bytes(small_filesystem) < len(CHUNK)

        # Full: every write is refused with 503 and Retry-After, and stores nothing.
        for body in ({"id": "while-full", "type": "t"}, [{"type": "t"}] * 500):
            response = client.post("/v1/events", json=body)
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"].isdigit()
            assert response.headers["content-type"] == "application/problem+json"
            assert "full" in response.json()["detail"]
        assert client.get("/healthz").status_code == 200
        # Reads work; a read that must first be recorded in the log cannot be: it is refused
        # the same way, as the service answers no read it could not record.
        for read in (client.get("/v1/events/before"), client.get("/v1/events")):
            if audit_reads:
                assert read.status_code == 503, read.text
                assert read.headers["retry-after"].isdigit()
            else:
                assert read.status_code == 200, read.text
        if not audit_reads:
            assert client.get("/v1/events/before").json()["type"] == "disk.ok"

        # Space is back: writes succeed again, at once.
        filler.unlink()
        assert client.post("/v1/events", json={"id": "after", "type": "t"}).status_code == 201
        batch = client.post("/v1/events", json=[{"type": "t"}] * 500)
        assert batch.status_code == 201, batch.text
        assert client.get("/v1/events/while-full").status_code == 404
        assert client.get("/v1/events/after").status_code == 200

        statuses = ledger.statuses()
        assert set(statuses) <= {"201", "503"}, statuses
        assert statuses["503"] >= REFUSALS
        for sent in ledger.requests:
            if sent.status == 503:
                assert sent.retry_after is not None
                assert sent.retry_after.isdigit()
        report = check(ledger, {"t": client}, fetch_limit=100)
        assert server.terminate() == 0, server.log()
        log = server.log()
    assert report.problems == [], report
    assert report.lost == report.refused_but_stored == report.partial == 0
    assert "Traceback" not in log
    verified = verify(storage)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert sqlite_integrity(storage) == "ok"

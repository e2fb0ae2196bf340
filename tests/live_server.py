"""``auditlog serve`` as a real process, and the ``auditlog`` command in subprocesses, for the
tests that need the real thing (uvicorn, signals, several processes on one store).

Each server listens on a free port of 127.0.0.1 with its data in a directory of the test's
(or in the store a ``Storage`` names); ``serving`` stops it by its pid in a ``finally`` block,
whatever happened. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

#: The mark of a test that loads the machine on purpose (floods, SIGKILLs under load, many
#: server processes). ``python3 dev.py test`` spreads the suite over worker processes
#: (pytest-xdist, ``--dist loadgroup``) and runs every test so marked on one of them, one
#: after another: no two share the machine, as each was written to have it to itself but for
#: lighter tests.
LOAD = pytest.mark.xdist_group("load")

START_TIMEOUT = 30.0  # seconds until /healthz answers
STOP_TIMEOUT = 60.0  # seconds until the process has exited after SIGTERM
COMMAND_TIMEOUT = 60.0


@dataclass(frozen=True)
class Storage:
    """Where a server and the admin commands keep the log: the flags that say so.

    ``Storage.sqlite(DIR)`` is the default store (``--data DIR``); ``Storage.at(URL)`` any
    store URL (``--store URL``), so tests written against a ``Storage`` run on every backend.
    """

    flags: tuple[str, ...]
    #: The SQLite database file, for checks below the API; None for other backends.
    sqlite_file: Path | None = None

    @classmethod
    def sqlite(cls, data: Path) -> Storage:
        return cls(("--data", str(data)), data / "auditlog.db")

    @classmethod
    def at(cls, url: str) -> Storage:
        sqlite_file = Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None
        return cls(("--store", url), sqlite_file)


def storage_flags(data: Path | Storage) -> tuple[str, ...]:
    """The ``--data``/``--store`` flags of ``data``: a data directory or a ``Storage``."""
    return data.flags if isinstance(data, Storage) else ("--data", str(data))


def environment() -> dict[str, str]:
    """This environment without settings of the caller's own: the flags decide."""
    return {k: v for k, v in os.environ.items() if not k.startswith("AUDITLOG_")}


def auditlog(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``auditlog ARGV...`` in a subprocess, as an operator runs it; its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "auditlog", *argv],
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        env=environment(),
        check=False,
    )


def create_key(
    data: Path | Storage, tenant: str = "t", scopes: str = "events:write,events:read"
) -> str:
    """A new API key made with ``auditlog keys create`` on ``data``."""
    done = auditlog("keys", "create", "--tenant", tenant, "--scopes", scopes, *storage_flags(data))
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip().splitlines()[-1]
    assert token.startswith("alk_")
    return token


def verify(data: Path | Storage) -> subprocess.CompletedProcess[str]:
    """``auditlog verify`` on ``data``, offline: exit status 0 when every log is intact."""
    return auditlog("verify", *storage_flags(data))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """One ``auditlog serve`` process on 127.0.0.1."""

    def __init__(self, data: Path | Storage, log: Path, *flags: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        self._log = open(log, "ab")  # noqa: SIM115 (closed in stop())
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "auditlog",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                *storage_flags(data),
                "--log-level",
                "warning",
                *flags,
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=environment(),
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        with httpx.Client(base_url=self.url, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise AssertionError(f"the server exited at start:\n{self.log()}")
                with contextlib.suppress(httpx.TransportError):
                    if client.get("/healthz").status_code == 200:
                        return
                time.sleep(0.05)
        raise AssertionError(f"the server did not answer within {START_TIMEOUT} s:\n{self.log()}")

    def terminate(self) -> int:
        """SIGTERM, and the exit status once the process has exited."""
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            return self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"the server did not exit within {STOP_TIMEOUT} s of SIGTERM:\n{self.log()}"
            ) from None

    def kill(self) -> None:
        """SIGKILL, as a crash would: nothing of the server runs on, not even its children.

        Its children (the SQLite search indexer) notice the orphaning and exit by themselves;
        one still there after a bounded wait is killed by its pid too.
        """
        if self.process.poll() is not None:
            return
        children = child_pids(self.process.pid)
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=STOP_TIMEOUT)
        deadline = time.monotonic() + STOP_TIMEOUT
        for pid in children:
            while process_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if process_alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def peak_rss_kib(self) -> int:
        """The most memory the server process has held so far (VmHWM), in KiB."""
        return peak_rss_kib(self.process.pid)

    def stop(self) -> None:
        """Make sure the process is gone, whatever happened."""
        self.kill()
        self._log.close()


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                    found.append(int(entry))
    return found


def process_alive(pid: int) -> bool:
    """Whether ``pid`` is a process that has not exited (a zombie counts as exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def peak_rss_kib(pid: int) -> int:
    """VmHWM of a running process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmHWM for process {pid}")


@contextlib.contextmanager
def serving(data: Path | Storage, log: Path, *flags: str) -> Iterator[Server]:
    """A server on ``data`` (more ``serve`` flags may follow), stopped when the block ends."""
    server = Server(data, log, *flags)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def serving_many(
    data: Path | Storage, logs: Path, count: int, *flags: str
) -> Iterator[list[Server]]:
    """``count`` servers on one store, started at once (logs ``serve0.log``... in ``logs``),
    each stopped when the block ends."""
    servers: list[Server] = []
    try:
        for number in range(count):
            servers.append(Server(data, logs / f"serve{number}.log", *flags))
        for server in servers:
            server.wait_ready()
        yield servers
    finally:
        for server in servers:
            server.stop()


# -- reading a whole log back --------------------------------------------------------------


def all_events(client: httpx.Client) -> list[dict[str, Any]]:
    """Every event of the client's tenant, in ``seq`` order, through the listing's pages."""
    found: list[dict[str, Any]] = []
    params: dict[str, str] = {"order": "asc", "limit": "1000"}
    for _ in range(100_000):
        response = client.get("/v1/events", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        found.extend(page["events"])
        if page["next_cursor"] is None:
            return found
        params["cursor"] = page["next_cursor"]
    raise AssertionError("the query did not end")


def is_own_record(event: dict[str, Any]) -> bool:
    """Whether the service made this event itself (its self-audit)."""
    return str(event["type"]).startswith("auditlog.")

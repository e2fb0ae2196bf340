"""``auditlog serve`` as a real process, and the ``auditlog`` command in subprocesses, for the
tests that need the real thing (uvicorn, signals, several processes on one store).

Each server listens on a free port of 127.0.0.1 with its data in a directory of the test's;
``serving`` stops it by its pid in a ``finally`` block, whatever happened. Every wait is bounded.
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
from pathlib import Path

import httpx

START_TIMEOUT = 30.0  # seconds until /healthz answers
STOP_TIMEOUT = 60.0  # seconds until the process has exited after SIGTERM
COMMAND_TIMEOUT = 60.0


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


def create_key(data: Path, tenant: str = "t", scopes: str = "events:write,events:read") -> str:
    """A new API key made with ``auditlog keys create`` on ``data``."""
    done = auditlog("keys", "create", "--tenant", tenant, "--scopes", scopes, "--data", str(data))
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip().splitlines()[-1]
    assert token.startswith("alk_")
    return token


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """One ``auditlog serve`` process on 127.0.0.1."""

    def __init__(self, data: Path, log: Path, *flags: str) -> None:
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
                "--data",
                str(data),
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

    def stop(self) -> None:
        """Make sure the process is gone, whatever happened."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=STOP_TIMEOUT)
        self._log.close()


@contextlib.contextmanager
def serving(data: Path, log: Path, *flags: str) -> Iterator[Server]:
    """A server on ``data`` (more ``serve`` flags may follow), stopped when the block ends."""
    server = Server(data, log, *flags)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()

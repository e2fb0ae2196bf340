"""A private PostgreSQL cluster for a test that stops and starts its database.

``Cluster`` runs ``initdb`` in a new temporary directory and ``pg_ctl`` to start, stop and
restart it: a free port of 127.0.0.1 only, its unix socket in that directory, ``fsync`` on, trust
authentication for the ``postgres`` user. Never the shared server: this one belongs to the test.
Run as root, the commands run as the ``postgres`` OS user (PostgreSQL refuses root), and the
directory is that user's. ``cluster()`` gives one that is stopped (``immediate``) and removed
when the block ends, whatever happened.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from live_server import free_port

BIN = Path(os.environ.get("AUDITLOG_TEST_POSTGRES_BIN", "/usr/lib/postgresql/15/bin"))
OS_USER = "postgres"
COMMAND_TIMEOUT = 60.0
#: Seconds pg_ctl waits for a start or stop to finish.
WAIT = 30


class Unusable(Exception):
    """No private cluster can be made here (no binaries, no user to run them as)."""


class Cluster:
    """One PostgreSQL cluster in a temporary directory, started and stopped with ``pg_ctl``."""

    def __init__(self) -> None:
        for tool in ("initdb", "pg_ctl"):
            if not (BIN / tool).is_file():
                raise Unusable(f"{BIN / tool} does not exist (AUDITLOG_TEST_POSTGRES_BIN)")
        self._as: list[str] = []
        owner: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam(OS_USER)
            except KeyError:
                raise Unusable(f"running as root, and there is no {OS_USER!r} user") from None
            runuser = shutil.which("runuser")
            self._as = [runuser, "-u", OS_USER, "--"] if runuser else ["su", OS_USER, "-c"]
        self.root = Path(tempfile.mkdtemp(prefix="auditlog-pg-"))
        if owner is not None:
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        command = [str(a) for a in argv]
        if self._as[-1:] == ["-c"]:  # su takes one shell command
            command = [*self._as, " ".join(_quote(a) for a in command)]
        else:
            command = [*self._as, *command]
        return subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.root,
            check=False,
        )

    def init(self) -> None:
        done = self._run(
            str(BIN / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-instructions",
        )
        if done.returncode != 0:
            raise Unusable(f"initdb failed: {done.stdout}{done.stderr}")
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.root}'",
            "fsync": "on",
            "synchronous_commit": "on",
            "max_connections": "50",
            "shared_buffers": "32MB",
            "logging_collector": "off",
        }
        with open(self.data / "postgresql.auto.conf", "a", encoding="utf-8") as conf:
            for name, value in settings.items():
                conf.write(f"{name} = {value}\n")

    def start(self) -> None:
        done = self._run(
            str(BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", str(WAIT),
            "start",
        )  # fmt: skip
        assert done.returncode == 0, (
            f"pg_ctl start: {done.stdout}{done.stderr}\n{self.server_log()}"
        )

    def stop(self, mode: str = "fast") -> None:
        """``fast``: a clean shutdown; ``immediate``: as a crash (recovery at the next start)."""
        assert mode in ("smart", "fast", "immediate")
        done = self._run(
            str(BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", str(WAIT), "stop"
        )
        assert done.returncode == 0, f"pg_ctl stop: {done.stdout}{done.stderr}\n{self.server_log()}"

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def running(self) -> bool:
        return self.postmaster_pid() is not None

    def postmaster_pid(self) -> int | None:
        """The pid of this cluster's postmaster while it runs (from ``postmaster.pid``)."""
        try:
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    def server_log(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def remove(self) -> None:
        """Stop the cluster if it runs (as a crash: nothing is worth keeping) and delete it."""
        if self.running():
            with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
                self.stop("immediate")
        pid = self.postmaster_pid()
        if pid is not None:  # pg_ctl could not stop it: the postmaster is ours, by its pid
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + WAIT
            while self.postmaster_pid() is not None and time.monotonic() < deadline:
                time.sleep(0.05)
        shutil.rmtree(self.root, ignore_errors=True)


def _quote(word: str) -> str:
    return "'" + word.replace("'", "'\\''") + "'"


@contextlib.contextmanager
def cluster() -> Iterator[Cluster]:
    """A started private cluster, stopped and removed when the block ends.

    Skips the test (with the reason) where none can be made; in CI, where PostgreSQL is
    installed, that is a failure instead.
    """
    made: Cluster | None = None
    try:
        try:
            made = Cluster()
            made.init()
        except (Unusable, OSError, subprocess.SubprocessError) as exc:
            reason = f"cannot make a private PostgreSQL cluster: {exc}"
            if os.environ.get("CI"):
                pytest.fail(reason)
            pytest.skip(reason)
        made.start()
        yield made
    finally:
        if made is not None:
            made.remove()

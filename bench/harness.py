"""What the export, live-tail, delivery and baseline benchmarks share, beyond ``ingest.py``
(servers, keys, wrk, CPU accounting), which they import from there:

* ``wait_quiet`` and ``kept_runs``: the noise control of ``ingest.py`` as functions: wait for
  a quiet machine before each run, keep a run only if other processes used at most
  ``--max-noise`` % of a core while it ran, repeat it otherwise (at most ``--max-attempts``);
* ``BackgroundWrk``: ``ingest.run_wrk`` in a thread, so that something else is measured
  while wrk loads the server;
* ``rss_kib`` and ``reset_peak_rss``: a process's resident memory now, and its peak (VmHWM)
  set back to now (``/proc/PID/clear_refs``), so that the peak of one phase can be read;
* ``start_uvicorn``: a bare ASGI app of this folder on uvicorn (uvloop, httptools);
* ``reproduce``: the command line that repeats a run.
"""

from __future__ import annotations

import shlex
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from ingest import VENV_BIN, others_now, run_wrk, stop_server  # noqa: E402

T = TypeVar("T")


def add_noise_args(parser: Any, runs: int = 3) -> None:
    """The options of the noise control, as ``ingest.py`` has them."""
    parser.add_argument("--runs", type=int, default=runs, help="kept runs")
    parser.add_argument(
        "--max-noise",
        type=float,
        default=8.0,
        help="discard a run where other processes used more than this %% of a core",
    )
    parser.add_argument("--max-attempts", type=int, default=8, help="runs tried at most")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=120.0,
        help="seconds to wait for a quiet machine before each run",
    )


def wait_quiet(max_noise: float, max_wait: float) -> float:
    """Wait (at most ``max_wait`` s) until others use at most ``max_noise`` % of a core."""
    waited = 0.0
    while (noise := others_now()) > max_noise and waited < max_wait:
        print(f"  (machine busy: others use {noise:.0f}% of a core; waiting)", flush=True)
        time.sleep(4)
        waited += 5
    return noise


def kept_runs(
    run: Callable[[int], T],
    noise: Callable[[T], float],
    show: Callable[[T, bool], None],
    args: Any,
) -> tuple[list[T], list[T]]:
    """Run ``run(attempt)`` until ``args.runs`` runs stayed quiet (``noise(result)`` at most
    ``args.max_noise``) or ``args.max_attempts`` were tried; (kept, every run). When too few
    were quiet, the least noisy of the others fill the kept list, with a warning."""
    kept: list[T] = []
    tried: list[T] = []
    attempts = 0
    while len(kept) < args.runs and attempts < args.max_attempts:
        attempts += 1
        wait_quiet(args.max_noise, args.quiet_wait)
        result = run(attempts)
        quiet = noise(result) <= args.max_noise
        tried.append(result)
        show(result, quiet)
        if quiet:
            kept.append(result)
    if len(kept) < args.runs:
        print(
            f"  WARNING: only {len(kept)} quiet runs in {attempts} attempts; the least noisy "
            "of the others are used too"
        )
        others = sorted((r for r in tried if r not in kept), key=noise)
        kept += others[: args.runs - len(kept)]
    return kept, tried


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


class BackgroundWrk:
    """``ingest.run_wrk`` in a thread: ``start()``, then ``join()`` for its result."""

    def __init__(
        self, script: str, conns: int, seconds: int, port: int, key: str, out_dir: str
    ) -> None:
        self._call = (script, conns, seconds, port, key, out_dir)
        self._result: tuple[dict[str, float], float] | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="wrk", daemon=True)
        self.started = 0.0

    def _run(self) -> None:
        try:
            self._result = run_wrk(*self._call)
        except BaseException as exc:  # handed to join()
            self._error = exc

    def start(self) -> None:
        self.started = time.monotonic()
        self._thread.start()

    def running(self) -> bool:
        return self._thread.is_alive()

    def join(self) -> tuple[dict[str, float], float]:
        """wrk's RESULT fields and its CPU ticks."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result


def _status_kib(pid: int, field: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_kib(pid: int) -> int | None:
    """Resident memory of a process now (VmRSS)."""
    return _status_kib(pid, "VmRSS")


def peak_rss_kib(pid: int) -> int | None:
    """Peak resident memory of a process (VmHWM) since it started or since ``reset_peak_rss``."""
    return _status_kib(pid, "VmHWM")


def reset_peak_rss(pid: int) -> bool:
    """Set the process's VmHWM back to its current RSS (Linux ``clear_refs`` value 5)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


class RssSampler:
    """The largest VmRSS, RssAnon and RssFile of a process, read every ``interval`` s: the
    anonymous part is what the process holds; the file part is pages of mapped files (SQLite's
    mmap of the database), page cache that the kernel may take back."""

    FIELDS = ("VmRSS", "RssAnon", "RssFile")

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid = pid
        self.interval = interval
        self.max_kib = dict.fromkeys(self.FIELDS, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name in self.FIELDS:
                self.max_kib[name] = max(self.max_kib[name], _status_kib(self.pid, name) or 0)
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def rss_parts_kib(pid: int) -> dict[str, int]:
    """VmRSS, RssAnon and RssFile of a process now."""
    return {name: _status_kib(pid, name) or 0 for name in RssSampler.FIELDS}


def start_uvicorn(app: str, port: int, timeout: float = 15.0) -> subprocess.Popen[bytes]:
    """``app`` (``module:attribute`` of this folder) on uvicorn at 127.0.0.1:``port``, one
    process, uvloop and httptools, no access log, once it accepts connections."""
    server = subprocess.Popen(
        [
            str(VENV_BIN / "python"),
            "-m",
            "uvicorn",
            "--app-dir",
            str(BENCH),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--lifespan",
            "off",
            "--no-access-log",
            "--log-level",
            "warning",
            app,
        ],
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"uvicorn {app} exited with {server.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server
        except OSError:
            time.sleep(0.1)
    stop_server(server)
    raise RuntimeError(f"uvicorn {app} did not listen within {timeout:g} s")


def reproduce(script: str, argv: Sequence[str]) -> str:
    """The command that runs ``script`` (a file of this folder) again with ``argv``."""
    return shlex.join([".venv/bin/python", f"bench/{script}", *argv])

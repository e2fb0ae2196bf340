"""The search indexer as a child process of ``serve``: started, watched, restarted, stopped.

Both SQL backends build their search index in a process of their own (``python -m
<module> <target> --parent PID --log-format F``), so that its Python work never takes the GIL from the
process serving requests. The child exits when its parent goes away or on SIGTERM;
``run_loop`` is its main loop.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType

from auditlog.collector import collect_less

log = logging.getLogger("auditlog.storage")

#: The indexer takes the CPU the server leaves, and catches up in the lulls.
NICENESS = 10


class IndexerProcess:
    """A child process running ``module`` on ``target``, restarted by a watchdog thread if
    it ever dies.

    ``secret``: the target (a URL that may hold a password) is written to the child's
    standard input instead of its command line, which every user of the machine can read.
    """

    RESTART_DELAY = 1.0

    def __init__(
        self, module: str, target: str, secret: bool = False, log_format: str = "text"
    ) -> None:
        self._module = module
        self._target = target
        self._secret = secret
        self._log_format = log_format
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, name="al-indexer-watch", daemon=True)

    def _spawn(self) -> None:
        target = "-" if self._secret else self._target
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", self._module, target),
                *("--parent", str(os.getpid()), "--log-format", self._log_format),
            ],
            stdin=subprocess.PIPE if self._secret else subprocess.DEVNULL,
        )
        if process.stdin is not None:
            process.stdin.write(self._target.encode() + b"\n")
            process.stdin.close()
        self._process = process

    def start(self) -> None:
        self._spawn()
        self._watchdog.start()

    def _watch(self) -> None:
        while not self._stopping.wait(self.RESTART_DELAY):
            process = self._process
            if process is not None and process.poll() is not None and not self._stopping.is_set():
                log.error("search indexer exited with %s; restarting it", process.returncode)
                self._spawn()

    def stop(self) -> None:
        self._stopping.set()
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._watchdog.is_alive():
            self._watchdog.join(timeout=5)


def run_loop(
    step: Callable[[], int],
    parent: int,
    errors: tuple[type[BaseException], ...],
    idle_sleep: float,
    full: int,
) -> None:
    """Call ``step`` (the number of events it indexed) until SIGTERM or orphaned.

    A step that indexed fewer than ``full`` events has caught up: the next one comes after
    ``idle_sleep``, so that under a steady trickle of writes each step indexes what arrived
    meanwhile rather than a few events at a time (a step costs a transaction and a few
    statements whatever its size). A second's pause follows an error of ``errors`` (logged;
    the step is retried).
    """
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # Serving requests comes first; queries stay complete meanwhile (the tail is checked).
    os.nice(NICENESS)
    collect_less()  # as the server does
    while not stopping and os.getppid() == parent:
        try:
            if step() < full:
                time.sleep(idle_sleep)
        except errors as exc:
            log.warning("indexing failed, retrying: %s", exc)
            time.sleep(1.0)

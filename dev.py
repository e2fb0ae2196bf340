#!/usr/bin/env python3
"""Bootstrap for working on auditlog: one command, nothing to install first.

    python3 dev.py serve [auditlog serve options...]   run the service (SQLite in ./data)
    python3 dev.py test  [pytest options...]           run the test suite (-n 0: in one process)
    python3 dev.py check                               ruff format --check, ruff check, mypy

Each command makes ./.venv (beside this file) if it is missing and installs the project into
it with its test extras (``pip install -e '.[test]'``), and the Python client of
clients/python beside it (``pip install -e clients/python``), whenever the venv is new or
either pyproject.toml changed since the last install; a stamp file inside .venv holds the
hash of what was installed. Commands run in the directory of this file, whatever the
current one.

``test`` runs pytest in ``test_workers()`` worker processes (pytest-xdist) unless its options
say how (``-n``, ``--numprocesses``, ``--dist``, ``-p no:xdist``): most tests wait on servers,
subprocesses, browsers and disks, so two per core finish the suite in about half the time of
one process. At most four, so that the PostgreSQL tests stay well inside the server's
connections. ``--dist loadgroup`` runs the tests that load the machine on purpose (marked
``LOAD`` in tests/live_server.py) on one worker, one after another.

Only the standard library is used here, so any Python 3.11+ can run it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
EXE = ".exe" if os.name == "nt" else ""
PYTHON = BIN / f"python{EXE}"
STAMP = VENV / ".auditlog-installed"
INSTALL_SPEC = ".[test]"
#: The client library, its own distribution in this repository, tested with the rest.
CLIENT = ROOT / "clients" / "python"
MIN_PYTHON = (3, 11)

USAGE = __doc__.split("\n\n")[1]


def say(message: str) -> None:
    print(f"dev.py: {message}", file=sys.stderr, flush=True)


def wanted_stamp() -> str:
    """What the stamp must say for the venv to be current: the hash of what was installed."""
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    digest.update(INSTALL_SPEC.encode())
    digest.update((CLIENT / "pyproject.toml").read_bytes())
    return digest.hexdigest()


def run(command: list[str]) -> None:
    """Run a setup step, its output on stderr (stdout stays the command's own); stop on failure."""
    say("running " + " ".join(command))
    result = subprocess.run(command, cwd=ROOT, stdout=sys.stderr, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        say(f"failed with exit code {result.returncode}")
        sys.exit(result.returncode)


def ensure_venv() -> None:
    """Make .venv and install the project into it, unless it is already current."""
    if not PYTHON.exists():
        say(f"creating the virtual environment {VENV}")
        run([sys.executable, "-m", "venv", str(VENV)])
        STAMP.unlink(missing_ok=True)
    stamp = wanted_stamp()
    if STAMP.exists() and STAMP.read_text().strip() == stamp:
        return
    say("installing auditlog and its test tools into .venv (pyproject.toml is new or changed)")
    run([str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-e", INSTALL_SPEC])
    say("installing the client (clients/python) into .venv")
    run([str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-e", str(CLIENT)])
    STAMP.write_text(stamp + "\n")


def replace_with(command: list[str]) -> None:
    """Become ``command`` (its exit code is ours), run from the project directory."""
    say("running " + " ".join(command))
    sys.stdout.flush()
    sys.stderr.flush()
    os.chdir(ROOT)
    if os.name == "nt":  # no exec on Windows: run it and pass its exit code on
        sys.exit(subprocess.run(command).returncode)
    os.execv(command[0], command)  # noqa: S606 (a fixed program of our own venv)


def test_workers() -> int:
    """Worker processes for the test suite: two per core, at least two, at most four."""
    return min(4, max(2, 2 * (os.cpu_count() or 1)))


def chooses_workers(options: list[str]) -> bool:
    """Whether pytest ``options`` already say how the suite is spread over processes."""
    for i, option in enumerate(options):
        if option.startswith(("-n", "--numprocesses", "--dist")):
            return True
        if option == "-p" and options[i + 1 : i + 2] == ["no:xdist"]:
            return True
        if option == "-pno:xdist":
            return True
    return False


def check() -> int:
    """Every static check, all of them run; non-zero if any failed."""
    failed = []
    for step in (
        ["-m", "ruff", "format", "--check", "."],
        ["-m", "ruff", "check", "."],
        ["-m", "mypy", "src"],
        ["-m", "mypy", "--strict", "clients/python/src"],
    ):
        command = [str(PYTHON), *step]
        say("running " + " ".join(command))
        if subprocess.run(command, cwd=ROOT, stdin=subprocess.DEVNULL).returncode != 0:
            failed.append(" ".join(step[1:]))
    if failed:
        say("failed: " + "; ".join(failed))
        return 1
    say("all checks passed")
    return 0


def main(argv: list[str]) -> int:
    if sys.version_info < MIN_PYTHON:
        say(
            f"needs Python {'.'.join(map(str, MIN_PYTHON))} or newer, this is {sys.version.split()[0]}"
        )
        return 2
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE, file=sys.stderr)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in ("serve", "test", "check"):
        say(f"unknown command {command!r}")
        print(USAGE, file=sys.stderr)
        return 2
    if command == "check" and rest:
        say("check takes no arguments")
        return 2
    ensure_venv()
    if command == "serve":
        replace_with([str(BIN / f"auditlog{EXE}"), "serve", *rest])
    elif command == "test":
        workers = (
            [] if chooses_workers(rest) else ["-n", str(test_workers()), "--dist", "loadgroup"]
        )
        replace_with([str(PYTHON), "-m", "pytest", *workers, *rest])
    return check()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The durable spool: events kept in a local SQLite file from before ``log`` returns until
the service has acknowledged them.

Layout of ``spool_dir``: one database per live client, ``spool-<ULID>.db``, beside its lock
file ``spool-<ULID>.lock`` that the client holds with ``flock`` for as long as it runs. A
lock file that can be locked belongs to a process that has ended (a crash, a ``kill -9``, a
restart): the client that finds it (when it starts, and when idle every
``spool_adopt_interval`` seconds) adopts that spool, copying its events, in order, behind
those it holds, then removes it. So a restarted producer resends what its predecessor left, a forked
worker writes a spool of its own (it never resends its parent's events), and two clients in
one directory never take each other's events. A lock file is made under a temporary name,
locked, then renamed into place, so no client ever sees the lock file of a live one unlocked.

Each database is in WAL mode with ``synchronous=NORMAL``: a commit survives the producer
being killed at any point (the operating system holds the written pages); ``sync="full"``
also survives a power cut, at the cost of an fsync per ``log``. If the copy of an adopted
spool is committed but the old file is not yet removed when the process dies, its events are
sent twice; the service stores each once (their ids are the same).

Events the service refused (a 409 conflict, a 422) are not lost with the spool either: they
are moved to the table ``failed`` with the problem's text, for an operator to look at.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

from auditlog_client.envelope import new_id

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT, line BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS failed (
    id INTEGER PRIMARY KEY AUTOINCREMENT, line BLOB NOT NULL, problem TEXT NOT NULL
);
"""

# Connections abandoned in a forked child: closing them there could disturb the parent's
# use of the same file, so the child keeps them, unused, until it exits.
_ABANDONED: list[object] = []


class Spool:
    """One client's spool file in ``directory``, with every orphaned spool there adopted.

    Thread-safe: one connection behind a lock, used by the producers (``append``) and the
    sender (``remove``, ``fail``).
    """

    def __init__(self, directory: str | os.PathLike[str], *, sync: str = "normal") -> None:
        if sync not in ("normal", "full"):
            raise ValueError("sync must be 'normal' or 'full'")
        self.directory = Path(directory)
        self._sync = sync
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._lock_fd, self.name = _claim_new(self.directory)
        self.path = self.directory / f"{self.name}.db"
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={sync.upper()}")
        self._db.executescript(_SCHEMA)
        self.adopted = self.adopt_orphans()

    # -- writing -------------------------------------------------------------------------------

    def append(self, line: bytes) -> int:
        """Keep ``line`` durably; its spool id, which orders the spool."""
        with self._lock:
            cursor = self._db.execute("INSERT INTO events (line) VALUES (?)", (line,))
            rowid = cursor.lastrowid
        assert rowid is not None
        return rowid

    def remove(self, ids: Sequence[int]) -> None:
        """Forget events the service has acknowledged."""
        if not ids:
            return
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("DELETE FROM events WHERE id = ?", [(i,) for i in ids])
            self._db.execute("COMMIT")

    def fail(self, ids: Sequence[int], problem: str) -> None:
        """Move events the service refused to the ``failed`` table."""
        if not ids:
            return
        with self._lock:
            self._db.execute("BEGIN")
            for i in ids:
                self._db.execute(
                    "INSERT INTO failed (line, problem) SELECT line, ? FROM events WHERE id = ?",
                    (problem, i),
                )
                self._db.execute("DELETE FROM events WHERE id = ?", (i,))
            self._db.execute("COMMIT")

    # -- reading -------------------------------------------------------------------------------

    def pending(self) -> list[tuple[int, bytes]]:
        """Every event not yet acknowledged, in the order it was logged."""
        with self._lock:
            rows = self._db.execute("SELECT id, line FROM events ORDER BY id").fetchall()
        return [(int(i), bytes(line)) for i, line in rows]

    def last_id(self) -> int:
        """The greatest spool id given so far (0 before any)."""
        with self._lock:
            (n,) = self._db.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()
        return int(n)

    def pending_after(self, last: int) -> list[tuple[int, bytes]]:
        """The events not yet acknowledged whose spool id is above ``last``, in order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, line FROM events WHERE id > ? ORDER BY id", (last,)
            ).fetchall()
        return [(int(i), bytes(line)) for i, line in rows]

    def count(self) -> int:
        with self._lock:
            (n,) = self._db.execute("SELECT count(*) FROM events").fetchone()
        return int(n)

    def failed(self) -> list[tuple[bytes, str]]:
        """The events the service refused, with its problem's text, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT line, problem FROM failed ORDER BY id").fetchall()
        return [(bytes(line), str(problem)) for line, problem in rows]

    # -- orphans -------------------------------------------------------------------------------

    def adopt_orphans(self) -> int:
        """Copy the events of every spool in the directory whose owner has ended into this
        one, oldest spool first, and remove those spools. The number of events adopted."""
        adopted = 0
        for lock_path in sorted(self.directory.glob("spool-*.lock")):
            if lock_path.stem == self.name:
                continue
            fd = _try_lock(lock_path)
            if fd is None:
                continue  # alive
            try:
                db_path = lock_path.with_suffix(".db")
                if db_path.exists():
                    adopted += self._copy_from(db_path)
                    for suffix in ("", "-wal", "-shm"):
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(f"{db_path}{suffix}")
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(lock_path)
            finally:
                os.close(fd)
        return adopted

    def _copy_from(self, db_path: Path) -> int:
        with self._lock:
            self._db.execute("ATTACH DATABASE ? AS orphan", (str(db_path),))
            try:
                self._db.executescript(
                    "CREATE TABLE IF NOT EXISTS orphan.events (id INTEGER PRIMARY KEY, line BLOB);"
                    "CREATE TABLE IF NOT EXISTS orphan.failed "
                    "(id INTEGER PRIMARY KEY, line BLOB, problem TEXT);"
                )
                self._db.execute("BEGIN")
                cursor = self._db.execute(
                    "INSERT INTO main.events (line) SELECT line FROM orphan.events ORDER BY id"
                )
                copied = cursor.rowcount
                self._db.execute(
                    "INSERT INTO main.failed (line, problem) "
                    "SELECT line, problem FROM orphan.failed ORDER BY id"
                )
                self._db.execute("COMMIT")
            finally:
                self._db.execute("DETACH DATABASE orphan")
        return max(copied, 0)

    # -- ending --------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the database and release the lock; an empty spool's files are removed."""
        with self._lock:
            (left,) = self._db.execute(
                "SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM failed)"
            ).fetchone()
            self._db.close()
            if not left:
                for suffix in ("", "-wal", "-shm"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(f"{self.path}{suffix}")
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.directory / f"{self.name}.lock")
            os.close(self._lock_fd)

    def abandon(self) -> None:
        """In a forked child: drop the parent's spool without touching it."""
        _ABANDONED.append(self._db)
        with contextlib.suppress(OSError):
            os.close(self._lock_fd)


def _try_lock(path: Path) -> int | None:
    """An fd holding an exclusive ``flock`` of ``path``, or None if another holds it."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _claim_new(directory: Path) -> tuple[int, str]:
    """A new spool name, its lock file locked before it appears under its own name."""
    name = f"spool-{new_id()}"
    temporary = directory / f".{name}.lock.tmp"
    fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.rename(temporary, directory / f"{name}.lock")
    return fd, name


def all_pending(directory: str | os.PathLike[str]) -> Iterable[Path]:
    """The spool databases in ``directory`` (for tests and operators)."""
    return sorted(Path(directory).glob("spool-*.db"))

"""The witness's state: the latest cosigned checkpoint of each log, and the refusals.

One SQLite file, ``<state dir>/witness.db``, in WAL mode with ``synchronous=FULL``, so a
checkpoint is on disk before its cosignature is returned (C2SP tlog-witness: "The witness MUST
persist the new checkpoint before responding"). Two tables:

``checkpoints``  per origin: the size and root hash of the latest cosigned checkpoint, the
                 signed note as received, the note the monitoring route serves (the log's
                 verified signatures and the witness's cosignature), and when it was cosigned
``refusals``     the refused requests whose checkpoint the log had signed (time, origin,
                 status, reason, the checkpoint as received): evidence of what the log said,
                 the last ``MAX_REFUSALS`` kept

``add`` reads the record, checks the request against it and writes the new one in a single
``BEGIN IMMEDIATE`` transaction: no other request, in this process or another one on the same
file, can come in between, so a cosigned size can never be rolled back (the race the spec
describes).
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from auditlog.witness.verifier import Accepted, Recorded, Refused

#: The file of the state in its directory.
FILE_NAME = "witness.db"
#: Refusals kept; older ones are deleted as new ones come.
MAX_REFUSALS = 10_000
#: How long a write waits for another process's transaction, in milliseconds.
BUSY_TIMEOUT_MS = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS checkpoints (
    origin TEXT PRIMARY KEY,
    origin_hash TEXT NOT NULL UNIQUE,  -- lowercase hex SHA-256 of the origin
    size TEXT NOT NULL,                -- decimal: a tree size may exceed SQLite's integers
    root_hash BLOB NOT NULL,
    received TEXT NOT NULL,            -- the signed note as the log sent it
    cosigned TEXT NOT NULL,            -- the note with the log's signatures and ours
    cosigned_at INTEGER NOT NULL       -- the cosignature's timestamp, POSIX seconds
);
CREATE TABLE IF NOT EXISTS refusals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time INTEGER NOT NULL,             -- POSIX seconds
    origin TEXT NOT NULL,
    status INTEGER NOT NULL,
    reason TEXT NOT NULL,
    checkpoint TEXT NOT NULL           -- the signed note as the log sent it
);
"""


def origin_hash(origin: str) -> str:
    """The name of a log in the monitoring route: lowercase hex SHA-256 of its origin."""
    return hashlib.sha256(origin.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Stored:
    """A log's latest cosigned checkpoint as recorded."""

    origin: str
    size: int
    root_hash: bytes
    received: str
    cosigned: str
    cosigned_at: int


@dataclass(frozen=True, slots=True)
class Refusal:
    """A refused request, as recorded."""

    time: int
    origin: str
    status: int
    reason: str
    checkpoint: str


class StateError(Exception):
    """The state file cannot be opened."""


class State:
    """The state in ``directory`` (made if missing), open until ``close``.

    Safe to use from several threads: one connection, behind a lock. Several processes may
    open the same file; their writes are serialised by SQLite.
    """

    def __init__(self, directory: Path) -> None:
        self.path = directory / FILE_NAME
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=0
            )
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"cannot open the witness state {self.path}: {exc}") from None
        self._lock = threading.Lock()
        try:
            self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            self._db.close()
            raise StateError(f"cannot open the witness state {self.path}: {exc}") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def recorded(self, origin: str) -> Recorded:
        """The size and root of the latest checkpoint cosigned for ``origin``."""
        with self._lock:
            return self._recorded(origin)

    def _recorded(self, origin: str) -> Recorded:
        row = self._db.execute(
            "SELECT size, root_hash FROM checkpoints WHERE origin = ?", (origin,)
        ).fetchone()
        return Recorded.none() if row is None else Recorded(int(row[0]), bytes(row[1]))

    def add(self, origin: str, old_size: int, accept: Callable[[Recorded], Accepted]) -> Accepted:
        """Record the checkpoint ``accept`` cosigns, if ``old_size`` is the recorded size.

        In one ``BEGIN IMMEDIATE`` transaction: ``Refused`` (409) when ``old_size`` is not the
        recorded size (0 when none is); otherwise ``accept`` is called with the record, and
        what it returns is recorded before the transaction commits. Whatever ``accept`` raises
        (``Refused`` for a checkpoint that is not consistent) leaves the record as it was.
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                recorded = self._recorded(origin)
                if old_size != recorded.size:
                    raise Refused(
                        409,
                        f"old size {old_size} is not the size of the latest cosigned "
                        f"checkpoint, {recorded.size}",
                        size=recorded.size,
                        signed=True,
                    )
                accepted = accept(recorded)
                if accepted.origin != origin:
                    raise ValueError(f"accepted a checkpoint of {accepted.origin!r} for {origin!r}")
                self._db.execute(
                    "INSERT INTO checkpoints"
                    " (origin, origin_hash, size, root_hash, received, cosigned, cosigned_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (origin) DO UPDATE SET size = excluded.size,"
                    " root_hash = excluded.root_hash, received = excluded.received,"
                    " cosigned = excluded.cosigned, cosigned_at = excluded.cosigned_at",
                    (
                        origin,
                        origin_hash(origin),
                        str(accepted.size),
                        accepted.root_hash,
                        accepted.received,
                        accepted.cosigned,
                        accepted.timestamp,
                    ),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
            return accepted

    def _rollback(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def latest(self, hashed_origin: str) -> Stored | None:
        """The latest cosigned checkpoint of the log whose origin hashes to ``hashed_origin``."""
        with self._lock:
            row = self._db.execute(
                "SELECT origin, size, root_hash, received, cosigned, cosigned_at"
                " FROM checkpoints WHERE origin_hash = ?",
                (hashed_origin,),
            ).fetchone()
        if row is None:
            return None
        return Stored(row[0], int(row[1]), bytes(row[2]), row[3], row[4], row[5])

    def refuse(self, time: int, origin: str, status: int, reason: str, checkpoint: str) -> None:
        """Record a refusal; only the last ``MAX_REFUSALS`` are kept."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cursor = self._db.execute(
                    "INSERT INTO refusals (time, origin, status, reason, checkpoint)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (time, origin, status, reason, checkpoint),
                )
                self._db.execute(
                    "DELETE FROM refusals WHERE id <= ?", ((cursor.lastrowid or 0) - MAX_REFUSALS,)
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise

    def refusals(self, limit: int = 100) -> list[Refusal]:
        """The latest ``limit`` refusals, the newest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT time, origin, status, reason, checkpoint FROM refusals"
                " ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [Refusal(*row) for row in rows]

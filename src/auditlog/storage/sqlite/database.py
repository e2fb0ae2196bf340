"""Opening SQLite connections the way every part of this backend needs them, and migrations.

The backend keeps two database files: the events (``path``), which hold everything that must
never be lost, and the search index (``path`` + ``-terms``), which can be rebuilt from the
events at any time. Each has numbered migrations in ``schema/<name>/NNN_*.sql``, applied in
order under the write lock and recorded in ``PRAGMA user_version``, so several processes that
open the same files at once apply each migration exactly once.
"""

from __future__ import annotations

import logging
import sqlite3
from importlib import resources

from auditlog.errors import StorageError, StorageFull, Unavailable

log = logging.getLogger("auditlog.storage.sqlite")

_FULL_CODES = {sqlite3.SQLITE_FULL, getattr(sqlite3, "SQLITE_IOERR_WRITE", -1)}


def terms_path(events_path: str) -> str:
    """The search index's file, beside the events database."""
    return events_path + "-terms"


#: How long a connection waits for a lock another connection holds.
BUSY_TIMEOUT_MS = 5000


def connect(
    path: str,
    *,
    synchronous: str = "FULL",
    cache_mb: int = 64,
    readonly: bool = False,
) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit) with our pragmas."""
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
    )
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute(f"PRAGMA cache_size = -{cache_mb * 1024}")
    conn.execute("PRAGMA temp_store = MEMORY")
    if readonly:
        conn.execute("PRAGMA query_only = 1")
        conn.execute("PRAGMA mmap_size = 268435456")
    else:
        conn.execute(f"PRAGMA synchronous = {synchronous}")
    return conn


def use_wal(conn: sqlite3.Connection, path: str) -> None:
    """WAL mode; and for a database made now, ``auto_vacuum = INCREMENTAL``, so that the pages
    pruning frees can be given back to the file system (it can only be chosen first)."""
    if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0:
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise StorageError(f"SQLite at {path} refused WAL mode ({mode})")


def give_back(conn: sqlite3.Connection, pages: int) -> int:
    """Give up to ``pages`` free pages of ``conn``'s database back to the file system (one
    ``incremental_vacuum`` step, its own transaction); the bytes given back. Nothing in a
    database made without ``auto_vacuum = INCREMENTAL``."""
    if int(conn.execute("PRAGMA auto_vacuum").fetchone()[0]) != 2:
        return 0
    before = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
    if before == 0:
        return 0
    # executescript steps the pragma to its end; execute() would free one page a call.
    conn.executescript(f"PRAGMA incremental_vacuum({int(pages)});")
    after = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
    page = int(conn.execute("PRAGMA page_size").fetchone()[0])
    return max(before - after, 0) * page


def migrations(schema: str) -> list[tuple[int, str]]:
    """The numbered migrations of one schema (``events`` or ``terms``), in order."""
    folder = resources.files("auditlog.storage.sqlite").joinpath("schema", schema)
    found = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:3].isdigit():
            found.append((int(name[:3]), entry.read_text(encoding="utf-8")))
    return sorted(found)


def migrate(conn: sqlite3.Connection, schema: str, path: str) -> None:
    """Apply the migrations of ``schema`` that ``conn``'s database lacks."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for number, sql in migrations(schema):
            if number > version:
                for statement in sql.split(";\n"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")
                log.info("applied %s migration %03d to %s", schema, number, path)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def translate(exc: sqlite3.Error, retry_after: int, what: str) -> Unavailable:
    """A driver error as the storage error the services understand."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code in _FULL_CODES or "full" in str(exc):
        return StorageFull(f"{what}: the database or its disk is full", retry_after)
    if isinstance(exc, sqlite3.OperationalError) and "interrupted" in str(exc):
        return Unavailable(f"{what}: the query took too long and was stopped", retry_after)
    return StorageError(f"{what}: {exc}", retry_after)

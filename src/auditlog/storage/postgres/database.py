"""Connections, errors, migrations and partitions of the PostgreSQL backend.

Migrations are the numbered files in ``schema/NNN_*.sql``. ``migrate`` applies those a
database lacks, each in its own transaction, while holding a session advisory lock, and
records each number in ``schema_migrations``: several processes starting on one database at
once apply each migration exactly once, the later ones waiting for the first.

Events are partitioned by month of their commit time (``received_us``). ``ensure_partitions``
makes the partitions of the current month and the next ones ahead of time (the service calls
it at start and then every hour), so the default partition stays empty and an old month can be
detached or dropped as one table.
"""

from __future__ import annotations

import datetime as dt
import logging
from importlib import resources

import psycopg
import psycopg_pool
from psycopg import errors as pgerrors
from psycopg.rows import TupleRow

from auditlog.errors import StorageError, StorageFull, Unavailable

log = logging.getLogger("auditlog.storage.postgres")

#: Advisory lock keys (the first of the two-int form), one per purpose.
LOCK_MIGRATE = 0x6175_6400
LOCK_PARTITIONS = 0x6175_6401
LOCK_CHECKPOINT = 0x6175_6402
LOCK_INDEXER = 0x6175_6403
LOCK_INTEGRATOR = 0x6175_6404
#: Per tenant (with its name's hash): set_hold against prune_to.
LOCK_HOLD = 0x6175_6405
#: Per tenant (with its id): the indexer against the sweep of pruned index rows.
LOCK_INDEX = 0x6175_6406


#: Settings of every session of the service's pools. Every statement there reads or writes a
#: page of rows by index: compiling it to machine code (jit) or starting parallel workers for
#: it costs more than running it (a first page of a query took 380 ms with JIT instead of
#: 13 ms, and 10 ms instead of 4 ms with a parallel worker).
PAGE_SIZED = "-c jit=off -c max_parallel_workers_per_gather=0"


def migrations() -> list[tuple[int, str, str]]:
    """The numbered migrations as (number, file name, SQL), in order."""
    folder = resources.files("auditlog.storage.postgres").joinpath("schema")
    found = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:3].isdigit():
            found.append((int(name[:3]), name, entry.read_text(encoding="utf-8")))
    return sorted(found)


async def migrate(conn: psycopg.AsyncConnection[TupleRow]) -> list[int]:
    """Apply the migrations the database lacks; the numbers applied by this call.

    ``conn`` must be in autocommit mode; each migration runs in a transaction of its own.
    """
    applied: list[int] = []
    await conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_MIGRATE,))
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        cur = await conn.execute("SELECT version FROM schema_migrations")
        done = {int(row[0]) for row in await cur.fetchall()}
        for number, name, sql in migrations():
            if number in done:
                continue
            async with conn.transaction():
                await conn.execute(sql.encode())
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                    (number, name),
                )
            log.info("applied PostgreSQL migration %s", name)
            applied.append(number)
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_MIGRATE,))
    return applied


def month_start(year: int, month: int) -> int:
    """Microseconds since the epoch at the start of a month (UTC)."""
    start = dt.datetime(year, month, 1, tzinfo=dt.UTC)
    return int(start.timestamp()) * 1_000_000


def months_from(now_us: int, count: int) -> list[tuple[str, int, int]]:
    """The partitions (table name, from, to) of ``count`` months from the one of ``now_us``."""
    day = dt.datetime.fromtimestamp(now_us / 1_000_000, tz=dt.UTC)
    year, month = day.year, day.month
    out = []
    for _ in range(count):
        next_year, next_month = (year + 1, 1) if month == 12 else (year, month + 1)
        name = f"events_{year:04d}_{month:02d}"
        out.append((name, month_start(year, month), month_start(next_year, next_month)))
        year, month = next_year, next_month
    return out


async def ensure_partitions(
    conn: psycopg.AsyncConnection[TupleRow], now_us: int, months_ahead: int
) -> list[str]:
    """Make the monthly partitions from this month to ``months_ahead`` months ahead that do
    not exist yet; the names of those made. ``conn`` must be in autocommit mode."""
    wanted = months_from(now_us, months_ahead + 1)
    cur = await conn.execute(
        "SELECT c.relname FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'events'::regclass"
    )
    have = {str(row[0]) for row in await cur.fetchall()}
    missing = [w for w in wanted if w[0] not in have]
    made = []
    for name, start, end in missing:
        try:
            async with conn.transaction():
                # One maker at a time; the others find the partition made.
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_PARTITIONS,))
                await conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF events"
                    f" FOR VALUES FROM ({start}) TO ({end})"
                )
            made.append(name)
        except pgerrors.CheckViolation as exc:
            # Rows of that month are in the default partition (the clock jumped ahead, or
            # partitions were not made in time): the operator moves them (docs/operations.md).
            log.warning("cannot make partition %s: %s", name, exc)
    if made:
        log.info("made event partitions %s", ", ".join(made))
    return made


def options(url: str, extra: str) -> str:
    """The ``options`` of ``url`` (e.g. a ``search_path``) with ``extra`` added."""
    given = str(psycopg.conninfo.conninfo_to_dict(url).get("options") or "")
    return f"{given} {extra}".strip()


def translate(exc: BaseException, retry_after: int, what: str) -> Unavailable:
    """A driver or pool error as the storage error the services understand."""
    if isinstance(exc, pgerrors.QueryCanceled):
        return Unavailable(f"{what}: the query took too long and was stopped", retry_after)
    if isinstance(exc, pgerrors.DiskFull | pgerrors.OutOfMemory):
        return StorageFull(f"{what}: the database is out of space", retry_after)
    if isinstance(exc, psycopg_pool.PoolTimeout):
        return StorageError(f"{what}: no database connection available", retry_after)
    if isinstance(exc, psycopg.OperationalError):
        return StorageError(f"{what}: the database is unreachable ({exc})", retry_after)
    return StorageError(f"{what}: {exc}", retry_after)

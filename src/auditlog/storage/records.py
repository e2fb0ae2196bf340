"""Credential and checkpoint records as the SQL stores keep them: one row layout, read once.

Both SQL backends store API keys, users and checkpoints in tables of the same columns (scopes
as comma-separated text); this module names the columns and turns a row back into its value,
so the two cannot drift apart.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from auditlog.model.credentials import ApiKey, User
from auditlog.model.retention import ArchiveRecord
from auditlog.model.streams import LogStream
from auditlog.storage.base import StoredCheckpoint

SELECT_KEYS = (
    "SELECT key_id, tenant, name, scopes, secret_hash, created_us, revoked_us, filter,"
    " expires_us FROM api_keys"
)
INSERT_KEY = (
    "INSERT INTO api_keys (key_id, tenant, name, scopes, secret_hash, created_us, filter,"
    " expires_us) VALUES ({0}, {0}, {0}, {0}, {0}, {0}, {0}, {0})"
)


def api_key_values(key: ApiKey) -> tuple[Any, ...]:
    """The values of a new key's row, in ``INSERT_KEY`` order."""
    return (
        key.key_id,
        key.tenant,
        key.name,
        scopes_text(key.scopes),
        key.secret_hash,
        key.created_us,
        key.filter,
        key.expires_us,
    )


#: The columns of a user, in ``User``'s order.
USER_COLUMNS = "username, tenant, scopes, password_hash, created_us"
SELECT_USERS = f"SELECT {USER_COLUMNS} FROM users"  # noqa: S608 (constant text)
#: Statements that answer the user they changed; ``{0}`` is the driver's parameter mark.
DELETE_USER = f"DELETE FROM users WHERE username = {{0}} RETURNING {USER_COLUMNS}"  # noqa: S608
_SET_HASH = "UPDATE users SET password_hash = {0} WHERE username = {0}"
SET_PASSWORD_HASH = f"{_SET_HASH} RETURNING {USER_COLUMNS}"
SELECT_CHECKPOINTS = "SELECT size, root_hash, timestamp_us, note FROM checkpoints"
#: The columns of a stream's definition and state, in ``LogStream``'s order.
STREAM_COLUMNS = (
    "stream_id, tenant, name, destination, filter, start_seq, paused, created_us, updated_us,"
    " position, deliveries, failures, last_success_us, last_error, last_error_us"
)
SELECT_STREAMS = f"SELECT {STREAM_COLUMNS} FROM streams"  # noqa: S608 (constant text)


def scopes_text(scopes: Sequence[str]) -> str:
    return ",".join(scopes)


def api_key(row: Sequence[Any]) -> ApiKey:
    """An ``api_keys`` row (``SELECT_KEYS``) as its value."""
    return ApiKey(
        key_id=row[0],
        tenant=row[1],
        name=row[2],
        scopes=tuple(row[3].split(",")),
        secret_hash=bytes(row[4]),
        created_us=row[5],
        revoked_us=row[6],
        filter=None if row[7] is None else str(row[7]),
        expires_us=None if row[8] is None else int(row[8]),
    )


def user(row: Sequence[Any]) -> User:
    """A ``users`` row (``SELECT_USERS``) as its value."""
    return User(
        username=row[0],
        tenant=row[1],
        scopes=tuple(row[2].split(",")),
        password_hash=row[3],
        created_us=row[4],
    )


#: The columns of an archive record, in ``ArchiveRecord``'s order.
ARCHIVE_COLUMNS = (
    "tenant, first_seq, end_seq, sha256, location, checkpoint_size, created_us, created_by"
)


def archive(row: Sequence[Any]) -> ArchiveRecord:
    """An archive record from a row of ``ARCHIVE_COLUMNS``."""
    return ArchiveRecord(
        str(row[0]), int(row[1]), int(row[2]), str(row[3]), str(row[4]), int(row[5]),
        int(row[6]), str(row[7]),
    )  # fmt: skip


def archive_values(r: ArchiveRecord) -> tuple[Any, ...]:
    """An archive record as the values of ``ARCHIVE_COLUMNS``."""
    return (
        r.tenant, r.first_seq, r.end_seq, r.sha256, r.location, r.checkpoint_size,
        r.created_us, r.created_by,
    )  # fmt: skip


def checkpoint(row: Sequence[Any]) -> StoredCheckpoint:
    """A ``checkpoints`` row (``SELECT_CHECKPOINTS``) as its value."""
    return StoredCheckpoint(int(row[0]), bytes(row[1]), int(row[2]), str(row[3]))


def stream(row: Sequence[Any]) -> LogStream:
    """A ``streams`` row (``SELECT_STREAMS``) as its value."""
    return LogStream(
        stream_id=str(row[0]),
        tenant=str(row[1]),
        name=str(row[2]),
        destination=str(row[3]),
        filter=str(row[4]),
        start_seq=int(row[5]),
        paused=bool(row[6]),
        created_us=int(row[7]),
        updated_us=int(row[8]),
        position=int(row[9]),
        deliveries=int(row[10]),
        failures=int(row[11]),
        last_success_us=None if row[12] is None else int(row[12]),
        last_error=None if row[13] is None else str(row[13]),
        last_error_us=None if row[14] is None else int(row[14]),
    )


def stream_values(stream: LogStream) -> tuple[Any, ...]:
    """The values of a new stream's row, in ``STREAM_COLUMNS`` order."""
    return (
        stream.stream_id,
        stream.tenant,
        stream.name,
        stream.destination,
        stream.filter,
        stream.start_seq,
        stream.paused,
        stream.created_us,
        stream.updated_us,
        stream.position,
        stream.deliveries,
        stream.failures,
        stream.last_success_us,
        stream.last_error,
        stream.last_error_us,
    )


class KeyCache:
    """API keys recently read, for ``seconds`` each, at most ``limit`` of them.

    Keys are read on every request. Each store tells the cache when keys may have changed
    elsewhere (``clear``, ``drop``): SQLite through a file every revocation rewrites, PostgreSQL
    through a notification; the expiry bounds the harm of a signal missed.
    """

    def __init__(self, seconds: float = 30.0, limit: int = 10_000) -> None:
        self._seconds = seconds
        self._limit = limit
        self._keys: dict[str, tuple[ApiKey, float]] = {}

    def get(self, key_id: str) -> ApiKey | None:
        cached = self._keys.get(key_id)
        if cached is None or cached[1] <= time.monotonic():
            return None
        return cached[0]

    def put(self, key: ApiKey) -> None:
        if len(self._keys) >= self._limit:
            self._keys.clear()
        self._keys[key.key_id] = (key, time.monotonic() + self._seconds)

    def drop(self, key_id: str) -> None:
        self._keys.pop(key_id, None)

    def clear(self) -> None:
        self._keys.clear()

"""The credentials part of the SQLite store: API keys (and their cache), users and secrets."""

from __future__ import annotations

import os
import sqlite3

from auditlog.errors import StorageError
from auditlog.model import times
from auditlog.model.credentials import ApiKey, User
from auditlog.storage import records
from auditlog.storage.sqlite import database
from auditlog.storage.sqlite.base import GENERATION_BYTES, SQLiteBase


class CredentialsPart(SQLiteBase):
    """API keys, cached until the keys generation changes (see ``SQLiteBase``), users, secrets."""

    # -- API keys ----------------------------------------------------------------------

    async def create_api_key(self, key: ApiKey) -> None:
        await self._write(self._create_api_key, key)

    def _create_api_key(self, key: ApiKey) -> None:
        try:
            self._w().execute(records.INSERT_KEY.format("?"), records.api_key_values(key))
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "creating an API key") from exc

    async def get_api_key(self, key_id: str) -> ApiKey | None:
        if self._generation is None:
            raise StorageError("the store is not open", self._retry)
        generation = self._generation[:GENERATION_BYTES]  # read before the database
        if generation != self._cached_generation:
            self._key_cache.clear()
            self._cached_generation = generation
        cached = self._key_cache.get(key_id)
        if cached is not None:
            return cached
        try:
            row = self._r().execute(records.SELECT_KEYS + " WHERE key_id = ?", (key_id,)).fetchone()
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "reading an API key") from exc
        if row is None:
            return None
        key = records.api_key(row)
        self._key_cache.put(key)
        return key

    async def list_api_keys(self, tenant: str | None = None) -> list[ApiKey]:
        sql = records.SELECT_KEYS
        params: tuple[str, ...] = ()
        if tenant is not None:
            sql += " WHERE tenant = ?"
            params = (tenant,)
        try:
            rows = self._r().execute(sql + " ORDER BY created_us, key_id", params).fetchall()
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "listing API keys") from exc
        return [records.api_key(r) for r in rows]

    async def revoke_api_key(self, key_id: str, revoked_us: int) -> bool:
        return await self._write(self._revoke_api_key, key_id, revoked_us)

    def _revoke_api_key(self, key_id: str, revoked_us: int) -> bool:
        try:
            cur = self._w().execute(
                "UPDATE api_keys SET revoked_us = ? WHERE key_id = ? AND revoked_us IS NULL",
                (revoked_us, key_id),
            )
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "revoking an API key") from exc
        self._bump_generation()
        return cur.rowcount > 0

    def _bump_generation(self) -> None:
        with open(self._generation_path, "r+b") as fh:
            fh.write(os.urandom(GENERATION_BYTES))

    # -- users and secrets ----------------------------------------------------------------

    async def create_user(self, user: User) -> bool:
        return await self._write(self._create_user, user)

    def _create_user(self, user: User) -> bool:
        try:
            cur = self._w().execute(
                "INSERT INTO users (username, tenant, scopes, password_hash, created_us)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (username) DO NOTHING",
                (
                    user.username,
                    user.tenant,
                    records.scopes_text(user.scopes),
                    user.password_hash,
                    user.created_us,
                ),
            )
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "creating a user") from exc
        return cur.rowcount > 0

    async def get_user(self, username: str) -> User | None:
        try:
            row = (
                self._r()
                .execute(
                    records.SELECT_USERS + " WHERE username = ?",
                    (username,),
                )
                .fetchone()
            )
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "reading a user") from exc
        if row is None:
            return None
        return records.user(row)

    async def list_users(self, tenant: str | None = None) -> list[User]:
        sql = records.SELECT_USERS
        params: tuple[str, ...] = ()
        if tenant is not None:
            sql += " WHERE tenant = ?"
            params = (tenant,)
        try:
            rows = self._r().execute(sql + " ORDER BY created_us, username", params).fetchall()
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "listing users") from exc
        return [records.user(r) for r in rows]

    async def delete_user(self, username: str) -> User | None:
        return await self._write(self._delete_user, username)

    def _delete_user(self, username: str) -> User | None:
        try:
            # fetchall: the statement runs to its end, and so commits, before this returns.
            rows = self._w().execute(records.DELETE_USER.format("?"), (username,)).fetchall()
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "removing a user") from exc
        return records.user(rows[0]) if rows else None

    async def set_password_hash(self, username: str, password_hash: str) -> User | None:
        return await self._write(self._set_password_hash, username, password_hash)

    def _set_password_hash(self, username: str, password_hash: str) -> User | None:
        try:
            rows = (
                self._w()
                .execute(records.SET_PASSWORD_HASH.format("?"), (password_hash, username))
                .fetchall()
            )
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, "changing a password") from exc
        return records.user(rows[0]) if rows else None

    async def load_or_create_secret(self, name: str, value: bytes) -> bytes:
        return await self._write(self._load_or_create_secret, name, value)

    def _load_or_create_secret(self, name: str, value: bytes) -> bytes:
        # Another process may insert between our statements; the write lock taken by BEGIN
        # IMMEDIATE makes the insert-if-absent and the read one step.
        conn = self._w()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    "INSERT INTO secrets (name, value, created_us) VALUES (?, ?, ?)"
                    " ON CONFLICT (name) DO NOTHING",
                    (name, value, times.now_us()),
                )
                row = conn.execute("SELECT value FROM secrets WHERE name = ?", (name,)).fetchone()
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise database.translate(exc, self._retry, f"storing the secret {name!r}") from exc
        return bytes(row[0])

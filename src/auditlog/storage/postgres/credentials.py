"""The credentials part of the PostgreSQL store: API keys (and their cache), users and secrets."""

from __future__ import annotations

from typing import Any

from auditlog.model import times
from auditlog.model.credentials import ApiKey, User
from auditlog.storage import records
from auditlog.storage.postgres.base import KEYS_CHANNEL, PostgresBase


class CredentialsPart(PostgresBase):
    """API keys, cached while revocations are heard (see ``PostgresBase``), users, secrets."""

    # -- API keys ----------------------------------------------------------------------

    async def create_api_key(self, key: ApiKey) -> None:
        async with self._connection("creating an API key") as conn:
            await conn.execute(records.INSERT_KEY.format("%s"), records.api_key_values(key))

    async def get_api_key(self, key_id: str) -> ApiKey | None:
        cached = self._key_cache.get(key_id)
        if cached is not None and self._listening:
            return cached
        epoch = self._key_epoch
        async with self._connection("reading an API key") as conn:
            cur = await conn.execute(records.SELECT_KEYS + " WHERE key_id = %s", (key_id,))
            row = await cur.fetchone()
        if row is None:
            return None
        key = records.api_key(row)
        if self._listening and epoch == self._key_epoch:
            self._key_cache.put(key)
        return key

    async def list_api_keys(self, tenant: str | None = None) -> list[ApiKey]:
        sql = records.SELECT_KEYS
        params: tuple[str, ...] = ()
        if tenant is not None:
            sql += " WHERE tenant = %s"
            params = (tenant,)
        async with self._connection("listing API keys") as conn:
            cur = await conn.execute(sql + " ORDER BY created_us, key_id", params)
            found = await cur.fetchall()
        return [records.api_key(r) for r in found]

    async def revoke_api_key(self, key_id: str, revoked_us: int) -> bool:
        async with self._connection("revoking an API key") as conn, conn.transaction():
            cur = await conn.execute(
                "UPDATE api_keys SET revoked_us = %s WHERE key_id = %s AND revoked_us IS NULL",
                (revoked_us, key_id),
            )
            # Delivered to every listening process when this transaction commits.
            await conn.execute("SELECT pg_notify(%s, %s)", (KEYS_CHANNEL, key_id))
            changed = cur.rowcount > 0
        self._key_cache.drop(key_id)
        self._key_epoch += 1
        return changed

    # -- users and secrets ----------------------------------------------------------------

    async def create_user(self, user: User) -> bool:
        async with self._connection("creating a user") as conn:
            cur = await conn.execute(
                "INSERT INTO users (username, tenant, scopes, password_hash, created_us)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (username) DO NOTHING",
                (
                    user.username,
                    user.tenant,
                    records.scopes_text(user.scopes),
                    user.password_hash,
                    user.created_us,
                ),
            )
            return cur.rowcount > 0

    async def get_user(self, username: str) -> User | None:
        # The primary, never the read pool: a replica that lags would accept the tokens of a
        # user just removed (login tokens are checked against this on every request).
        async with self._connection("reading a user") as conn:
            cur = await conn.execute(
                records.SELECT_USERS + " WHERE username = %s",
                (username,),
            )
            row: Any = await cur.fetchone()
        if row is None:
            return None
        return records.user(row)

    async def list_users(self, tenant: str | None = None) -> list[User]:
        sql = records.SELECT_USERS
        params: tuple[str, ...] = ()
        if tenant is not None:
            sql += " WHERE tenant = %s"
            params = (tenant,)
        async with self._connection("listing users") as conn:
            cur = await conn.execute(sql + " ORDER BY created_us, username", params)
            found = await cur.fetchall()
        return [records.user(r) for r in found]

    async def delete_user(self, username: str) -> User | None:
        async with self._connection("removing a user") as conn:
            cur = await conn.execute(records.DELETE_USER.format("%s"), (username,))
            row: Any = await cur.fetchone()
        return None if row is None else records.user(row)

    async def set_password_hash(self, username: str, password_hash: str) -> User | None:
        async with self._connection("changing a password") as conn:
            cur = await conn.execute(
                records.SET_PASSWORD_HASH.format("%s"), (password_hash, username)
            )
            row: Any = await cur.fetchone()
        return None if row is None else records.user(row)

    async def load_or_create_secret(self, name: str, value: bytes) -> bytes:
        async with self._connection(f"storing the secret {name!r}") as conn:
            # Of several processes inserting at once, one wins; the others' inserts wait for
            # it and do nothing, and the read that follows sees the winner's value.
            await conn.execute(
                "INSERT INTO secrets (name, value, created_us) VALUES (%s, %s, %s)"
                " ON CONFLICT (name) DO NOTHING",
                (name, value, times.now_us()),
            )
            cur = await conn.execute("SELECT value FROM secrets WHERE name = %s", (name,))
            row: Any = await cur.fetchone()
        return bytes(row[0])

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
            await conn.execute(
                "INSERT INTO api_keys (key_id, tenant, name, scopes, secret_hash, created_us)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (
                    key.key_id,
                    key.tenant,
                    key.name,
                    records.scopes_text(key.scopes),
                    key.secret_hash,
                    key.created_us,
                ),
            )

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
                "UPDATE api_keys SET revoked_us = coalesce(revoked_us, %s) WHERE key_id = %s",
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
        async with self._connection("reading a user") as conn:
            cur = await conn.execute(
                records.SELECT_USERS + " WHERE username = %s",
                (username,),
            )
            row: Any = await cur.fetchone()
        if row is None:
            return None
        return records.user(row)

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

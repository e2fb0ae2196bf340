"""Viewer tokens (API.md §12): read-only, short-lived credentials bound to a filter, for
showing one customer their own events inside another product, or a link into the console.

A viewer token is an API key with the scope ``events:read`` alone, a bound filter (§3's
parameters, kept as the stream filters are) and an end (``expires_us``). Because it is a key,
it is refused from the next request on once revoked, on every process, as keys are
(``auditlog keys revoke`` works on it too). Its filter is ANDed into every query, export and
live stream it makes (``auth.bind``); an event outside it is ``404`` by id (``auth.sees``);
the first version's routes refuse it (``403``). Making one is recorded in the tenant's log
(``auditlog.viewer_token.created``), and so are its exchange and its revocation; its reads are
recorded as any credential's are.

``exchange`` turns a token into a new one with the same filter and end and revokes the one
presented: the console's ``/ui/?token=...`` link works once, so the link left in a browser's
history (or a referrer, or a log) is no longer a credential.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from auditlog.errors import Forbidden, NotFound, Unauthorized
from auditlog.model import times
from auditlog.model.credentials import ADMIN, EVENTS_READ, ApiKey, Credential
from auditlog.model.selection import filter_object, parse_filter
from auditlog.service.auth import ApiKeys, require
from auditlog.service.bodies import bad_field, json_object
from auditlog.service.selfaudit import SelfAudit, credential_actor
from auditlog.storage.base import Store

# Event types of the records, not secrets.
VIEWER_TOKEN_CREATED = "auditlog.viewer_token.created"  # noqa: S105
VIEWER_TOKEN_EXCHANGED = "auditlog.viewer_token.exchanged"  # noqa: S105
VIEWER_TOKEN_REVOKED = "auditlog.viewer_token.revoked"  # noqa: S105
DEFAULT_TTL = 900
MAX_TTL = 86_400
_FIELDS = frozenset({"filter", "ttl_seconds"})
KEY_ID = re.compile(r"[a-z2-7]{16}", re.ASCII)


def view(key: ApiKey) -> dict[str, Any]:
    """A viewer token as listed: never its secret."""
    assert key.filter is not None
    return {
        "id": key.key_id,
        "filter": orjson.loads(key.filter),
        "created_at": times.format_us(key.created_us),
        "expires_at": times.format_us(key.expires_us or 0),
        "revoked_at": None if key.revoked_us is None else times.format_us(key.revoked_us),
    }


class ViewerTokens:
    """Make, list, exchange and revoke viewer tokens."""

    def __init__(self, store: Store, api_keys: ApiKeys, audit: SelfAudit) -> None:
        self._store = store
        self._keys = api_keys
        self._audit = audit

    async def create(self, credential: Credential, body: Any) -> dict[str, Any]:
        """A new viewer token of the caller's tenant; the answer holds it, shown once."""
        require(credential, ADMIN)
        body = json_object(body, _FIELDS, "a viewer token")
        _, pairs = parse_filter(body.get("filter", {}))
        ttl = body.get("ttl_seconds", DEFAULT_TTL)
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= MAX_TTL:
            raise bad_field("ttl_seconds", f"expected an integer from 1 to {MAX_TTL}")
        bound = orjson.dumps(filter_object(pairs)).decode()
        expires_us = times.now_us() + ttl * 1_000_000
        key, token = await self._issue(credential.tenant, bound, expires_us)
        # Recorded before the token is shown: should the record fail, nobody holds it.
        await self._audit.record(
            credential.tenant,
            VIEWER_TOKEN_CREATED,
            credential_actor(credential),
            "success",
            {
                "token_id": key.key_id,
                "filter": orjson.loads(bound),
                "ttl_seconds": ttl,
                "expires_at": times.format_us(expires_us),
            },
        )
        return {"id": key.key_id, "token": token, **view(key)}

    async def _issue(self, tenant: str, bound: str, expires_us: int) -> tuple[ApiKey, str]:
        return await self._keys.create(
            tenant, (EVENTS_READ,), None, bound=bound, expires_us=expires_us
        )

    async def list_all(self, credential: Credential) -> list[dict[str, Any]]:
        """The tenant's viewer tokens that are still valid, oldest first."""
        require(credential, ADMIN)
        now = times.now_us()
        keys = await self._store.list_api_keys(credential.tenant)
        return [view(k) for k in keys if k.viewer and k.active and (k.expires_us or 0) > now]

    async def exchange(self, credential: Credential) -> dict[str, Any]:
        """A new viewer token for the one presented, which is revoked."""
        if credential.kind != "viewer":
            raise Forbidden("only a viewer token can be exchanged")
        old = await self._store.get_api_key(credential.credential_id)
        if old is None or old.filter is None or old.expires_us is None:
            raise Forbidden("only a viewer token can be exchanged")
        # Revoked first, and only by the one exchange that finds it active: a link opened in
        # several places at once gives one session. Should what follows fail, the link is
        # spent and nobody holds a new token.
        if not await self._store.revoke_api_key(old.key_id, times.now_us()):
            raise Unauthorized("the API key has been revoked")
        key, token = await self._issue(old.tenant, old.filter, old.expires_us)
        await self._audit.record(
            old.tenant,
            VIEWER_TOKEN_EXCHANGED,
            credential_actor(credential),
            "success",
            {"token_id": old.key_id, "new_token_id": key.key_id},
        )
        return {"id": key.key_id, "token": token, **view(key)}

    async def revoke(self, credential: Credential, token_id: str) -> None:
        """Revoke a viewer token of the caller's tenant (``404`` for anything else)."""
        require(credential, ADMIN)
        key = await self._store.get_api_key(token_id) if KEY_ID.fullmatch(token_id) else None
        if key is None or key.tenant != credential.tenant or not key.viewer:
            raise NotFound(f"no viewer token with id {token_id!r}")
        if key.active:
            await self._audit.record(
                credential.tenant,
                VIEWER_TOKEN_REVOKED,
                credential_actor(credential),
                "success",
                {"token_id": key.key_id},
            )
        await self._store.revoke_api_key(key.key_id, times.now_us())

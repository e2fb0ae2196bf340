"""Authentication: API keys (issuing, checking, revoking) and the one ``authenticate`` that
accepts both kinds of credential, API keys and login tokens (``auditlog.service.tokens``).

A key is ``alk_<key id>_<secret>``: the id (16 base32 characters) finds the record, the secret
(32 random bytes, base64url) proves possession. Only SHA-256 of the secret is stored; a secret
of 256 random bits needs no slow hash, since nobody can guess it offline from its digest. The
comparison is constant-time, and an unknown key id is checked against a dummy digest so that
the answer takes the same time either way.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Any

import orjson

from auditlog.errors import Forbidden, Unauthorized
from auditlog.model import times
from auditlog.model.credentials import (
    ApiKey,
    Credential,
    check_credential_name,
    check_tenant,
)
from auditlog.model.matching import event_matches
from auditlog.model.query import Query, parse_query, restrict
from auditlog.model.selection import filter_pairs
from auditlog.service.tokens import Tokens
from auditlog.storage.base import Store

KEY_PREFIX = "alk"
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
_DUMMY_DIGEST = hashlib.sha256(b"auditlog: no such key").digest()
#: Credentials made from key records kept for reuse, at most (as the stores' key caches).
_CREDENTIALS_KEPT = 10_000


def _new_key_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(16))


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization`` header: ``Bearer <t>`` (or the old ``Bearer: <t>``).

    The scheme is case-insensitive. The first version read whatever followed ``Bearer:``, with
    or without a space, and so does this.
    """
    if not authorization:
        raise Unauthorized("missing Authorization header; expected 'Bearer <token>'")
    text = authorization.strip()
    scheme = text[:7].lower()
    token = text[7:].strip() if scheme in ("bearer ", "bearer:") else ""
    if not token:
        raise Unauthorized("malformed Authorization header; expected 'Bearer <token>'")
    return token


class ApiKeys:
    """Issue, check, list and revoke API keys kept in a ``Store``."""

    def __init__(self, store: Store) -> None:
        self._store = store
        # The credential made from each key record, reused while the store hands back that
        # same record (its key cache does until the key may have changed): making one is a
        # third of authenticating a request.
        self._credentials: dict[str, tuple[ApiKey, Credential]] = {}

    async def create(
        self,
        tenant: str,
        scopes: tuple[str, ...],
        name: str | None,
        *,
        bound: str | None = None,
        expires_us: int | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key for ``tenant``: the stored record and the token, which is shown once.

        ``bound`` (a filter, JSON text) and ``expires_us`` make a viewer token. ``ValueError``
        when the tenant or the name is not acceptable (see ``credentials``).
        """
        check_tenant(tenant)
        if name is not None:
            check_credential_name(name)
        key_id = _new_key_id()
        secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
        key = ApiKey(
            key_id=key_id,
            tenant=tenant,
            name=name or (f"viewer-{key_id}" if bound is not None else f"key-{key_id}"),
            scopes=scopes,
            secret_hash=_digest(secret),
            created_us=times.now_us(),
            filter=bound,
            expires_us=expires_us,
        )
        await self._store.create_api_key(key)
        return key, f"{KEY_PREFIX}_{key_id}_{secret}"

    async def authenticate(self, token: str) -> Credential:
        """The credential a token stands for; ``Unauthorized`` for anything else."""
        prefix, _, rest = token.partition("_")
        key_id, _, secret = rest.partition("_")
        if prefix != KEY_PREFIX or len(key_id) != 16 or not secret:
            raise Unauthorized("the token is not a valid credential")
        key = await self._store.get_api_key(key_id)
        expected = key.secret_hash if key is not None else _DUMMY_DIGEST
        valid = hmac.compare_digest(_digest(secret), expected)
        if key is None or not valid:
            raise Unauthorized("the token is not a valid credential")
        if not key.active:
            raise Unauthorized("the API key has been revoked")
        if key.expires_us is not None and times.now_us() >= key.expires_us:
            raise Unauthorized("the token has expired")
        made = self._credentials.get(key.key_id)
        if made is not None and made[0] is key:
            return made[1]
        credential = Credential(
            principal=f"key:{key.key_id}",
            tenant=key.tenant,
            name=key.name,
            scopes=frozenset(key.scopes),
            kind="viewer" if key.viewer else "api_key",
            credential_id=key.key_id,
            expires_us=key.expires_us,
            bound=bound_pairs(key.filter) if key.filter is not None else (),
        )
        if len(self._credentials) >= _CREDENTIALS_KEPT:
            self._credentials.clear()
        self._credentials[key.key_id] = (key, credential)
        return credential


class Authenticator:
    """The credential behind a bearer token: an API key (``alk_...``) or a login token (JWT)."""

    def __init__(self, api_keys: ApiKeys, tokens: Tokens) -> None:
        self._api_keys = api_keys
        self._tokens = tokens

    async def authenticate(self, token: str) -> Credential:
        """The credential ``token`` stands for; ``Unauthorized`` for anything else."""
        if token.startswith(KEY_PREFIX + "_"):
            return await self._api_keys.authenticate(token)
        return await self._tokens.verify(token)


def bound_pairs(text: str) -> tuple[tuple[str, str], ...]:
    """A viewer token's stored filter as the query parameters it stands for."""
    return tuple(filter_pairs(orjson.loads(text)))


def bind(credential: Credential, query: Query) -> Query:
    """``query`` as ``credential`` may run it: a viewer token's filter ANDed in."""
    if not credential.bound:
        return query
    bound, _ = parse_query(credential.bound)
    return restrict(query, bound)


def sees(credential: Credential, event: dict[str, Any]) -> bool:
    """Whether ``credential`` may see this stored event (a viewer token: its filter holds)."""
    if not credential.bound:
        return True
    bound, _ = parse_query(credential.bound)
    return event_matches(event, times.parse_rfc3339(event["time"]), bound)


def refuse_viewer(credential: Credential, what: str) -> None:
    """``Forbidden`` for a viewer token on a route that cannot hold it to its filter."""
    if credential.kind == "viewer":
        raise Forbidden(f"a viewer token cannot be used with {what}")


def require(credential: Credential, scope: str) -> None:
    """``Forbidden`` unless the credential carries ``scope``."""
    if not credential.allows(scope):
        raise Forbidden(f"this credential lacks the scope {scope!r}")

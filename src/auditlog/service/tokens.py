"""Login tokens: short-lived JWTs (RFC 7519) signed with Ed25519 (EdDSA, RFC 8037).

The signing key is made by the first process that starts on a store and kept there
(``Store.load_or_create_secret``), so every process on one store issues and accepts the same
tokens, and they survive a restart. The header names the key (``kid``: the first 16 hex
digits of SHA-256 of the public key), so a later change of key is recognisable.

A token carries ``iss`` ("auditlog"), ``sub`` (the username), ``tenant``, ``scopes``, ``iat``,
``exp``, ``jti`` (a random id: the credential id ``whoami`` reports) and ``pwv`` (the password
version, ``password_version``). Verification accepts EdDSA only: ``alg: none``, HMAC signed
with the public key (algorithm confusion), another key, a changed payload, a missing or
ill-typed claim, or a token past ``exp`` (with ``LEEWAY_SECONDS`` for clock skew between
processes) are all ``Unauthorized``. Times come from an injectable clock, so tests decide
what "now" is.

A token ends with its user: a token that passes every check above is refused when its user
has been removed (``users remove``), belongs to another tenant now (removed and made again),
or has had its password changed since the token was issued (``users passwd``): ``pwv`` is a
digest of the password hash the token was issued under, compared with the stored user's. So
every request with a login token reads its user from the store (a point lookup by primary
key; only for tokens whose signature holds, so forged tokens cost no lookup). No cache: a
change shows from the next request on, in every process on the store, with nothing to
notify. Login tokens are for people, at a person's request rate, where that lookup is cheap
(a few microseconds on SQLite, one round trip on PostgreSQL).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from auditlog.errors import StorageError, Unauthorized
from auditlog.model.credentials import SCOPES, USERNAME, Credential, User, check_tenant
from auditlog.storage.base import Store

ISSUER = "auditlog"
ALGORITHM = "EdDSA"
STORED_KEY_NAME = "jwt-signing-key/ed25519"
LEEWAY_SECONDS = 5
REQUIRED_CLAIMS = ("iss", "sub", "tenant", "scopes", "iat", "exp", "jti", "pwv")
INVALID = "the token is not a valid credential"
EXPIRED = "the token has expired"
USER_REMOVED = "the token's user has been removed"
#: Not a password: what a token issued before a new password is told.
PASSWORD_CHANGED = "the token's user has a new password since it was issued; log in again"  # noqa: S105
#: Bytes of SHA-256 in ``pwv``: enough that a new password is never mistaken for the old.
PASSWORD_VERSION_BYTES = 12


def password_version(password_hash: str) -> str:
    """The ``pwv`` claim of tokens issued under a stored password hash: the first 12 bytes of
    SHA-256 of the hash, base64url without padding.

    It changes whenever the hash does (every new password gets a new random salt, so even
    the same password again changes it) and tells nothing of the password: the hash's salt
    is not in the token, so the digest cannot be used to test guesses.
    """
    digest = hashlib.sha256(password_hash.encode()).digest()[:PASSWORD_VERSION_BYTES]
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token as handed to a client, and what it stands for."""

    token: str
    expires_in: int
    credential: Credential


def _int_claim(claims: dict[str, Any], name: str) -> int:
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise Unauthorized(INVALID)
    return value


class Tokens:
    """Issue and verify login tokens with the store's signing key."""

    def __init__(self, store: Store, lifetime: int, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._lifetime = lifetime
        self._clock = clock
        self._private: Ed25519PrivateKey | None = None
        self._public: Ed25519PublicKey | None = None
        self._kid = ""

    @property
    def lifetime(self) -> int:
        return self._lifetime

    async def load_key(self) -> None:
        """Load the signing key from the store, making it if this is the first start."""
        if self._private is not None:
            return
        offer = Ed25519PrivateKey.generate().private_bytes_raw()
        raw = await self._store.load_or_create_secret(STORED_KEY_NAME, offer)
        try:
            private = Ed25519PrivateKey.from_private_bytes(raw)
        except ValueError as exc:
            raise StorageError(
                f"the stored secret {STORED_KEY_NAME!r} is not an Ed25519 key"
            ) from exc
        public = private.public_key()
        self._kid = hashlib.sha256(public.public_bytes_raw()).hexdigest()[:16]
        self._private, self._public = private, public

    @property
    def key_id(self) -> str:
        """The ``kid`` of tokens issued here (empty until the key is loaded)."""
        return self._kid

    async def issue(self, user: User) -> IssuedToken:
        """A new token for ``user``, valid for ``lifetime`` seconds from now."""
        await self.load_key()
        assert self._private is not None
        now = int(self._clock())
        claims = {
            "iss": ISSUER,
            "sub": user.username,
            "tenant": user.tenant,
            "scopes": list(user.scopes),
            "iat": now,
            "exp": now + self._lifetime,
            "jti": secrets.token_urlsafe(16),
            "pwv": password_version(user.password_hash),
        }
        token = jwt.encode(claims, self._private, algorithm=ALGORITHM, headers={"kid": self._kid})
        return IssuedToken(token, self._lifetime, self._credential(claims))

    async def verify(self, token: str) -> Credential:
        """The credential a token stands for; ``Unauthorized`` for anything else."""
        await self.load_key()
        assert self._public is not None
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise Unauthorized(INVALID) from None
        if header.get("alg") != ALGORITHM or header.get("kid") != self._kid:
            raise Unauthorized(INVALID)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._public,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={
                    "require": list(REQUIRED_CLAIMS),
                    # Times are checked below, against our own clock.
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.InvalidTokenError:
            raise Unauthorized(INVALID) from None
        issued, expires = _int_claim(claims, "iat"), _int_claim(claims, "exp")
        now = self._clock()
        if issued > now + LEEWAY_SECONDS or expires <= issued:
            raise Unauthorized(INVALID)
        if now >= expires + LEEWAY_SECONDS:
            raise Unauthorized(EXPIRED)
        credential = self._credential(claims)
        await self._check_user(credential, claims["pwv"])
        return credential

    async def _check_user(self, credential: Credential, version: object) -> None:
        """``Unauthorized`` unless the token's user still exists, in its tenant, with the
        password the token was issued under."""
        if not isinstance(version, str):
            raise Unauthorized(INVALID)
        user = await self._store.get_user(credential.name)
        if user is None or user.tenant != credential.tenant:
            raise Unauthorized(USER_REMOVED)
        if not hmac.compare_digest(version.encode(), password_version(user.password_hash).encode()):
            raise Unauthorized(PASSWORD_CHANGED)

    @staticmethod
    def _credential(claims: dict[str, Any]) -> Credential:
        subject, tenant, scopes, jti = (
            claims["sub"],
            claims["tenant"],
            claims["scopes"],
            claims["jti"],
        )
        # Our own tokens always pass; the checks keep a malformed claim from going further.
        if not (isinstance(subject, str) and USERNAME.fullmatch(subject)):
            raise Unauthorized(INVALID)
        if not isinstance(tenant, str) or not isinstance(jti, str) or not jti:
            raise Unauthorized(INVALID)
        try:
            check_tenant(tenant)
        except ValueError:
            raise Unauthorized(INVALID) from None
        if not isinstance(scopes, list) or not all(s in SCOPES for s in scopes):
            raise Unauthorized(INVALID)
        return Credential(
            principal="user:" + subject,
            tenant=tenant,
            name=subject,
            scopes=frozenset(scopes),
            kind="jwt",
            credential_id=jti,
            expires_us=_int_claim(claims, "exp") * 1_000_000,
        )

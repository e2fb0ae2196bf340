"""The key that signs checkpoints, and the names it signs under.

One Ed25519 key signs the checkpoints of every tenant. It is either made by the first process
that starts on a store and kept there (``Store.load_or_create_secret``, like the login-token
key), or read from a file named by the setting ``log_signing_key_file``, which keeps it out of
the database: whoever can write the database but not read that file cannot sign.

Each tenant's log has its own origin, ``<log_origin>/<tenant>`` (C2SP tlog-checkpoint, "Note
text"), and the key signs each tenant's checkpoints under the key name equal to that origin,
as tlog-checkpoint asks ("the log's key name SHOULD match the origin line"). The key ID is
the signed-note one, which covers the name: the same public key has one key ID per tenant,
and a tenant's verifier key (``vkey``) accepts only that tenant's checkpoints.

The same key signs the tenants log (API.md §13), whose leaves are the tenants' checkpoints,
under the key name ``<log_origin>`` alone: witnesses follow that one log.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auditlog.errors import ConfigError, StorageError
from auditlog.integrity import note
from auditlog.storage.base import Store

#: The secret's name in the store when the key is kept there.
STORED_KEY_NAME = "checkpoint-signing-key/ed25519"


def check_origin_prefix(prefix: str) -> str:
    """The ``log_origin`` setting, or ``ConfigError``: origins and key names hold no space or +."""
    if not prefix or not note.valid_key_name(prefix):
        raise ConfigError(
            f"log_origin {prefix!r} must be non-empty, without spaces, '+' or control characters"
        )
    return prefix


def read_key_file(path: str) -> bytes:
    """The 32-byte Ed25519 seed in ``path``: a PEM PKCS#8 private key (``openssl genpkey
    -algorithm ed25519``) or the standard base64 of the 32 bytes. ``ConfigError`` otherwise."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"log_signing_key_file {path}: {exc.strerror or exc}") from None
    if data.lstrip().startswith(b"-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"log_signing_key_file {path}: not a usable PEM key: {exc}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(f"log_signing_key_file {path}: not an Ed25519 private key")
        return key.private_bytes_raw()
    try:
        seed = base64.b64decode(data.strip(), validate=True)
    except (binascii.Error, ValueError):
        seed = b""
    if len(seed) != note.ED25519_KEY_SIZE:
        raise ConfigError(
            f"log_signing_key_file {path}: expected a PEM Ed25519 private key or the base64 "
            f"of a {note.ED25519_KEY_SIZE}-byte seed"
        )
    return seed


class LogKey:
    """The checkpoint signing key, loaded once, and each tenant's origin, signer and verifier."""

    def __init__(self, store: Store, origin_prefix: str = "auditlog", key_file: str = "") -> None:
        self._store = store
        self.origin_prefix = check_origin_prefix(origin_prefix)
        self._key_file = key_file
        self._seed: bytes | None = None
        self._public = b""
        self._signers: dict[str, note.Signer] = {}
        self._tenants_signer: note.Signer | None = None

    @property
    def loaded(self) -> bool:
        return self._seed is not None

    async def load(self) -> None:
        """Read the key from its file, or from the store, making it on the very first start."""
        if self._seed is not None:
            return
        if self._key_file:
            seed = read_key_file(self._key_file)
        else:
            seed = await self._store.load_or_create_secret(STORED_KEY_NAME, os.urandom(32))
        if len(seed) != note.ED25519_KEY_SIZE:
            raise StorageError(f"the stored secret {STORED_KEY_NAME!r} is not an Ed25519 key")
        self._public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
        self._seed = seed

    @property
    def public_key(self) -> bytes:
        """The 32 bytes of the Ed25519 public key."""
        self._need()
        return self._public

    def _need(self) -> bytes:
        if self._seed is None:
            raise RuntimeError("the checkpoint signing key is not loaded")
        return self._seed

    def origin(self, tenant: str) -> str:
        """The origin line (and key name) of ``tenant``'s checkpoints."""
        return f"{self.origin_prefix}/{tenant}"

    def signer(self, tenant: str) -> note.Signer:
        """The signer of ``tenant``'s checkpoints, named by its origin."""
        signer = self._signers.get(tenant)
        if signer is None:
            if len(self._signers) > 10_000:
                self._signers.clear()
            signer = self._signers[tenant] = note.Signer(self.origin(tenant), self._need())
        return signer

    def verifier(self, tenant: str) -> note.Verifier:
        """The verifier of ``tenant``'s checkpoints."""
        return self.signer(tenant).verifier

    @property
    def tenants_origin(self) -> str:
        """The origin line (and key name) of the tenants log's checkpoints: ``log_origin``."""
        return self.origin_prefix

    def tenants_signer(self) -> note.Signer:
        """The signer of the tenants log's checkpoints (API.md §13)."""
        if self._tenants_signer is None:
            self._tenants_signer = note.Signer(self.tenants_origin, self._need())
        return self._tenants_signer

    def tenants_verifier(self) -> note.Verifier:
        """The verifier of the tenants log's checkpoints."""
        return self.tenants_signer().verifier

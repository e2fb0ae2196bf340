"""The checkpoint signing key (``auditlog.service.logkey``): kept in the store, or in a file."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auditlog.errors import ConfigError
from auditlog.integrity import note
from auditlog.service.logkey import STORED_KEY_NAME, LogKey, check_origin_prefix, read_key_file
from auditlog.storage.memory import MemoryStore

pytestmark = pytest.mark.anyio


async def test_the_key_is_made_once_and_kept_in_the_store() -> None:
    store = MemoryStore()
    first = LogKey(store)
    await first.load()
    again = LogKey(store)
    await again.load()
    assert first.public_key == again.public_key
    assert len(await store.load_or_create_secret(STORED_KEY_NAME, b"")) == 32
    other = LogKey(MemoryStore())
    await other.load()
    assert other.public_key != first.public_key


async def test_each_tenant_signs_under_its_origin() -> None:
    key = LogKey(MemoryStore(), "audit.example.com")
    await key.load()
    assert key.origin("acme") == "audit.example.com/acme"
    acme, beta = key.verifier("acme"), key.verifier("beta")
    assert acme.name == "audit.example.com/acme"
    assert acme.public_key == beta.public_key == key.public_key
    assert acme.key_id == note.key_id("audit.example.com/acme", key.public_key)
    assert acme.key_id != beta.key_id
    assert note.Verifier.from_vkey(acme.vkey) == acme
    signed = note.sign("hello\n", key.signer("acme"))
    note.verify(signed, acme)


def test_origin_prefixes() -> None:
    assert check_origin_prefix("example.com/logs") == "example.com/logs"
    for bad in ("", "a b", "a+b", "a\tb"):
        with pytest.raises(ConfigError, match="log_origin"):
            check_origin_prefix(bad)


def test_the_key_is_not_usable_before_it_is_loaded() -> None:
    key = LogKey(MemoryStore())
    assert not key.loaded
    with pytest.raises(RuntimeError, match="not loaded"):
        key.signer("acme")


@pytest.mark.parametrize("form", ["pem", "base64"])
async def test_a_key_file(tmp_path: Path, form: str) -> None:
    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes_raw()
    path = tmp_path / "checkpoint.key"
    if form == "pem":
        path.write_bytes(
            private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    else:
        path.write_text(base64.b64encode(seed).decode() + "\n")
    assert read_key_file(str(path)) == seed
    store = MemoryStore()
    key = LogKey(store, key_file=str(path))
    await key.load()
    assert key.public_key == private.public_key().public_bytes_raw()
    # Nothing is made in the store when the key comes from a file.
    assert await store.load_or_create_secret(STORED_KEY_NAME, b"none") == b"none"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a key", "expected a PEM Ed25519 private key"),
        (base64.b64encode(b"x" * 31), "expected a PEM Ed25519 private key"),
        (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "not a usable PEM"),
    ],
)
def test_a_bad_key_file(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.key"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message):
        read_key_file(str(path))


def test_a_missing_key_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="log_signing_key_file"):
        read_key_file(str(tmp_path / "nope.key"))

"""Signed checkpoints: C2SP tlog-checkpoint in a C2SP signed note, Ed25519.

A signed note is its text (ending in a newline), a blank line, and signature lines
``— <key name> <base64(4-byte key ID || 64-byte signature)>`` (an em dash, U+2014). The key
ID is ``SHA-256(name || 0x0A || 0x01 || public key)[:4]``; the signature is Ed25519 over the
text's UTF-8 bytes. A verifier key reads ``<name>+<hex key ID>+<base64(0x01 || key)>``. The
checkpoint text is the origin, the tree size in decimal and the base64 root hash, one a line,
then optional extension lines.

Ed25519 needs the ``cryptography`` package (``pip install 'auditlog-client[cryptography]'``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from auditlog_client.errors import VerificationError

_DASH = "\u2014 "
_DECIMAL = re.compile(r"0|[1-9][0-9]*")


def _b64(text: str, what: str) -> bytes:
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise VerificationError(f"{what} is not base64") from None
    return data


@dataclass(frozen=True, slots=True)
class VerifierKey:
    """An Ed25519 public key under a name: what checks a log's checkpoints."""

    name: str
    public_key: bytes

    @property
    def key_id(self) -> bytes:
        material = self.name.encode() + b"\n\x01" + self.public_key
        return hashlib.sha256(material).digest()[:4]

    @classmethod
    def parse(cls, key: str | bytes | Mapping[str, Any], name: str | None = None) -> VerifierKey:
        """A key given as a vkey string, as the JSON of ``GET /v1/log/public-key``, or as the
        32 raw key bytes (then ``name``, the log's origin, is needed)."""
        if isinstance(key, Mapping):
            key = str(key["vkey"])
        if isinstance(key, bytes):
            if name is None:
                raise ValueError("a raw public key needs the key's name (the log's origin)")
            if len(key) != 32:
                raise VerificationError("an Ed25519 public key has 32 bytes")
            return cls(name, key)
        parts = key.strip().split("+", 2)
        if len(parts) != 3:
            raise VerificationError("the verifier key is not <name>+<key ID>+<key>")
        raw = _b64(parts[2], "the verifier key")
        if len(raw) != 33 or raw[0] != 1:
            raise VerificationError("the verifier key is not an Ed25519 key (0x01 and 32 bytes)")
        verifier = cls(parts[0], raw[1:])
        if verifier.key_id.hex() != parts[1].lower():
            raise VerificationError("the verifier key's ID is not the ID of its key")
        return verifier

    def verify(self, text: bytes, signature: bytes) -> bool:
        try:
            from cryptography.exceptions import InvalidSignature
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise ImportError(
                "checking signatures needs cryptography: pip install 'auditlog-client[cryptography]'"
            ) from exc
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, text)
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A verified checkpoint: the log's origin, tree size and root hash."""

    origin: str
    size: int
    root_hash: bytes


def open_note(message: str, key: VerifierKey) -> str:
    """The text of a signed note, once ``key``'s signature on it verifies."""
    split = message.rfind("\n\n")
    if split < 0 or not message.endswith("\n"):
        raise VerificationError("the checkpoint is not a signed note")
    text, lines = message[: split + 1], message[split + 2 : -1].split("\n")
    found = False
    for line in lines:
        if not line.startswith(_DASH):
            raise VerificationError("a signature line of the note is malformed")
        name, _, encoded = line[len(_DASH) :].partition(" ")
        raw = _b64(encoded, "a signature of the note")
        if name != key.name or raw[:4] != key.key_id:
            continue  # another key's signature (a witness's cosignature, say)
        if len(raw) != 68 or not key.verify(text.encode(), raw[4:]):
            raise VerificationError(f"the signature by {key.name} does not verify")
        found = True
    if not found:
        raise VerificationError(f"the checkpoint is not signed by {key.name}+{key.key_id.hex()}")
    return text


def parse_checkpoint(text: str) -> Checkpoint:
    lines = text[:-1].split("\n") if text.endswith("\n") else []
    if len(lines) < 3:
        raise VerificationError("the checkpoint's text is not an origin, a size and a root")
    origin, size, root = lines[:3]
    if not origin or not _DECIMAL.fullmatch(size):
        raise VerificationError("the checkpoint's origin or size is malformed")
    root_hash = _b64(root, "the checkpoint's root hash")
    if len(root_hash) != 32:
        raise VerificationError("the checkpoint's root hash is not 32 bytes")
    return Checkpoint(origin, int(size), root_hash)


def verify_checkpoint(
    note: str, public_key: str | bytes | Mapping[str, Any], origin: str | None = None
) -> Checkpoint:
    """The checkpoint in a signed ``note``, once the log's key has verified it.

    ``public_key`` as ``VerifierKey.parse`` takes it. The checkpoint's origin must be the
    key's name (the service names its key after the log, as tlog-checkpoint recommends) or
    ``origin`` when given.
    """
    key = VerifierKey.parse(public_key, name=origin)
    checkpoint = parse_checkpoint(open_note(note, key))
    expected = origin if origin is not None else key.name
    if checkpoint.origin != expected:
        raise VerificationError(
            f"the checkpoint is of the log {checkpoint.origin!r}, not {expected!r}"
        )
    return checkpoint

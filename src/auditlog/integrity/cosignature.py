"""Witness cosignatures of checkpoints, C2SP tlog-cosignature v1 with Ed25519 (type 0x04).

A cosignature is a signature line of the checkpoint's signed note (see ``note``)::

    — <cosigner name> <base64(key ID || timestamp || Ed25519 signature)>

The key ID is ``SHA-256(name || 0x0A || 0x04 || 32-byte public key)[:4]``; the timestamp is
a big-endian u64 of POSIX seconds, at most 2^63 - 1; and the Ed25519 signature (RFC 8032) is
over the message ``message(text, timestamp)``::

    cosignature/v1
    time <timestamp>
    <the checkpoint's note text, final newline included>

A cosigner key is written as a vkey of type 0x04: ``<name>+<hex key ID>+<base64(0x04 ||
public key)>``, and its private half ``PRIVATE+KEY+<name>+<hex key ID>+<base64(0x04 ||
seed)>``. Keys of signed-note type 0x01 are refused, so that a log key is never taken for a
cosigner key nor the other way round.

``verify_cosignatures`` reads the cosignatures of a note by the keys it is given and ignores
every other signature line, the log's own among them, as the spec requires of clients.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from auditlog.integrity import KeyFormatError, NoteError, SignatureError
from auditlog.integrity import note as notes

__all__ = [
    "COSIGNATURE_ED25519",
    "COSIGNATURE_SIZE",
    "MAX_TIMESTAMP",
    "Cosigner",
    "CosignerKey",
    "add_cosignatures",
    "cosigner_key_id",
    "message",
    "parse_signature_lines",
    "verify_cosignatures",
]

#: The key ID type byte of Ed25519 cosignatures (tlog-cosignature, "Format").
COSIGNATURE_ED25519 = 0x04
#: The largest timestamp a cosignature may carry.
MAX_TIMESTAMP = 2**63 - 1
#: Bytes of a cosignature after the key ID: an 8-byte timestamp and a 64-byte signature.
COSIGNATURE_SIZE = 8 + 64

_PRIVATE_PREFIX = "PRIVATE+KEY+"
_HEX_ID = re.compile(r"[0-9a-f]{8}")
_KEY_TYPES = {0x01: "a signed-note Ed25519 key (type 0x01)", 0x06: "an ML-DSA-44 key (type 0x06)"}


def message(text: str, timestamp: int) -> str:
    """The message a cosignature signs: the header line, the time line, then ``text``.

    ``text`` is the checkpoint's note text, final newline included, without signature lines.
    """
    return f"cosignature/v1\ntime {timestamp}\n{text}"


def cosigner_key_id(name: str, public_key: bytes) -> bytes:
    """``SHA-256(name || 0x0A || 0x04 || public key)[:4]``, the key ID of an Ed25519 cosigner."""
    if len(public_key) != notes.ED25519_KEY_SIZE:
        raise KeyFormatError(
            f"an Ed25519 public key has {notes.ED25519_KEY_SIZE} bytes, not {len(public_key)}"
        )
    material = name.encode("utf-8") + b"\n" + bytes((COSIGNATURE_ED25519,)) + public_key
    return hashlib.sha256(material).digest()[: notes.KEY_ID_SIZE]


def _key_text(text: str, what: str) -> tuple[str, str, bytes]:
    """The name, hex key ID and 32 key bytes of ``<name>+<hex ID>+<base64(0x04 || key)>``."""
    parts = text.split("+", 2)
    if len(parts) != 3:
        raise KeyFormatError(f"{what} is not <name>+<key ID>+<key>")
    name, hex_id, b64 = parts
    raw = notes.b64decode(b64)
    if raw is None or not raw:
        raise KeyFormatError(f"{what} of {name!r} is not base64 of a key type and a key")
    if raw[0] != COSIGNATURE_ED25519:
        kind = _KEY_TYPES.get(raw[0], f"of type 0x{raw[0]:02x}")
        raise KeyFormatError(
            f"{what} of {name!r} is {kind}, not an Ed25519 cosignature key (type 0x04)"
        )
    if len(raw) != 1 + notes.ED25519_KEY_SIZE:
        raise KeyFormatError(
            f"{what} of {name!r} has {len(raw) - 1} key bytes, expected {notes.ED25519_KEY_SIZE}"
        )
    if not _HEX_ID.fullmatch(hex_id):
        raise KeyFormatError(
            f"{what} of {name!r} has key ID {hex_id!r}, not 8 lowercase hex digits"
        )
    return name, hex_id, raw[1:]


def _check_key_id(name: str, hex_id: str, actual: bytes) -> None:
    if hex_id != actual.hex():
        raise KeyFormatError(
            f"cosigner key {name!r} is written with key ID {hex_id}, but its ID is {actual.hex()}"
        )


@dataclass(frozen=True, slots=True)
class CosignerKey:
    """A cosigner's Ed25519 public key under its name, which checks its cosignatures."""

    name: str
    public_key: bytes
    key_id: bytes = field(init=False)

    def __post_init__(self) -> None:
        if not notes.valid_key_name(self.name):
            raise KeyFormatError(f"key name {self.name!r} is empty or has a space, + or control")
        object.__setattr__(self, "key_id", cosigner_key_id(self.name, self.public_key))

    @classmethod
    def from_vkey(cls, vkey: str) -> CosignerKey:
        """The key of a vkey ``<name>+<hex key ID>+<base64(0x04 || public key)>``.

        Raises ``KeyFormatError`` if it is malformed, not of type 0x04, or its ID is not the
        key's.
        """
        name, hex_id, public_key = _key_text(vkey, "cosigner key")
        key = cls(name, public_key)
        _check_key_id(key.name, hex_id, key.key_id)
        return key

    @property
    def vkey(self) -> str:
        """The key as a vkey: ``<name>+<hex key ID>+<base64(0x04 || public key)>``."""
        raw = bytes((COSIGNATURE_ED25519,)) + self.public_key
        return f"{self.name}+{self.key_id.hex()}+{notes.b64encode(raw)}"

    @property
    def key(self) -> str:
        """``<name>+<hex key ID>``, how messages name the key."""
        return f"{self.name}+{self.key_id.hex()}"

    def matches(self, signature: notes.Signature) -> bool:
        """Whether the signature line is by this key: the same name and key ID."""
        return signature.name == self.name and signature.key_id == self.key_id

    def verify(self, text: str, signature: notes.Signature) -> int:
        """The timestamp of ``signature``, once it verifies as this key's cosignature of ``text``.

        Raises ``SignatureError`` saying why not: the line is another key's, its bytes are not
        an 8-byte timestamp and a 64-byte signature, the timestamp exceeds 2^63 - 1, or the
        Ed25519 signature of ``message(text, timestamp)`` does not verify.
        """
        if not self.matches(signature):
            raise SignatureError(f"the signature by key {signature.key} is not by {self.key}")
        raw = signature.signature
        if len(raw) != COSIGNATURE_SIZE:
            raise SignatureError(
                f"the cosignature by key {self.key} has {len(raw)} bytes, expected "
                f"{COSIGNATURE_SIZE} (an 8-byte timestamp and a 64-byte Ed25519 signature)"
            )
        timestamp = int.from_bytes(raw[:8], "big")
        if timestamp > MAX_TIMESTAMP:
            raise SignatureError(
                f"the cosignature by key {self.key} has timestamp {timestamp}, more than 2^63 - 1"
            )
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(
                raw[8:], message(text, timestamp).encode("utf-8")
            )
        except (InvalidSignature, ValueError):
            raise SignatureError(
                f"the cosignature by key {self.key} at time {timestamp} does not verify"
            ) from None
        return timestamp


@dataclass(frozen=True, slots=True)
class Cosigner:
    """An Ed25519 cosigner: its name and 32-byte private seed (left out of ``repr``)."""

    name: str
    seed: bytes = field(repr=False)
    key: CosignerKey = field(init=False)

    def __post_init__(self) -> None:
        if len(self.seed) != notes.ED25519_KEY_SIZE:
            raise KeyFormatError(
                f"an Ed25519 private key has {notes.ED25519_KEY_SIZE} bytes, not {len(self.seed)}"
            )
        private = Ed25519PrivateKey.from_private_bytes(self.seed)
        object.__setattr__(
            self, "key", CosignerKey(self.name, private.public_key().public_bytes_raw())
        )

    @classmethod
    def from_skey(cls, skey: str) -> Cosigner:
        """The cosigner of ``PRIVATE+KEY+<name>+<hex key ID>+<base64(0x04 || seed)>``.

        Raises ``KeyFormatError`` if it is malformed, not of type 0x04, or its ID is not the
        key's.
        """
        if not skey.startswith(_PRIVATE_PREFIX):
            raise KeyFormatError("cosigner private key does not start with PRIVATE+KEY+")
        name, hex_id, seed = _key_text(skey[len(_PRIVATE_PREFIX) :], "cosigner private key")
        cosigner = cls(name, seed)
        _check_key_id(cosigner.name, hex_id, cosigner.key.key_id)
        return cosigner

    @classmethod
    def generate(cls, name: str) -> Cosigner:
        """A new cosigner named ``name`` with a random key."""
        return cls(name, os.urandom(notes.ED25519_KEY_SIZE))

    def skey(self) -> str:
        """The private key in text form; a secret, like ``seed``."""
        raw = bytes((COSIGNATURE_ED25519,)) + self.seed
        return f"{_PRIVATE_PREFIX}{self.name}+{self.key.key_id.hex()}+{notes.b64encode(raw)}"

    def cosign(self, text: str, timestamp: int) -> notes.Signature:
        """This cosigner's signature line on the note text ``text`` at ``timestamp``.

        ``timestamp`` is POSIX seconds in 1..2^63 - 1 (tlog-witness forbids zero), else
        ``ValueError``; ``text`` must end in a newline, else ``NoteError``.
        """
        if not 1 <= timestamp <= MAX_TIMESTAMP:
            raise ValueError(f"cosignature timestamp {timestamp} is not in 1..2^63 - 1")
        if not text.endswith("\n"):
            raise NoteError("a note's text must end in a newline")
        private = Ed25519PrivateKey.from_private_bytes(self.seed)
        signed = private.sign(message(text, timestamp).encode("utf-8"))
        return notes.Signature(self.name, self.key.key_id, timestamp.to_bytes(8, "big") + signed)


def verify_cosignatures(message: str | bytes, keys: Iterable[CosignerKey]) -> dict[str, int]:
    """The timestamp of each verified cosignature on a signed note, by the key's name.

    Each signature line whose name and key ID are one of ``keys`` must verify, else
    ``SignatureError`` naming the key; every other line is ignored. A note no key cosigned
    gives ``{}``. ``NoteError`` when the note is malformed; ``ValueError`` when two keys share
    a name.
    """
    by_name: dict[str, CosignerKey] = {}
    for key in keys:
        if key.name in by_name:
            raise ValueError(f"two cosigner keys named {key.name!r}")
        by_name[key.name] = key
    note = notes.parse(message)
    verified: dict[str, int] = {}
    for signature in note.signatures:
        known = by_name.get(signature.name)
        if known is not None and known.matches(signature):
            verified[known.name] = known.verify(note.text, signature)
    return verified


def parse_signature_lines(lines: str) -> tuple[notes.Signature, ...]:
    """The signature lines of a witness's add-checkpoint response: one or more well-formed
    lines ``— <name> <base64>``, each ending in a newline, no key twice. Else ``NoteError``."""
    if not lines:
        raise NoteError("the cosignature lines are empty")
    if not lines.endswith("\n"):
        raise NoteError("the last cosignature line does not end in a newline")
    for i, line in enumerate(lines[:-1].split("\n"), 1):
        if not line.startswith(notes.SIGNATURE_PREFIX):
            raise NoteError(f"cosignature line {i} does not start with an em dash and a space")
    try:
        # The lines are parsed as the signatures of a note, with that parser's rules.
        return notes.parse("-\n\n" + lines).signatures
    except NoteError as exc:
        raise NoteError(f"the cosignature lines are malformed: {exc}") from None


def add_cosignatures(message: str, lines: str) -> str:
    """The signed note ``message`` with the signature lines ``lines`` after its own.

    A line by a key (name and key ID) the note already has a signature of is skipped.
    Nothing is verified here (see ``verify_cosignatures``). ``NoteError`` when the note or
    ``lines`` is malformed (see ``parse_signature_lines``), or when there would be more than
    ``note.MAX_SIGNATURES`` lines.
    """
    note = notes.parse(message)
    have = {(s.name, s.key_id) for s in note.signatures}
    added = [s for s in parse_signature_lines(lines) if (s.name, s.key_id) not in have]
    signatures = (*note.signatures, *added)
    if len(signatures) > notes.MAX_SIGNATURES:
        raise NoteError(
            f"the note would have {len(signatures)} signatures, more than {notes.MAX_SIGNATURES}"
        )
    return notes.Note(note.text, signatures).message

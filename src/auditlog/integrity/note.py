"""Signed notes, C2SP signed-note v1, with Ed25519 keys (signature type 0x01).

A signed note is a text ending in a newline, a blank line, and one or more signature lines::

    <text, ending in "\\n">
    <blank line>
    — <key name> <base64(key ID || signature)>

The em dash is U+2014. The key ID is the first four bytes of
``SHA-256(key name || 0x0A || 0x01 || 32-byte Ed25519 public key)``, and the signature is the
Ed25519 signature (RFC 8032) of the text, final newline included. A verifier key is written
``<name>+<hex key ID>+<base64(0x01 || public key)>``, and a signer key
``PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || 32-byte seed)>``, the forms of
golang.org/x/mod/sumdb/note, which the ecosystem of C2SP tools reads.

Parsing is strict: a note that is not valid UTF-8, holds a control character other than
newline, lacks the blank line or the final newline, has a line that is not a well-formed
signature, or names the same key twice is refused with ``NoteError``. Verification follows the
spec: signatures by unknown keys are ignored, a signature by a known key must verify, and at
least one known key must have signed, else ``SignatureError``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from auditlog.integrity import KeyFormatError, NoteError, SignatureError

#: The signature type identifier byte of Ed25519 (signed-note, "Signature types").
ED25519 = 0x01
#: Bytes in a key ID.
KEY_ID_SIZE = 4
#: Bytes in an Ed25519 public key and in its private seed.
ED25519_KEY_SIZE = 32
#: A note with more signature lines is refused; the spec asks verifiers to take at least 16.
MAX_SIGNATURES = 100
#: What begins every signature line: an em dash and a space.
SIGNATURE_PREFIX = "\u2014 "

_PRIVATE_PREFIX = "PRIVATE+KEY+"


def b64encode(data: bytes) -> str:
    """Standard base64 with padding (RFC 4648 §4), as the C2SP formats write it."""
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str) -> bytes | None:
    """Standard base64 with padding (RFC 4648 §4), in its one canonical spelling, or None."""
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return data if b64encode(data) == text else None


def valid_key_name(name: str) -> bool:
    """Whether ``name`` may name a key (signed-note, "Format"): non-empty, without Unicode
    spaces or plus; control characters are refused anywhere in a note."""
    return bool(name) and not any(c.isspace() or c == "+" or c < " " for c in name)


def key_id(name: str, public_key: bytes) -> bytes:
    """The key ID of an Ed25519 key: ``SHA-256(name || 0x0A || 0x01 || public key)[:4]``.

    As the signed-note spec defines it for Ed25519 (section "Ed25519 signatures").
    """
    if len(public_key) != ED25519_KEY_SIZE:
        raise KeyFormatError(
            f"an Ed25519 public key has {ED25519_KEY_SIZE} bytes, not {len(public_key)}"
        )
    material = name.encode("utf-8") + b"\n" + bytes((ED25519,)) + public_key
    return hashlib.sha256(material).digest()[:KEY_ID_SIZE]


def _key_text(text: str, what: str) -> tuple[str, str, bytes]:
    """The name, hex key ID and 32 key bytes of ``<name>+<hex key ID>+<base64(0x01 || key)>``."""
    parts = text.split("+", 2)
    if len(parts) != 3:
        raise KeyFormatError(f"{what} is not <name>+<key ID>+<key>")
    name, hex_id, b64 = parts
    raw = b64decode(b64)
    if raw is None or len(raw) != 1 + ED25519_KEY_SIZE or raw[0] != ED25519:
        raise KeyFormatError(f"{what} of {name!r} is not base64 of 0x01 and a 32-byte Ed25519 key")
    return name, hex_id, raw[1:]


def _check_key_id(name: str, hex_id: str, actual: bytes) -> None:
    if hex_id != actual.hex():
        raise KeyFormatError(
            f"key {name!r} is written with key ID {hex_id!r}, but its ID is {actual.hex()}"
        )


@dataclass(frozen=True, slots=True)
class Signature:
    """One signature line of a note: the key's name and ID, and the signature bytes."""

    name: str
    key_id: bytes
    signature: bytes

    @property
    def line(self) -> str:
        """The signature line, final newline included."""
        return f"{SIGNATURE_PREFIX}{self.name} {b64encode(self.key_id + self.signature)}\n"

    @property
    def key(self) -> str:
        """``<name>+<hex key ID>``, how messages name the key."""
        return f"{self.name}+{self.key_id.hex()}"


@dataclass(frozen=True, slots=True)
class Note:
    """A note's text (final newline included) and its signatures, in order."""

    text: str
    signatures: tuple[Signature, ...]

    @property
    def message(self) -> str:
        """The signed note: the text, a blank line, and the signature lines."""
        return self.text + "\n" + "".join(s.line for s in self.signatures)


@dataclass(frozen=True, slots=True)
class Verifier:
    """An Ed25519 public key under a name, which checks signatures on notes."""

    name: str
    public_key: bytes
    key_id: bytes = field(init=False)

    def __post_init__(self) -> None:
        if not valid_key_name(self.name):
            raise KeyFormatError(f"key name {self.name!r} is empty or has a space, + or control")
        object.__setattr__(self, "key_id", key_id(self.name, self.public_key))

    @classmethod
    def from_vkey(cls, vkey: str) -> Verifier:
        """The verifier of a key in the text form ``<name>+<hex key ID>+<base64(0x01 || key)>``.

        Raises ``KeyFormatError`` if it is malformed, not Ed25519, or its ID is not the key's.
        """
        name, hex_id, public_key = _key_text(vkey, "verifier key")
        verifier = cls(name, public_key)
        _check_key_id(verifier.name, hex_id, verifier.key_id)
        return verifier

    @property
    def vkey(self) -> str:
        """The key in text form: ``<name>+<hex key ID>+<base64(0x01 || public key)>``."""
        return f"{self.name}+{self.key_id.hex()}+{b64encode(bytes((ED25519,)) + self.public_key)}"

    def verify(self, text: str, signature: bytes) -> bool:
        """Whether ``signature`` is this key's Ed25519 signature of ``text`` (UTF-8)."""
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(
                signature, text.encode("utf-8")
            )
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True, slots=True)
class Signer:
    """An Ed25519 private key under a name, which signs notes.

    ``seed`` is the 32-byte private key of RFC 8032 §5.1.5; it is left out of ``repr``.
    """

    name: str
    seed: bytes = field(repr=False)
    verifier: Verifier = field(init=False)

    def __post_init__(self) -> None:
        if len(self.seed) != ED25519_KEY_SIZE:
            raise KeyFormatError(
                f"an Ed25519 private key has {ED25519_KEY_SIZE} bytes, not {len(self.seed)}"
            )
        public = Ed25519PrivateKey.from_private_bytes(self.seed).public_key().public_bytes_raw()
        object.__setattr__(self, "verifier", Verifier(self.name, public))

    @classmethod
    def from_skey(cls, skey: str) -> Signer:
        """The signer of a key in text form ``PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || seed)>``.

        Raises ``KeyFormatError`` if it is malformed, not Ed25519, or its ID is not the key's.
        """
        if not skey.startswith(_PRIVATE_PREFIX):
            raise KeyFormatError("signer key does not start with PRIVATE+KEY+")
        name, hex_id, seed = _key_text(skey[len(_PRIVATE_PREFIX) :], "signer key")
        signer = cls(name, seed)
        _check_key_id(signer.name, hex_id, signer.key_id)
        return signer

    @property
    def key_id(self) -> bytes:
        """The key ID of the signer's public key."""
        return self.verifier.key_id

    def skey(self) -> str:
        """The private key in text form; a secret, like ``seed``."""
        raw = bytes((ED25519,)) + self.seed
        return f"{_PRIVATE_PREFIX}{self.name}+{self.key_id.hex()}+{b64encode(raw)}"

    def sign(self, text: str) -> Signature:
        """This key's signature of ``text`` (Ed25519 over its UTF-8 bytes)."""
        private = Ed25519PrivateKey.from_private_bytes(self.seed)
        return Signature(self.name, self.key_id, private.sign(text.encode("utf-8")))


def _check_text(text: str, what: str) -> None:
    for c in text:
        if c < " " and c != "\n":
            raise NoteError(f"{what} holds the control character U+{ord(c):04X}")


def sign(text: str, *signers: Signer) -> str:
    """The signed note of ``text`` with a signature by each signer, in order.

    ``text`` must end in a newline and hold no control character but newline (signed-note,
    "Format"); at least one signer is needed, and no key may sign twice.
    """
    if not text.endswith("\n"):
        raise NoteError("a note's text must end in a newline")
    _check_text(text, "the note's text")
    if not signers:
        raise NoteError("a signed note needs at least one signature")
    signatures = tuple(s.sign(text) for s in signers)
    _check_unique(signatures)
    return Note(text, signatures).message


def _check_unique(signatures: Iterable[Signature]) -> None:
    seen: set[tuple[str, bytes]] = set()
    for s in signatures:
        if (s.name, s.key_id) in seen:
            raise NoteError(f"the note has two signatures by key {s.key}")
        seen.add((s.name, s.key_id))


def _parse_line(line: str, number: int) -> Signature:
    if not line.startswith(SIGNATURE_PREFIX):
        raise NoteError(f"signature line {number} does not start with an em dash and a space")
    name, space, b64 = line[len(SIGNATURE_PREFIX) :].partition(" ")
    if not space or not valid_key_name(name):
        raise NoteError(f"signature line {number} has no valid key name and a space after it")
    raw = b64decode(b64)
    if raw is None or len(raw) <= KEY_ID_SIZE:
        raise NoteError(
            f"signature line {number} by {name!r} is not base64 of a key ID and a signature"
        )
    return Signature(name, raw[:KEY_ID_SIZE], raw[KEY_ID_SIZE:])


def parse(message: str | bytes) -> Note:
    """The text and signatures of a signed note, checked for form but not verified.

    Raises ``NoteError`` when the message is not a well-formed signed note (see the module).
    The text is what precedes the last blank line, so it may hold blank lines itself.
    """
    if isinstance(message, bytes):
        try:
            message = message.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NoteError(f"the note is not valid UTF-8 at byte {exc.start}") from None
    _check_text(message, "the note")
    split = message.rfind("\n\n")
    if split < 0:
        raise NoteError("the note has no blank line before its signatures")
    text, block = message[: split + 1], message[split + 2 :]
    if not block:
        raise NoteError("the note has no signature after its last blank line")
    if not block.endswith("\n"):
        raise NoteError("the note's last signature line does not end in a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"the note has {len(lines)} signatures, more than {MAX_SIGNATURES}")
    signatures = tuple(_parse_line(line, i) for i, line in enumerate(lines, 1))
    _check_unique(signatures)
    return Note(text, signatures)


def verify(message: str | bytes, verifiers: Verifier | Iterable[Verifier]) -> Note:
    """The note, once its signatures by the known ``verifiers`` all verify.

    Signed-note, "Signatures": a signature whose key name and ID are not both a known key's
    is ignored; one that is must verify, else ``SignatureError``; and at least one known key
    must have signed, else ``SignatureError`` too. ``NoteError`` when the note is malformed.
    """
    if isinstance(verifiers, Verifier):
        verifiers = (verifiers,)
    known: dict[tuple[str, bytes], Verifier] = {}
    for v in verifiers:
        if (v.name, v.key_id) in known:
            raise ValueError(f"two verifiers for key {v.name}+{v.key_id.hex()}")
        known[(v.name, v.key_id)] = v
    note = parse(message)
    verified = 0
    for s in note.signatures:
        verifier = known.get((s.name, s.key_id))
        if verifier is None:
            continue
        if not verifier.verify(note.text, s.signature):
            raise SignatureError(f"the signature by key {s.key} does not verify")
        verified += 1
    if not verified:
        keys = ", ".join(s.key for s in note.signatures)
        wanted = ", ".join(f"{name}+{kid.hex()}" for name, kid in known) or "none given"
        raise SignatureError(
            f"the note is signed by no known key: signed by {keys}; known {wanted}"
        )
    return note

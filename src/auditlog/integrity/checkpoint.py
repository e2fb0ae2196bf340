"""The log's tree head as a C2SP tlog-checkpoint: the body of a signed note.

The checkpoint text is at least three non-empty lines, each ending in a newline::

    <origin>                    who issued it, e.g. example.com/log42
    <tree size>                 ASCII decimal, no leading zeros (``0`` for the empty tree)
    <root hash>                 standard base64 (RFC 4648 §4) of the RFC 9162 root at that size
    <extension line>...         optional, opaque, non-empty

``format`` writes it and ``parse`` reads it back, strictly: anything else is a
``CheckpointError``. ``sign`` makes the signed note (see ``note``), and ``verify`` opens one,
checks its signature and returns the checkpoint it carries.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass

from auditlog.integrity import CheckpointError
from auditlog.integrity import note as notes
from auditlog.integrity.hasher import HASH_SIZE

#: The largest tree size: RFC 9162 counts leaves in a uint64, and so do the C2SP tools.
MAX_SIZE = 2**64 - 1

_DECIMAL = re.compile(r"0|[1-9][0-9]*")


def _check_line(line: str, what: str) -> None:
    if not line:
        raise CheckpointError(f"checkpoint {what} is empty")
    for c in line:
        if c < " ":
            raise CheckpointError(f"checkpoint {what} holds the control character U+{ord(c):04X}")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed tree head: the log ``origin``, its tree ``size`` and ``root_hash`` at that size.

    ``extensions`` are the optional extension lines, which C2SP does not recommend.
    Constructing one checks every field, so any checkpoint can be formatted.
    """

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, "origin")
        if not 0 <= self.size <= MAX_SIZE:
            raise CheckpointError(f"checkpoint tree size {self.size} is not in 0-{MAX_SIZE}")
        if len(self.root_hash) != HASH_SIZE:
            raise CheckpointError(
                f"checkpoint root hash has {len(self.root_hash)} bytes, expected {HASH_SIZE}"
            )
        for i, line in enumerate(self.extensions):
            _check_line(line, f"extension line {i + 1}")


def format(checkpoint: Checkpoint) -> str:
    """The checkpoint's note text (C2SP tlog-checkpoint, "Note text"), final newline included."""
    lines = [
        checkpoint.origin,
        str(checkpoint.size),
        base64.b64encode(checkpoint.root_hash).decode("ascii"),
        *checkpoint.extensions,
    ]
    return "".join(line + "\n" for line in lines)


def parse(text: str) -> Checkpoint:
    """The checkpoint in a note text (C2SP tlog-checkpoint, "Note text"), checked strictly.

    Raises ``CheckpointError`` unless ``text`` is at least three non-empty lines each ending in
    a newline: an origin, a tree size in decimal without leading zeros, the canonical base64
    of a 32-byte root hash, then any extension lines. ``format(parse(t)) == t``.
    """
    if not text.endswith("\n"):
        raise CheckpointError("checkpoint text does not end in a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointError(f"checkpoint text has {len(lines)} lines, expected at least 3")
    origin, size_line, root_line, *extensions = lines
    _check_line(origin, "origin")
    if not _DECIMAL.fullmatch(size_line):
        raise CheckpointError(
            f"checkpoint tree size {size_line!r} is not a decimal number without leading zeros"
        )
    size = int(size_line)
    try:
        root_hash = base64.b64decode(root_line, validate=True)
    except (binascii.Error, ValueError):
        root_hash = b""
    if len(root_hash) != HASH_SIZE or base64.b64encode(root_hash).decode("ascii") != root_line:
        raise CheckpointError(
            f"checkpoint root hash {root_line!r} is not the base64 of a {HASH_SIZE}-byte hash"
        )
    return Checkpoint(origin, size, root_hash, tuple(extensions))


def sign(checkpoint: Checkpoint, *signers: notes.Signer) -> str:
    """The checkpoint as a signed note, signed by each of ``signers``.

    C2SP tlog-checkpoint, "Signatures": the log's key name should be its origin; that is
    left to the caller, who chooses both.
    """
    return notes.sign(format(checkpoint), *signers)


def verify(
    message: str | bytes,
    verifiers: notes.Verifier | Iterable[notes.Verifier],
    *,
    origin: str | None = None,
) -> Checkpoint:
    """The checkpoint a signed note carries, once a known key's signature on it verifies.

    Raises ``NoteError`` or ``SignatureError`` as ``note.verify`` does, and ``CheckpointError``
    when the text is not a checkpoint or, if ``origin`` is given, is another log's.
    """
    checkpoint = parse(notes.verify(message, verifiers).text)
    if origin is not None and checkpoint.origin != origin:
        raise CheckpointError(
            f"checkpoint is for origin {checkpoint.origin!r}, expected {origin!r}"
        )
    return checkpoint

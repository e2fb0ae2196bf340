"""Offline proofs of inclusion (C2SP tlog-proof@v1) and the witness's add-checkpoint request
body (C2SP tlog-witness).

A tlog proof is lines ending in newlines::

    c2sp.org/tlog-proof@v1
    extra <base64>                  optional, opaque and not authenticated
    index <N>                       decimal, no leading zeros
    <base64 hash>...                the inclusion proof, leaf's sibling first, 32 bytes each
    <empty line>
    <the checkpoint's signed note, verbatim, cosignatures included>

``verify`` checks that the checkpoint is signed by a log key and that the inclusion proof
binds a leaf hash to its root; the cosignatures are for a policy to count (see ``policy``).

An add-checkpoint request body is::

    old <N>                         the size the client thinks the witness last cosigned
    <base64 hash>...                a consistency proof, at most 63 hashes
    <empty line>
    <the checkpoint's signed note>

A malformed body is a ``WitnessRequestError``, to which a witness answers 400. Everything is
parsed strictly: standard base64 in its one canonical spelling, no leading zeros, the note
well formed and its text a checkpoint.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from auditlog.integrity import (
    CheckpointError,
    NoteError,
    ProofError,
    WitnessRequestError,
)
from auditlog.integrity import checkpoint as checkpoints
from auditlog.integrity import note as notes
from auditlog.integrity import proof as proofs
from auditlog.integrity.hasher import HASH_SIZE

__all__ = [
    "HEADER",
    "MAX_CONSISTENCY_HASHES",
    "AddCheckpoint",
    "TlogProof",
    "format",
    "format_add_checkpoint",
    "parse",
    "parse_add_checkpoint",
    "parse_size_body",
    "split",
    "verify",
]

#: The first line of every tlog proof.
HEADER = "c2sp.org/tlog-proof@v1"
#: The most consistency proof lines an add-checkpoint request may hold (tlog-witness).
MAX_CONSISTENCY_HASHES = 63
#: The most hashes an inclusion proof in a tree of at most 2^64 - 1 leaves has.
MAX_INCLUSION_HASHES = 64

_DECIMAL = re.compile(r"0|[1-9][0-9]{0,19}")
_MAX_U64 = 2**64 - 1


def _u64(text: str) -> int | None:
    if not _DECIMAL.fullmatch(text):
        return None
    value = int(text)
    return value if value <= _MAX_U64 else None


def _hash(line: str) -> bytes | None:
    raw = notes.b64decode(line)
    return raw if raw is not None and len(raw) == HASH_SIZE else None


def _check_hashes(hashes: Iterable[bytes]) -> None:
    for i, h in enumerate(hashes):
        if len(h) != HASH_SIZE:
            raise ValueError(f"proof hash {i} has {len(h)} bytes, not {HASH_SIZE}")


def _decode(body: str | bytes) -> str | None:
    if isinstance(body, str):
        return body
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


@dataclass(frozen=True)
class TlogProof:
    """A tlog proof: leaf ``index``, its inclusion proof ``hashes``, the signed ``checkpoint``
    note (verbatim) and the optional ``extra`` data, which no signature covers.

    Constructing one checks the index (a u64), the hashes (32 bytes each) and that ``extra``,
    if given, is not empty; the checkpoint is checked by ``parse`` and ``verify``.
    """

    index: int
    hashes: tuple[bytes, ...]
    checkpoint: str
    extra: bytes | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.index <= _MAX_U64:
            raise ValueError(f"leaf index {self.index} is not in 0..2^64 - 1")
        _check_hashes(self.hashes)
        if self.extra == b"":
            raise ValueError("extra data is empty; leave it out instead")


def format(proof: TlogProof) -> str:
    """The proof as text (C2SP tlog-proof@v1, "Format")."""
    lines = [HEADER]
    if proof.extra is not None:
        lines.append(f"extra {notes.b64encode(proof.extra)}")
    lines.append(f"index {proof.index}")
    lines.extend(notes.b64encode(h) for h in proof.hashes)
    return "".join(line + "\n" for line in lines) + "\n" + proof.checkpoint


def parse(text: str | bytes) -> TlogProof:
    """The proof in a tlog proof text, checked strictly.

    Raises ``ProofError`` when the header, extra, index or hash lines are malformed or the
    empty line is missing, and ``NoteError`` or ``CheckpointError`` when what follows it is
    not a signed note of a checkpoint.
    """
    decoded = _decode(text)
    if decoded is None:
        raise ProofError("the tlog proof is not valid UTF-8")
    head, blank, note = decoded.partition("\n\n")
    if not blank:
        raise ProofError("the tlog proof has no empty line before its checkpoint")
    lines = head.split("\n")
    if lines[0] != HEADER:
        raise ProofError(f"the tlog proof does not start with the line {HEADER}")
    at = 1
    extra: bytes | None = None
    if at < len(lines) and lines[at].startswith("extra "):
        extra = notes.b64decode(lines[at][len("extra ") :])
        if not extra:
            raise ProofError("the tlog proof's extra line is not base64 of some data")
        at += 1
    if at == len(lines) or not lines[at].startswith("index "):
        raise ProofError(f"line {at + 1} of the tlog proof is not its index line")
    index = _u64(lines[at][len("index ") :])
    if index is None:
        raise ProofError(
            f"the tlog proof's index {lines[at][len('index ') :]!r} is not a decimal number "
            "in 0..2^64 - 1 without leading zeros"
        )
    hashes: list[bytes] = []
    for number, line in enumerate(lines[at + 1 :], at + 2):
        h = _hash(line)
        if h is None:
            raise ProofError(
                f"line {number} of the tlog proof is not the base64 of a {HASH_SIZE}-byte hash"
            )
        hashes.append(h)
    if len(hashes) > MAX_INCLUSION_HASHES:
        raise ProofError(
            f"the tlog proof has {len(hashes)} hashes, more than {MAX_INCLUSION_HASHES}"
        )
    checkpoints.parse(notes.parse(note).text)
    return TlogProof(index, tuple(hashes), note, extra)


def split(text: str) -> list[str]:
    """The texts of tlog proofs written one after another, each starting with its header.

    A proof ends after its note's signature lines: its proof lines run to an empty line, its
    checkpoint lines (never empty) to the next, and then come lines that start with an em
    dash. Raises ``ProofError`` when the text is not proofs one after another; each text is
    left to ``parse``.
    """
    if not text:
        return []
    if not text.endswith("\n"):
        raise ProofError("the tlog proofs do not end in a newline")
    lines = text[:-1].split("\n")
    proofs_: list[str] = []
    at = 0
    while at < len(lines):
        start = at
        if lines[at] != HEADER:
            raise ProofError(f"line {at + 1} starts no tlog proof: expected {HEADER}")
        for _part in ("proof lines", "checkpoint"):
            while at < len(lines) and lines[at]:
                at += 1
            if at == len(lines):
                raise ProofError(f"the tlog proof at line {start + 1} ends before its signatures")
            at += 1
        signatures = at
        while at < len(lines) and lines[at].startswith(notes.SIGNATURE_PREFIX):
            at += 1
        if at == signatures:
            raise ProofError(f"the tlog proof at line {start + 1} has no signature line")
        proofs_.append("".join(line + "\n" for line in lines[start:at]))
    return proofs_


def verify(
    proof: TlogProof,
    leaf_hash: bytes,
    log_verifiers: notes.Verifier | Iterable[notes.Verifier],
    *,
    origin: str | None = None,
) -> checkpoints.Checkpoint:
    """The checkpoint of ``proof``, once it shows the leaf ``leaf_hash`` at its index.

    The checkpoint must be signed by one of ``log_verifiers`` (``checkpoint.verify``, which
    raises ``NoteError``, ``SignatureError`` or ``CheckpointError``), and the inclusion proof
    must lead from the leaf to its root at its size, else ``ProofError``. Cosignatures are not
    counted here: see ``policy.Policy.check``.
    """
    checkpoint = checkpoints.verify(proof.checkpoint, log_verifiers, origin=origin)
    proofs.verify_inclusion(
        proof.index, checkpoint.size, leaf_hash, proof.hashes, checkpoint.root_hash
    )
    return checkpoint


@dataclass(frozen=True)
class AddCheckpoint:
    """An add-checkpoint request: the ``old_size`` the witness is thought to have cosigned, a
    consistency ``proof`` from it, and the new ``checkpoint`` as a signed note."""

    old_size: int
    proof: tuple[bytes, ...]
    checkpoint: str

    def __post_init__(self) -> None:
        if not 0 <= self.old_size <= _MAX_U64:
            raise ValueError(f"old size {self.old_size} is not in 0..2^64 - 1")
        if len(self.proof) > MAX_CONSISTENCY_HASHES:
            raise ValueError(
                f"a consistency proof of {len(self.proof)} hashes is more than "
                f"{MAX_CONSISTENCY_HASHES}"
            )
        _check_hashes(self.proof)


def format_add_checkpoint(request: AddCheckpoint) -> str:
    """The request body of ``POST <submission prefix>/add-checkpoint`` (C2SP tlog-witness)."""
    lines = [f"old {request.old_size}", *(notes.b64encode(h) for h in request.proof)]
    return "".join(line + "\n" for line in lines) + "\n" + request.checkpoint


def parse_add_checkpoint(body: bytes) -> AddCheckpoint:
    """The add-checkpoint request in ``body``, checked strictly; else ``WitnessRequestError``.

    Besides the form (see the module), the old size may not exceed the checkpoint's size,
    which tlog-witness also answers with 400.
    """
    text = _decode(body)
    if text is None:
        raise WitnessRequestError("the request body is not valid UTF-8")
    head, blank, note = text.partition("\n\n")
    if not blank:
        raise WitnessRequestError("the request body has no empty line before the checkpoint")
    old, *lines = head.split("\n")
    old_size = _u64(old.removeprefix("old ")) if old.startswith("old ") else None
    if old_size is None:
        raise WitnessRequestError(
            "the request body's first line is not old <size>, a decimal number in "
            "0..2^64 - 1 without leading zeros"
        )
    if len(lines) > MAX_CONSISTENCY_HASHES:
        raise WitnessRequestError(
            f"the request has {len(lines)} consistency proof lines, more than "
            f"{MAX_CONSISTENCY_HASHES}"
        )
    hashes: list[bytes] = []
    for number, line in enumerate(lines, 2):
        h = _hash(line)
        if h is None:
            raise WitnessRequestError(
                f"line {number} of the request is not the base64 of a {HASH_SIZE}-byte hash"
            )
        hashes.append(h)
    try:
        size = checkpoints.parse(notes.parse(note).text).size
    except (NoteError, CheckpointError) as exc:
        raise WitnessRequestError(f"the request's checkpoint is malformed: {exc}") from None
    if old_size > size:
        raise WitnessRequestError(f"old size {old_size} is more than the checkpoint's {size}")
    return AddCheckpoint(old_size, tuple(hashes), note)


def parse_size_body(body: bytes) -> int:
    """The tree size in a 409 Conflict body (``text/x.tlog.size``): ``<decimal>\\n``.

    Raises ``WitnessRequestError`` unless it is a decimal u64 without leading zeros and one
    newline.
    """
    text = _decode(body)
    size = _u64(text[:-1]) if text is not None and text.endswith("\n") else None
    if size is None:
        raise WitnessRequestError(
            "the size body is not a decimal number in 0..2^64 - 1 without leading zeros "
            "and a newline"
        )
    return size

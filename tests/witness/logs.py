"""A test log for the witness: leaves, signed checkpoints, consistency proofs, request bodies.

``TestLog(origin)`` has a fresh Ed25519 key named after its origin and a list of leaf hashes
that grows as a test appends; ``checkpoint(size)`` is its signed note at that size, and
``body(old, size)`` an add-checkpoint request body with the right consistency proof.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Sequence

from auditlog.integrity import checkpoint as checkpoints
from auditlog.integrity import note as notes
from auditlog.integrity import proof as proofs
from auditlog.integrity.cosignature import Cosigner


def b64(h: bytes) -> str:
    return base64.b64encode(h).decode("ascii")


def request_body(old: int, proof: Sequence[bytes], message: str) -> bytes:
    """An add-checkpoint body: the old size line, proof lines, a blank line, the note."""
    lines = [f"old {old}", *(b64(h) for h in proof)]
    return ("".join(line + "\n" for line in lines) + "\n" + message).encode("utf-8")


class TestLog:
    __test__ = False

    def __init__(self, origin: str = "example.com/log", leaves: int = 0) -> None:
        self.origin = origin
        self.signer = notes.Signer(origin, os.urandom(32))
        self.leaves = [hashlib.sha256(b"leaf %d" % i).digest() for i in range(leaves)]

    @property
    def vkey(self) -> str:
        return self.signer.verifier.vkey

    def policy(self) -> str:
        return f"log {self.vkey}\nquorum none\n"

    def grow(self, size: int) -> None:
        while len(self.leaves) < size:
            self.leaves.append(hashlib.sha256(b"leaf %d" % len(self.leaves)).digest())

    def root(self, size: int) -> bytes:
        self.grow(size)
        return proofs.root_of_leaves(self.leaves[:size])

    def text(self, size: int, root: bytes | None = None) -> str:
        root = self.root(size) if root is None else root
        return checkpoints.format(checkpoints.Checkpoint(self.origin, size, root))

    def checkpoint(self, size: int, root: bytes | None = None) -> str:
        return notes.sign(self.text(size, root), self.signer)

    def proof(self, old: int, size: int) -> tuple[bytes, ...]:
        self.grow(size)
        return proofs.consistency_of_leaves(old, self.leaves[:size])

    def body(
        self,
        old: int,
        size: int,
        *,
        proof: Sequence[bytes] | None = None,
        root: bytes | None = None,
    ) -> bytes:
        proof = self.proof(old, size) if proof is None else proof
        return request_body(old, proof, self.checkpoint(size, root))


def witness(name: str = "witness.example/w1") -> Cosigner:
    return Cosigner.generate(name)

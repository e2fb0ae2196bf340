"""The pure integrity core: Merkle tree hashing, proofs, checkpoints and signed notes.

Each tenant's log is an RFC 9162 §2.1 Merkle tree over its stored events in ``seq`` order
(API.md §5). The modules, each tied to its specification:

``hasher``      leaf and node hashes (RFC 9162 §2.1.1), the leaf of a stored event
``compact``     a compact range over [0, n): the root, and the complete subtrees as they appear
``proof``       inclusion and consistency proofs (RFC 9162 §2.1.3, §2.1.4): made, and verified
``checkpoint``  the tree head as a C2SP tlog-checkpoint, signed as a note
``note``        C2SP signed notes with Ed25519 keys
``cosignature`` witnesses' cosignatures of checkpoints, C2SP tlog-cosignature (Ed25519)
``policy``      which logs and quorum of witnesses a checkpoint needs, C2SP tlog-policy
``tlogproof``   offline proofs of inclusion (C2SP tlog-proof) and witness requests (tlog-witness)

Nothing here does I/O, SQL or HTTP. Proofs are made from a function that returns the hash of
any complete subtree, so storage can serve them from the nodes it keeps.

The errors a verification raises, all with a message that says what was expected::

    IntegrityError           (an AuditlogError)
    ├── ProofError           an inclusion or consistency proof does not verify
    ├── CheckpointError      a checkpoint body is malformed or is not the one expected
    ├── NoteError            a signed note is malformed
    ├── SignatureError       no known key signed the note, or a known key's signature is bad
    ├── KeyFormatError       a signer or verifier key in text form is malformed
    ├── PolicyError          a policy file is malformed, or a checkpoint does not meet a policy
    └── WitnessRequestError  a tlog-witness request body (or 409 size body) is malformed

Making a proof from arguments that cannot name one (an index beyond the tree) is a caller's
mistake and raises ``ValueError``; checking one that comes from elsewhere raises ``ProofError``.
"""

from __future__ import annotations

from auditlog.errors import AuditlogError

__all__ = [
    "CheckpointError",
    "IntegrityError",
    "KeyFormatError",
    "NoteError",
    "PolicyError",
    "ProofError",
    "SignatureError",
    "WitnessRequestError",
]


class IntegrityError(AuditlogError):
    """Something that should prove the log's integrity does not."""


class ProofError(IntegrityError):
    """An inclusion or consistency proof does not verify (RFC 9162 §2.1.3.2, §2.1.4.2)."""


class CheckpointError(IntegrityError):
    """A checkpoint body is malformed, or is for another origin (C2SP tlog-checkpoint)."""


class NoteError(IntegrityError):
    """A signed note is malformed (C2SP signed-note, "Format")."""


class SignatureError(IntegrityError):
    """A note is not signed by any known key, or a known key's signature fails to verify."""


class KeyFormatError(IntegrityError):
    """A verifier or signer key in its text form is malformed or inconsistent."""


class PolicyError(IntegrityError):
    """A policy file is malformed, or a checkpoint does not meet the policy (C2SP tlog-policy)."""


class WitnessRequestError(IntegrityError):
    """A tlog-witness add-checkpoint body, or a 409 size body, is malformed (C2SP tlog-witness).

    A witness answers such a request with 400 Bad Request.
    """

"""Receipts of ``wait="checkpoint"`` writes, and their check offline.

A receipt is what ``POST /v1/events?wait=checkpoint`` answers for one event: the stored
event, a signed checkpoint of the tenant's log, and the event's inclusion proof in that
checkpoint's tree. ``verify_inclusion`` checks it with nothing but the log's public key
(pinned beforehand, over a channel the caller trusts): the checkpoint's Ed25519 signature
(C2SP signed note), then that the event's leaf, ``SHA-256(0x00 || canonical bytes)``, leads
along the proof to the checkpoint's root (RFC 9162 §2.1.3.2).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from auditlog_client.errors import VerificationError
from auditlog_client.merkle import canonical_bytes, leaf_hash, root_from_inclusion
from auditlog_client.note import Checkpoint, verify_checkpoint


@dataclass(frozen=True, slots=True)
class Receipt:
    """A stored event with the checkpoint that covers it and its inclusion proof.

    ``checkpoint`` and ``inclusion_proof`` are ``None`` when no checkpoint came within the
    service's wait (``checkpoint_wait_ms``): the event is stored all the same.
    """

    event: dict[str, Any]
    checkpoint: dict[str, Any] | None
    inclusion_proof: dict[str, Any] | None

    @classmethod
    def from_answer(cls, answer: Mapping[str, Any]) -> Receipt:
        return cls(dict(answer["event"]), answer.get("checkpoint"), answer.get("inclusion_proof"))

    def as_dict(self) -> dict[str, Any]:
        """The receipt as the service sent it, to keep as JSON."""
        return {
            "event": self.event,
            "checkpoint": self.checkpoint,
            "inclusion_proof": self.inclusion_proof,
        }


def _hash(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise VerificationError(f"{what} is missing")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise VerificationError(f"{what} is not base64") from None


def verify_inclusion(
    event: Mapping[str, Any] | bytes,
    receipt: Receipt | Mapping[str, Any],
    public_key: str | bytes | Mapping[str, Any],
) -> Checkpoint:
    """Check offline that ``event`` is in the log, as ``receipt`` claims; the verified
    checkpoint. Raises ``VerificationError`` if anything does not hold.

    ``event``: the stored event (as the service returns it, ``seq`` and ``received_at``
    included), or its exact bytes. ``receipt``: a ``Receipt`` or its JSON. ``public_key``:
    the log's verifier key (``vkey`` of ``GET /v1/log/public-key``, or that answer as JSON).
    """
    if isinstance(receipt, Receipt):
        receipt = receipt.as_dict()
    checkpoint_json = receipt.get("checkpoint")
    proof = receipt.get("inclusion_proof")
    if not isinstance(checkpoint_json, Mapping) or not isinstance(proof, Mapping):
        raise VerificationError(
            "the receipt holds no checkpoint (none came in time): ask for a proof later"
        )
    note = checkpoint_json.get("note")
    if not isinstance(note, str):
        raise VerificationError("the receipt's checkpoint has no signed note")
    checkpoint = verify_checkpoint(note, public_key)

    index, size = proof.get("leaf_index"), proof.get("tree_size")
    if not isinstance(index, int) or not isinstance(size, int):
        raise VerificationError("the inclusion proof has no leaf index or tree size")
    if size != checkpoint.size:
        raise VerificationError(
            f"the proof is for a tree of {size} events, the checkpoint of {checkpoint.size}"
        )
    data = event if isinstance(event, bytes) else canonical_bytes(event)
    if not isinstance(event, bytes) and event.get("seq", index) != index:
        raise VerificationError(f"the event has seq {event.get('seq')}, the proof leaf {index}")
    leaf = leaf_hash(data)
    if "leaf_hash" in proof and _hash(proof["leaf_hash"], "the proof's leaf hash") != leaf:
        raise VerificationError("the event is not the leaf the proof is for")
    hashes = proof.get("hashes")
    if not isinstance(hashes, list):
        raise VerificationError("the inclusion proof has no hashes")
    path = [_hash(h, "a hash of the proof") for h in hashes]
    if root_from_inclusion(index, size, leaf, path) != checkpoint.root_hash:
        raise VerificationError("the inclusion proof does not lead to the checkpoint's root")
    return checkpoint

"""An event's offline receipt: two C2SP tlog-proofs, checked without the service.

The receipt (``GET /v1/events/{id}/receipt``; ``auditlog.service.witnessed`` makes it) is:

1. the event in its tenant's log: ``extra`` holds the stored event (its canonical bytes, API.md
   §5), ``index`` its seq, then the inclusion proof and the tenant's signed checkpoint;
2. that checkpoint in the tenants log (API.md §13): ``index`` its leaf, whose bytes are the
   first proof's checkpoint body (origin, size and root hash lines), then the inclusion proof
   and the tenants checkpoint with the witnesses' cosignatures.

``check`` verifies both levels against a witness policy (C2SP tlog-policy, whose ``log`` line is
the tenants log's key): the tenants checkpoint must be signed by a log of the policy and carry
its quorum of cosignatures; the tenant's checkpoint must be signed by the same key under its own
origin (``<tenants origin>/<tenant>``), or by ``tenant_key`` when one is pinned (a verifier key,
or a bare public key taken under that origin); the event's
``seq`` must be the index it is proved at.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from auditlog.integrity import CheckpointError, ProofError, tlogproof
from auditlog.integrity import checkpoint as checkpoints
from auditlog.integrity import note as notes
from auditlog.integrity.hasher import leaf_hash
from auditlog.integrity.policy import Policy


@dataclass(frozen=True, slots=True)
class CheckedReceipt:
    """What a receipt proves: the event (its stored bytes, its seq and id), the tenant's
    checkpoint it is in, and the tenants checkpoint (with its cosigners, by policy name) that
    includes that checkpoint."""

    event: bytes
    seq: int
    event_id: str
    tenant_checkpoint: checkpoints.Checkpoint
    tenants_checkpoint: checkpoints.Checkpoint
    tenants_index: int
    cosigners: dict[str, int]


def check(
    text: str, policy: Policy, tenant_key: notes.Verifier | bytes | None = None
) -> CheckedReceipt:
    """Check a receipt (see the module). Raises the ``IntegrityError`` that says what is wrong:
    ``ProofError`` for the receipt's shape or a proof that does not verify, ``PolicyError``
    when the quorum is not met, ``SignatureError`` and ``CheckpointError`` for signatures and
    origins."""
    parts = tlogproof.split(text)
    if len(parts) != 2:
        raise ProofError(f"a receipt is two tlog-proofs one after the other, not {len(parts)}")
    event_proof, tenant_proof = (tlogproof.parse(p) for p in parts)
    # Level 2 first: the tenants checkpoint and its witnesses decide which key is the log's.
    witnessed = policy.check(tenant_proof.checkpoint)
    tenants = witnessed.checkpoint
    log_keys = [log.verifier for log in policy.logs if log.verifier.name == tenants.origin]
    tenant_note = notes.parse(event_proof.checkpoint)
    tenant_body = checkpoints.parse(tenant_note.text)
    if isinstance(tenant_key, notes.Verifier):
        keys = [tenant_key]
    else:
        if not tenant_body.origin.startswith(tenants.origin + "/"):
            raise CheckpointError(
                f"the event's checkpoint is of origin {tenant_body.origin!r}, not of a tenant "
                f"of the tenants log {tenants.origin!r}"
            )
        publics = [k.public_key for k in log_keys] if tenant_key is None else [tenant_key]
        keys = [notes.Verifier(tenant_body.origin, public) for public in publics]
    event = _event_bytes(event_proof)
    tenant_checkpoint = tlogproof.verify(event_proof, leaf_hash(event), keys)
    tlogproof.verify(tenant_proof, leaf_hash(tenant_note.text.encode("utf-8")), log_keys)
    try:
        value = orjson.loads(event)
    except orjson.JSONDecodeError as exc:
        raise ProofError(f"the receipt's event is not JSON: {exc}") from None
    seq = value.get("seq") if isinstance(value, dict) else None
    if seq != event_proof.index:
        raise ProofError(
            f"the receipt's event has seq {seq!r}, but is proved at index {event_proof.index}"
        )
    return CheckedReceipt(
        event=event,
        seq=event_proof.index,
        event_id=str(value.get("id")),
        tenant_checkpoint=tenant_checkpoint,
        tenants_checkpoint=tenants,
        tenants_index=tenant_proof.index,
        cosigners=witnessed.cosigners,
    )


def _event_bytes(proof: tlogproof.TlogProof) -> bytes:
    if proof.extra is None:
        raise ProofError("the receipt's first proof has no extra line: the event is missing")
    return proof.extra

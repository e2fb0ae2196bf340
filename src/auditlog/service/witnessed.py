"""Reading what the witnesses cosigned (API.md §13): the witnessed checkpoint of a tenant, the
state of each witness, and an event's offline receipt.

A tenant's checkpoint is witnessed once a tenants-log checkpoint that includes it carries the
quorum of cosignatures of the service's policy. ``GET /v1/log/witnessed`` answers the tenant's
newest such checkpoint: the leaf it is in the tenants log, the inclusion proof of that leaf in
the tree of the cosigned tenants checkpoint, and both signed notes.

An event's receipt (``GET /v1/events/{id}/receipt``, ``auditlog proof``) is two C2SP
tlog-proofs, one after the other, that any tool checks without the service:

1. the event in its tenant's log: ``extra`` is the stored event (its canonical bytes, whose
   RFC 9162 leaf hash is the leaf), ``index`` its seq, the inclusion proof, and the tenant's
   checkpoint (the one the tenants log includes);
2. that checkpoint in the tenants log: ``index`` its leaf, the inclusion proof, and the
   tenants checkpoint with the witnesses' cosignatures. The leaf is the body of the first
   proof's checkpoint (its note text), so it needs no ``extra``.

Without a witness policy the second proof ends in the newest tenants checkpoint, signed by the
log alone: a verifier's policy with ``quorum none`` accepts it, any other does not.
"""

from __future__ import annotations

from typing import Any

import orjson

from auditlog.errors import NotFound
from auditlog.integrity import proof as proofs
from auditlog.integrity import tlogproof
from auditlog.integrity.policy import Policy
from auditlog.model import times
from auditlog.model.credentials import EVENTS_READ, LOG_READ, Credential
from auditlog.service.auth import require
from auditlog.service.events import Events
from auditlog.service.logkey import LogKey
from auditlog.service.proofs import b64, from_nodes, with_nodes
from auditlog.service.witnessing import Witnessing
from auditlog.storage.base import Store, StoredCheckpoint, TenantsLeaf


def quorum_text(policy: Policy) -> str:
    """The policy's quorum as its file writes it: the group lines, then the quorum line."""
    lines = [f"group {g.name} {g.threshold} {' '.join(g.members)}" for g in policy.groups]
    return "; ".join([*lines, f"quorum {policy.quorum}"])


class Witnessed:
    """The use cases of ``/v1/log/witnessed``, ``/v1/log/witnesses`` and receipts."""

    def __init__(
        self, store: Store, key: LogKey, events: Events, witnessing: Witnessing | None
    ) -> None:
        self._store = store
        self._key = key
        self._events = events
        self._witnessing = witnessing

    async def _tenants_checkpoint(self) -> StoredCheckpoint:
        """The tenants checkpoint to answer from: the largest with the quorum, or without a
        policy the newest (signed by the log alone). ``NotFound`` when there is none yet."""
        if self._witnessing is None:
            latest = await self._store.latest_tenants_checkpoint()
            if latest is None:
                raise NotFound("the tenants log has no checkpoint yet")
            return latest
        witnessed = await self._store.witnessed_tenants_checkpoint()
        if witnessed is None:
            raise NotFound(
                "no checkpoint of the tenants log has the witnesses' quorum yet "
                "(GET /v1/log/witnesses tells each witness's state)"
            )
        return witnessed

    async def _leaf(self, tenant: str, tenants: StoredCheckpoint) -> TenantsLeaf:
        leaf = await self._store.tenants_leaf(tenant, tenants.size)
        if leaf is None:
            raise NotFound(
                f"no checkpoint of this tenant is in a witnessed tenants checkpoint yet "
                f"(the newest has size {tenants.size})"
            )
        return leaf

    async def _tenants_proof(self, index: int, size: int) -> tuple[bytes, ...]:
        proof, _ = await with_nodes(
            self._store.get_tenants_nodes,
            "the tenants log",
            lambda subtree: proofs.inclusion(index, size, subtree),
        )
        return proof

    async def witnessed(self, credential: Credential) -> dict[str, Any]:
        """``GET /v1/log/witnessed``: the tenant's newest checkpoint that a cosigned tenants
        checkpoint includes, with the inclusion proof of its leaf."""
        require(credential, LOG_READ)
        if self._witnessing is None:
            raise NotFound("this service has no witnesses (its witness_policy is not set)")
        tenants = await self._tenants_checkpoint()
        leaf = await self._leaf(credential.tenant, tenants)
        proof = await self._tenants_proof(leaf.index, tenants.size)
        return {
            "checkpoint": leaf.checkpoint.note,
            "tenants_checkpoint": tenants.note,
            "leaf_index": leaf.index,
            "tenants_size": tenants.size,
            "inclusion_proof": [b64(h) for h in proof],
        }

    async def witnesses(self, credential: Credential) -> dict[str, Any]:
        """``GET /v1/log/witnesses``: each witness of the policy, where it stands."""
        require(credential, LOG_READ)
        await self._key.load()
        states = {s.name: s for s in await self._store.list_witness_states()}
        witnessed = await self._store.witnessed_tenants_checkpoint()
        latest = await self._store.latest_tenants_checkpoint()
        listed = []
        for w in self._witnessing.witnesses if self._witnessing is not None else []:
            state = states.get(w.name)
            listed.append(
                {
                    "name": w.name,
                    "url": w.url,
                    "vkey": w.key.vkey,
                    "cosigned_size": None if state is None or state.size < 0 else state.size,
                    "last_error": None if state is None or not state.error else state.error,
                    "refusals": 0 if state is None else state.refusals,
                    "updated_at": None if state is None else times.format_us(state.updated_us),
                }
            )
        return {
            "tenants_origin": self._key.tenants_origin,
            "tenants_vkey": self._key.tenants_verifier().vkey,
            "tenants_size": None if latest is None else latest.size,
            "witnessed_size": None if witnessed is None else witnessed.size,
            "quorum": None if self._witnessing is None else quorum_text(self._witnessing.policy),
            "witnesses": listed,
        }

    async def receipt(self, credential: Credential, event_id: str) -> str:
        """``GET /v1/events/{id}/receipt``: the event's two tlog-proofs (see the module)."""
        require(credential, EVENTS_READ)
        body = (await self._events.get(credential, event_id)).body
        seq = orjson.loads(body)["seq"]
        tenant = credential.tenant
        tenants = await self._tenants_checkpoint()
        leaf = await self._leaf(tenant, tenants)
        if leaf.checkpoint.size <= seq:
            raise NotFound(
                f"the event with seq {seq} is not in a witnessed checkpoint yet (the tenant's "
                f"newest witnessed checkpoint has size {leaf.checkpoint.size}); ask again in "
                "a few seconds"
            )
        size = leaf.checkpoint.size
        event_proof, _ = await from_nodes(
            self._store, tenant, lambda subtree: proofs.inclusion(seq, size, subtree)
        )
        tenants_proof = await self._tenants_proof(leaf.index, tenants.size)
        return tlogproof.format(
            tlogproof.TlogProof(seq, event_proof, leaf.checkpoint.note, extra=body)
        ) + tlogproof.format(tlogproof.TlogProof(leaf.index, tenants_proof, tenants.note))

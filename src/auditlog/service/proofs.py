"""Reading the log's integrity (API.md §5): checkpoints, proofs and the public key.

Every answer is about the caller's tenant. Proofs are made with ``integrity.proof`` from the
stored tree nodes: a first pass with a recording ``subtree_hash`` learns which perfect subtrees
the proof needs (which depends only on the sizes, never on hashes), one ``get_nodes`` reads
them all, and a second pass makes the proof: O(log n) point reads, never a scan.

Sizes: a proof may be asked for any tree size up to the latest checkpoint's, since the stored
nodes cover every prefix of the tree, and for any seq, pruned or kept: pruning (API.md §14)
removes events, never tree nodes. A parameter that can never name a proof (not a number,
``seq >= tree_size``, ``first > second``) is ``400``; a size beyond the latest checkpoint, which
will exist once the integrator has caught up, is ``404``.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import orjson

from auditlog.errors import BadRequest, NotFound
from auditlog.integrity import IntegrityError
from auditlog.integrity import note as notes
from auditlog.integrity import proof as proofs
from auditlog.integrity.compact import SubtreeHash
from auditlog.integrity.hasher import EMPTY_ROOT, HASH_SIZE
from auditlog.model import times
from auditlog.model.credentials import LOG_READ, Credential
from auditlog.service.auth import require
from auditlog.service.integrator import Integrator
from auditlog.service.logkey import LogKey
from auditlog.service.pruned import prefix_json
from auditlog.service.treelog import GetNodes, subtree_key
from auditlog.storage.base import Store, StoredCheckpoint

_T = TypeVar("_T")
#: The largest number a size or seq parameter may have (a signed 64-bit integer).
MAX_PARAM = 2**63 - 1


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _int_params(
    params: Sequence[tuple[str, str]], required: Sequence[str], optional: Sequence[str]
) -> dict[str, int]:
    """The named non-negative integer parameters; ``BadRequest`` naming any that is wrong."""
    known = (*required, *optional)
    values: dict[str, int] = {}
    for name, text in params:
        if name not in known:
            raise BadRequest(
                f"unknown parameter {name!r}; expected {', '.join(known)}",
            )
        if name in values:
            raise BadRequest(f"parameter {name!r} is given more than once")
        if not (text.isascii() and text.isdigit()) or int(text) > MAX_PARAM:
            raise BadRequest(f"{name} {text!r} is not a non-negative integer")
        values[name] = int(text)
    for name in required:
        if name not in values:
            raise BadRequest(f"parameter {name!r} is required")
    return values


async def from_nodes(
    store: Store,
    tenant: str,
    make: Callable[[SubtreeHash], _T],
    extra: Sequence[tuple[int, int]] = (),
) -> tuple[_T, dict[tuple[int, int], bytes]]:
    """``make(subtree_hash)`` with the stored nodes of ``tenant``, read in one call.

    ``make`` is called twice: once to learn which subtrees it needs, once with their hashes.
    ``extra`` keys are read in the same call (a leaf hash, say). ``IntegrityError`` if a
    needed node is not stored.
    """
    return await with_nodes(
        lambda keys: store.get_nodes(tenant, keys), f"tenant {tenant!r}", make, extra
    )


async def with_nodes(
    get_nodes: GetNodes,
    what: str,
    make: Callable[[SubtreeHash], _T],
    extra: Sequence[tuple[int, int]] = (),
) -> tuple[_T, dict[tuple[int, int], bytes]]:
    """``from_nodes`` over any stored tree (``what`` names it in the error)."""
    wanted: set[tuple[int, int]] = set(extra)

    def record(start: int, end: int) -> bytes:
        wanted.add(subtree_key(start, end))
        return bytes(HASH_SIZE)

    make(record)
    keys = sorted(wanted)
    found = await get_nodes(keys)
    missing = [k for k in keys if k not in found]
    if missing:
        raise IntegrityError(
            f"{what}: tree nodes (level, index) {missing[:5]} are missing from the "
            "store; run auditlog verify"
        )
    return make(lambda start, end: found[subtree_key(start, end)]), found


class LogProofs:
    """The use cases of ``/v1/log``, and the checkpoint a writer may wait for."""

    def __init__(
        self, store: Store, key: LogKey, integrator: Integrator, wait_ms: int = 5000
    ) -> None:
        self._store = store
        self._key = key
        self._integrator = integrator
        self._wait = wait_ms / 1000

    # -- checkpoints -------------------------------------------------------------------------

    async def latest(self, tenant: str) -> StoredCheckpoint:
        """The tenant's latest checkpoint; for a log without one, a checkpoint of the empty
        tree, signed now (Ed25519 is deterministic: the same note every time)."""
        latest = await self._store.latest_checkpoint(tenant)
        if latest is not None:
            return latest
        await self._key.load()
        return self._integrator.sign(tenant, 0, EMPTY_ROOT)

    def checkpoint_json(self, tenant: str, checkpoint: StoredCheckpoint) -> dict[str, Any]:
        """The JSON form of a checkpoint (API.md §5), with its origin and signed note."""
        verifier = self._key.verifier(tenant)
        signature = b""
        for s in notes.parse(checkpoint.note).signatures:
            if s.name == verifier.name and s.key_id == verifier.key_id:
                signature = s.signature
        return {
            "origin": self._key.origin(tenant),
            "tree_size": checkpoint.size,
            "root_hash": b64(checkpoint.root_hash),
            "timestamp": times.format_us(checkpoint.timestamp_us),
            "signature": b64(signature),
            "key_id": verifier.key_id.hex(),
            "note": checkpoint.note,
        }

    async def checkpoint(self, credential: Credential) -> StoredCheckpoint:
        """``GET /v1/log/checkpoint``."""
        require(credential, LOG_READ)
        return await self.latest(credential.tenant)

    # -- proofs ------------------------------------------------------------------------------

    async def _size_limit(self, tenant: str) -> int:
        latest = await self._store.latest_checkpoint(tenant)
        return 0 if latest is None else latest.size

    async def inclusion(
        self, credential: Credential, params: Sequence[tuple[str, str]]
    ) -> dict[str, Any]:
        """``GET /v1/log/proof/inclusion?seq=N&tree_size=M`` (``tree_size``: the latest)."""
        require(credential, LOG_READ)
        values = _int_params(params, ("seq",), ("tree_size",))
        seq = values["seq"]
        given = values.get("tree_size")
        if given is not None and seq >= given:
            raise BadRequest(f"seq {seq} is not in a tree of size {given}")
        limit = await self._size_limit(credential.tenant)
        if given is not None and given > limit:
            raise NotFound(f"tree size {given} is beyond the latest checkpoint (size {limit})")
        size = limit if given is None else given
        if seq >= size:
            raise NotFound(
                f"seq {seq} is not covered by a checkpoint yet (the latest has size {limit})"
            )
        return await self.inclusion_proof(credential.tenant, seq, size)

    async def inclusion_proof(self, tenant: str, seq: int, size: int) -> dict[str, Any]:
        """The inclusion proof of ``seq`` in the tree of ``size`` leaves, as JSON."""
        hashes, found = await from_nodes(
            self._store,
            tenant,
            lambda subtree: proofs.inclusion(seq, size, subtree),
            extra=((0, seq),),
        )
        return {
            "leaf_index": seq,
            "tree_size": size,
            "leaf_hash": b64(found[(0, seq)]),
            "hashes": [b64(h) for h in hashes],
        }

    async def consistency(
        self, credential: Credential, params: Sequence[tuple[str, str]]
    ) -> dict[str, Any]:
        """``GET /v1/log/proof/consistency?first=M&second=N`` (``second``: the latest)."""
        require(credential, LOG_READ)
        values = _int_params(params, ("first",), ("second",))
        first = values["first"]
        given = values.get("second")
        if given is not None and first > given:
            raise BadRequest(f"first {first} is larger than second {given}")
        limit = await self._size_limit(credential.tenant)
        if given is not None and given > limit:
            raise NotFound(f"tree size {given} is beyond the latest checkpoint (size {limit})")
        second = limit if given is None else given
        if first > second:
            raise NotFound(f"tree size {first} is beyond the latest checkpoint (size {limit})")
        hashes, _ = await from_nodes(
            self._store,
            credential.tenant,
            lambda subtree: proofs.consistency(first, second, subtree),
        )
        return {"first": first, "second": second, "hashes": [b64(h) for h in hashes]}

    # -- the pruned prefix -----------------------------------------------------------------

    async def pruned(self, credential: Credential) -> dict[str, Any]:
        """``GET /v1/log/pruned``: where the tenant's log now begins (API.md §14), the hashes
        that stand for the events pruned before that, and the archives recorded."""
        require(credential, LOG_READ)
        return await prefix_json(self._store, credential.tenant)

    # -- the key -------------------------------------------------------------------------------

    async def public_key(self, credential: Credential) -> dict[str, Any]:
        """``GET /v1/log/public-key``: the key that signs the tenant's checkpoints."""
        require(credential, LOG_READ)
        await self._key.load()
        verifier = self._key.verifier(credential.tenant)
        return {
            "origin": self._key.origin(credential.tenant),
            "key_name": verifier.name,
            "key_id": verifier.key_id.hex(),
            "algorithm": "Ed25519",
            "public_key": b64(verifier.public_key),
            "vkey": verifier.vkey,
            "tenants_origin": self._key.tenants_origin,
            "tenants_vkey": self._key.tenants_verifier().vkey,
        }

    # -- waiting for a checkpoint after a write ----------------------------------------------

    async def cover(self, credential: Credential, answer: bytes) -> bytes:
        """A write's answer, once a checkpoint covers its events, with that checkpoint and
        the inclusion proof of each event (``POST /v1/events?wait=checkpoint``).

        One event: ``{"event": <stored event>, "checkpoint": ..., "inclusion_proof": ...}``.
        A batch: the answer's ``events`` plus ``checkpoint`` and ``inclusion_proofs`` (in
        request order). When no checkpoint came within ``checkpoint_wait_ms`` the events are
        stored all the same, and ``checkpoint`` and the proofs are ``null``.
        """
        tenant = credential.tenant
        value = orjson.loads(answer)
        batch = "events" in value
        seqs: list[int] = [e["seq"] for e in value["events"]] if batch else [value["seq"]]
        checkpoint = await self._integrator.wait_for(tenant, max(seqs) + 1, self._wait)
        cp_json: dict[str, Any] | None = None
        proofs_json: list[dict[str, Any]] | None = None
        if checkpoint is not None:
            cp_json = self.checkpoint_json(tenant, checkpoint)
            proofs_json = await self._inclusion_proofs(tenant, seqs, checkpoint.size)
        if batch:
            value["checkpoint"] = cp_json
            value["inclusion_proofs"] = proofs_json
            return orjson.dumps(value)
        return orjson.dumps(
            {
                "event": orjson.Fragment(answer),
                "checkpoint": cp_json,
                "inclusion_proof": None if proofs_json is None else proofs_json[0],
            }
        )

    async def _inclusion_proofs(
        self, tenant: str, seqs: Sequence[int], size: int
    ) -> list[dict[str, Any]]:
        def make(subtree: SubtreeHash) -> list[tuple[bytes, ...]]:
            return [proofs.inclusion(seq, size, subtree) for seq in seqs]

        paths, found = await from_nodes(self._store, tenant, make, extra=[(0, seq) for seq in seqs])
        return [
            {
                "leaf_index": seq,
                "tree_size": size,
                "leaf_hash": b64(found[(0, seq)]),
                "hashes": [b64(h) for h in path],
            }
            for seq, path in zip(seqs, paths, strict=True)
        ]

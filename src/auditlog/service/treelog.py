"""One integration step of a Merkle log kept in the store: a tenant's log, or the tenants log.

Both are grown the same way (``auditlog.service.integrator`` says why each step is safe to
repeat): check the latest stored checkpoint against the key and against the largest one this
process has seen, load the compact range of its size from the stored nodes, append the next
leaves, store the new nodes, check the consistency proof from the old checkpoint to the new
tree, then sign and store a checkpoint of the new size. ``TreeLog`` is what differs between
the two: where the leaves, nodes and checkpoints are kept, and the key that signs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from auditlog.integrity import IntegrityError
from auditlog.integrity import checkpoint as checkpoints
from auditlog.integrity import note as notes
from auditlog.integrity import proof as proofs
from auditlog.integrity.compact import CompactRange, grown_position, perfect_subtrees
from auditlog.integrity.hasher import leaf_hash
from auditlog.storage.base import StoredCheckpoint, TreeNode

#: The stored hashes among some (level, index) keys of a tree, by key.
GetNodes = Callable[[Sequence[tuple[int, int]]], Awaitable[dict[tuple[int, int], bytes]]]
#: (largest size, its root) of a log's checkpoints seen by this process.
Seen = tuple[int, bytes]


def subtree_key(start: int, end: int) -> tuple[int, int]:
    """The (level, index) of the perfect subtree over leaves [start, end)."""
    level = (end - start).bit_length() - 1
    return level, start >> level


def span(key: tuple[int, int]) -> str:
    """The seqs a tree node (level, index) covers, as ``a..b`` (or ``a`` for a leaf)."""
    level, index = key
    start = index << level
    end = (index + 1) << level
    return f"{start}" if end - start == 1 else f"{start}..{end - 1}"


async def load_range_of(get_nodes: GetNodes, size: int, what: str) -> CompactRange:
    """The compact range of a tree's first ``size`` leaves, from its stored nodes
    (popcount(size) reads). ``IntegrityError`` naming the nodes of ``what`` (and the seqs they
    cover) that are not stored."""
    keys = [subtree_key(start, end) for start, end in perfect_subtrees(size)]
    found = await get_nodes(keys)
    missing = [k for k in keys if k not in found]
    if missing:
        shown = ", ".join(f"{k} over seq {span(k)}" for k in missing)
        raise IntegrityError(
            f"the tree nodes (level, index) {shown} of {what} are missing from the store"
        )
    return CompactRange(size, tuple(found[k] for k in keys))


@dataclass(frozen=True, slots=True)
class TreeLog:
    """Where one Merkle log is kept, and the key that signs it.

    ``what`` names the log in messages ("tenant 'acme'"); ``read_leaves(start, limit)`` gives
    up to ``limit`` (index, leaf bytes) from ``start`` on, in index order.
    """

    what: str
    origin: str
    signer: notes.Signer
    latest: Callable[[], Awaitable[StoredCheckpoint | None]]
    add: Callable[[StoredCheckpoint], Awaitable[bool]]
    get_nodes: GetNodes
    put_nodes: Callable[[Sequence[TreeNode]], Awaitable[None]]
    read_leaves: Callable[[int, int], Awaitable[list[tuple[int, bytes]]]]


def check_latest(
    log: TreeLog,
    latest: StoredCheckpoint | None,
    seen: Seen | None,
    trusted: StoredCheckpoint | None = None,
) -> None:
    """The stored latest checkpoint must be signed by the log's key, say what its row says,
    and not be smaller than (or differ at the size of) the largest seen before.

    ``trusted`` is a checkpoint this process signed or verified itself: a latest identical to
    it, row and note, is not verified again (an Ed25519 verification per tenant per round).
    """
    if latest is None:
        if seen is not None:
            raise IntegrityError(
                f"{log.what}: the store has no checkpoint, but one of size {seen[0]} "
                "was seen before (checkpoints deleted or the database rolled back?)"
            )
        return
    if latest != trusted:
        try:
            signed = checkpoints.verify(latest.note, log.signer.verifier, origin=log.origin)
        except IntegrityError as exc:
            raise IntegrityError(
                f"{log.what}: the latest stored checkpoint (size {latest.size}) does not "
                f"verify with the log's key: {exc}"
            ) from exc
        if signed.size != latest.size or signed.root_hash != latest.root_hash:
            raise IntegrityError(
                f"{log.what}: the latest stored checkpoint's row (size {latest.size}) "
                f"differs from its signed note (size {signed.size})"
            )
    if seen is not None and (
        latest.size < seen[0] or (latest.size == seen[0] and latest.root_hash != seen[1])
    ):
        raise IntegrityError(
            f"{log.what}: the latest stored checkpoint has size {latest.size}, but "
            f"one of size {seen[0]} was seen before (the database rolled back?)"
        )


async def load_checked_range(log: TreeLog, latest: StoredCheckpoint | None) -> CompactRange:
    """The compact range of the latest checkpoint's size, checked against its root."""
    if latest is None:
        return CompactRange()
    what = f"{log.what}'s checkpoint of size {latest.size}"
    base = await load_range_of(log.get_nodes, latest.size, what)
    if base.root != latest.root_hash:
        raise IntegrityError(
            f"{log.what}: the stored tree nodes of size {latest.size} do not give the "
            "root of its signed checkpoint"
        )
    return base


def sign(log: TreeLog, size: int, root_hash: bytes, timestamp_us: int) -> StoredCheckpoint:
    """A checkpoint of the log's tree, signed (not stored)."""
    body = checkpoints.Checkpoint(log.origin, size, root_hash)
    return StoredCheckpoint(size, root_hash, timestamp_us, checkpoints.sign(body, log.signer))


@dataclass(frozen=True, slots=True)
class Step:
    """What one ``integrate_step`` found: the latest stored checkpoint it started from, and the
    checkpoint it stored (``None``: nothing new, or ``lost``: another process stored one at
    least as large first)."""

    latest: StoredCheckpoint | None
    stored: StoredCheckpoint | None
    lost: bool = False


@dataclass(frozen=True, slots=True)
class Prepared:
    """A step made but not stored: the latest checkpoint it started from, and (``None`` when
    there was nothing new) the tree nodes completed and the checkpoint of the new size."""

    latest: StoredCheckpoint | None
    nodes: list[TreeNode]
    checkpoint: StoredCheckpoint | None


async def prepare_step(
    log: TreeLog,
    seen: Seen | None,
    batch: int,
    now_us: int,
    trusted: StoredCheckpoint | None = None,
) -> Prepared:
    """Append up to ``batch`` new leaves to the log's tree in memory and sign a checkpoint of
    the new size, storing nothing: the caller stores the nodes, then the checkpoint.
    ``trusted`` as ``check_latest`` takes it.

    ``IntegrityError`` (nothing signed) when the stored tree or checkpoint is not what was
    signed before; storage errors pass through.
    """
    latest = await log.latest()
    check_latest(log, latest, seen, trusted)
    size = 0 if latest is None else latest.size
    base = await load_checked_range(log, latest)
    leaves = await log.read_leaves(size, batch)
    if not leaves:
        return Prepared(latest, [], None)
    for offset, (index, _) in enumerate(leaves):
        if index != size + offset:
            raise IntegrityError(
                f"{log.what}: the store has no event with seq {size + offset}, but one with "
                f"seq {index}"
            )
    grown, created = base.grow([leaf_hash(body) for _, body in leaves])
    if latest is not None:
        check_consistency(log, latest, base, grown, created)
    return Prepared(latest, created, sign(log, grown.size, grown.root, now_us))


async def integrate_step(log: TreeLog, seen: Seen | None, batch: int, now_us: int) -> Step:
    """``prepare_step``, then store its nodes and its checkpoint."""
    prepared = await prepare_step(log, seen, batch, now_us)
    if prepared.checkpoint is None:
        return Step(prepared.latest, None)
    await log.put_nodes(prepared.nodes)
    if await log.add(prepared.checkpoint):
        return Step(prepared.latest, prepared.checkpoint)
    return Step(prepared.latest, None, lost=True)


def check_consistency(
    log: TreeLog,
    latest: StoredCheckpoint,
    base: CompactRange,
    grown: CompactRange,
    created: list[TreeNode],
) -> None:
    """Belt and braces: growing a checked range cannot give an inconsistent tree, but the
    signature is for ever, so check the RFC 9162 proof an auditor will check."""
    known = {(n.level, n.index): n.hash for n in base.subtrees()}

    def subtree(start: int, end: int) -> bytes:
        # The proof needs O(log n) subtrees: each is found in ``created`` where ``grow`` put
        # it, rather than by a map of every node grown (two per leaf).
        key = subtree_key(start, end)
        h = known.get(key)
        if h is None:
            at = grown_position(base.size, *key)
            if at is not None and at < len(created) and created[at][:2] == key:
                h = created[at][2]
        if h is None:
            raise IntegrityError(f"{log.what}: no hash of subtree [{start}, {end})")
        return h

    proof = proofs.consistency(latest.size, grown.size, subtree)
    try:
        proofs.verify_consistency(latest.size, grown.size, proof, latest.root_hash, grown.root)
    except IntegrityError as exc:
        raise IntegrityError(f"{log.what}: refusing to sign: {exc}") from exc

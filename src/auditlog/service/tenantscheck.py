"""``auditlog verify`` on the store: the tenants log (API.md §13) against its checkpoints.

The tenants log's leaves are the tenants' stored checkpoints, in the order the store gave them
their index. The check reads them all (each leaf the body of a checkpoint's note), recomputes
the tree, and demands that the latest tenants checkpoint and the largest witnessed one verify
with the log's key under the name ``<log_origin>`` and have the recomputed root at their sizes,
and that the stored nodes give the same root as the recomputed leaves. A leaf index missing is
named, as is a checkpoint beyond the leaves stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from auditlog.integrity import IntegrityError
from auditlog.integrity import checkpoint as checkpoints
from auditlog.integrity import note as notes
from auditlog.integrity.compact import CompactRange
from auditlog.integrity.hasher import leaf_hash
from auditlog.service.treelog import load_range_of
from auditlog.storage.base import Store, StoredCheckpoint

#: Leaves read per call.
BATCH = 10_000


@dataclass
class TenantsReport:
    """What checking the tenants log found: its size, and each problem as a sentence."""

    leaves: int = 0
    size: int = 0
    witnessed: int | None = None
    problems: list[str] = field(default_factory=list)


async def check_tenants_log(store: Store, verifier: notes.Verifier) -> TenantsReport:
    """Check the tenants log of ``store`` (see the module) with the log's ``verifier``."""
    report = TenantsReport()
    latest = await store.latest_tenants_checkpoint()
    witnessed = await store.witnessed_tenants_checkpoint()
    targets: dict[int, tuple[str, StoredCheckpoint]] = {}
    for what, checkpoint in (("latest", latest), ("witnessed", witnessed)):
        if checkpoint is None:
            continue
        try:
            signed = checkpoints.verify(checkpoint.note, verifier, origin=verifier.name)
        except IntegrityError as exc:
            report.problems.append(
                f"the {what} tenants checkpoint (size {checkpoint.size}) does not verify: {exc}"
            )
            continue
        if signed.size != checkpoint.size or signed.root_hash != checkpoint.root_hash:
            report.problems.append(
                f"the {what} tenants checkpoint's row (size {checkpoint.size}) differs from its "
                f"signed note (size {signed.size})"
            )
            continue
        targets[checkpoint.size] = (what, checkpoint)
    report.size = 0 if latest is None else latest.size
    report.witnessed = None if witnessed is None else witnessed.size
    tree = CompactRange()
    start = 0
    while True:
        leaves = await store.read_tenants_leaves(start, BATCH)
        if not leaves:
            break
        hashes = []
        for offset, leaf in enumerate(leaves):
            if leaf.index != start + offset:
                report.problems.append(
                    f"the tenants log has no leaf {start + offset}, but one at {leaf.index}"
                )
                return report
            try:
                hashes.append(leaf_hash(notes.parse(leaf.checkpoint.note).text.encode("utf-8")))
            except IntegrityError as exc:
                report.problems.append(
                    f"leaf {leaf.index} (tenant {leaf.tenant!r}, size {leaf.checkpoint.size}) "
                    f"is not a signed note: {exc}"
                )
                return report
        for h in hashes:
            tree, _ = tree.grow([h])
            checkpoint_at = targets.get(tree.size)
            if checkpoint_at is not None and tree.root != checkpoint_at[1].root_hash:
                report.problems.append(
                    f"the tenants log's leaves 0..{tree.size - 1} (the tenants' stored "
                    f"checkpoints) do not give the root of its {checkpoint_at[0]} checkpoint "
                    f"of size {tree.size}"
                )
        start += len(leaves)
    report.leaves = tree.size
    for size, (what, _) in targets.items():
        if size > tree.size:
            report.problems.append(
                f"the {what} tenants checkpoint has size {size}, but only {tree.size} leaves "
                "are stored"
            )
    if latest is not None and latest.size <= tree.size and not report.problems:
        try:
            nodes = await load_range_of(store.get_tenants_nodes, latest.size, "the tenants log")
        except IntegrityError as exc:
            report.problems.append(str(exc))
        else:
            if nodes.root != latest.root_hash:
                report.problems.append(
                    f"the tenants log's stored nodes do not give the root of its checkpoint of "
                    f"size {latest.size}"
                )
    return report

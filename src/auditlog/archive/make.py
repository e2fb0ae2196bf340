"""Making an archive of a tenant's log from a ``Store``, also while the service runs.

``plan`` settles the range: from the tenant's horizon (its first kept seq) through a seq, or
through the last event received before a time (found by bisection on seq: ``received_at``
grows with seq), and the smallest signed checkpoint that covers it. ``make`` writes the
archive beside its destination, checks the written file completely with the log's own key
(``archive.check``), and only then renames it into place; the caller records it
(``Store.add_archive``). Everything is read through the store's committed state: events with
``read_leaves``, hashes with ``get_nodes``, the checkpoint with ``checkpoint_at_least``.

The events are read twice, in batches: once for their count and SHA-256, which the manifest
(the first member) holds, and once to write them; the final check catches any difference.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from auditlog.archive import ArchiveError
from auditlog.archive.check import check_archive
from auditlog.archive.format import ArchiveWriter, Manifest, Proof, file_sha256
from auditlog.integrity import note as notes
from auditlog.integrity import proof as proofs
from auditlog.model import times
from auditlog.model.retention import ArchiveRecord
from auditlog.service.proofs import from_nodes
from auditlog.service.pruned import load_prefix
from auditlog.storage.base import Store, StoredCheckpoint

#: Events read from the store at a time.
BATCH = 10_000


@dataclass(frozen=True, slots=True)
class Plan:
    """What an archive will hold: seqs ``first_seq`` .. ``end_seq - 1`` of ``tenant``'s log,
    and the signed checkpoint that covers them."""

    tenant: str
    first_seq: int
    end_seq: int
    checkpoint: StoredCheckpoint

    @property
    def events(self) -> int:
        return self.end_seq - self.first_seq


async def _received_us(store: Store, tenant: str, seq: int) -> int:
    rows = await store.read_leaves(tenant, seq, 1)
    if not rows or rows[0][0] != seq:
        raise ArchiveError(
            f"seq {seq} of tenant {tenant} is not in the store (pruned meanwhile, or removed: "
            "run auditlog verify)"
        )
    try:
        return times.parse_rfc3339(orjson.loads(rows[0][1])["received_at"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        raise ArchiveError(
            f"seq {seq} of tenant {tenant} has no readable received_at (run auditlog verify)"
        ) from None


async def end_before(store: Store, tenant: str, start: int, size: int, before_us: int) -> int:
    """One past the last seq in [``start``, ``size``) received before ``before_us``
    (``start`` when none is): a bisection, since ``received_at`` grows with seq."""
    lo, hi = start, size
    while lo < hi:
        mid = (lo + hi) // 2
        if await _received_us(store, tenant, mid) < before_us:
            lo = mid + 1
        else:
            hi = mid
    return lo


async def plan(
    store: Store,
    tenant: str,
    *,
    through_seq: int | None = None,
    before_us: int | None = None,
) -> Plan:
    """The range of an archive of ``tenant``'s log, from its horizon through ``through_seq``
    or through the last event received before ``before_us`` (exactly one is given).

    ``ArchiveError`` when that range is empty or no signed checkpoint covers it yet.
    """
    if (through_seq is None) == (before_us is None):
        raise ValueError("give exactly one of through_seq and before_us")
    horizon = await store.horizon(tenant)
    size = (await store.durable_log_sizes(tenant)).get(tenant, 0)
    if size == 0:
        raise ArchiveError(f"tenant {tenant} has no events")
    pruned = f"its log now begins at seq {horizon}, the seqs below are pruned"
    if through_seq is not None:
        end = through_seq + 1
        if end > size:
            raise ArchiveError(
                f"tenant {tenant}'s log holds seq 0..{size - 1}; there is no seq {through_seq}"
            )
        if end <= horizon:
            raise ArchiveError(
                f"nothing to archive: seq {through_seq} of tenant {tenant} is "
                f"pruned already ({pruned})"
            )
    else:
        assert before_us is not None
        end = await end_before(store, tenant, horizon, size, before_us)
        if end <= horizon:
            kept, why = ("kept ", f" ({pruned})") if horizon else ("", "")
            raise ArchiveError(
                f"nothing to archive: no {kept}event of tenant {tenant} was received before "
                f"{times.format_us(before_us)}{why}"
            )
    checkpoint = await store.checkpoint_at_least(tenant, end)
    if checkpoint is None:
        latest = await store.latest_checkpoint(tenant)
        signed = f"the latest is of size {latest.size}" if latest else "there is none yet"
        raise ArchiveError(
            f"seq {horizon}..{end - 1} of tenant {tenant} are not yet covered by a signed "
            f"checkpoint ({signed}); the service signs one within seconds while it runs"
        )
    return Plan(tenant, horizon, end, checkpoint)


async def _batches(store: Store, plan: Plan) -> AsyncIterator[list[bytes]]:
    """The stored events of the plan's range, in seq order, a batch at a time; ``ArchiveError``
    if one is missing (pruned while the archive is made, or removed)."""
    pos = plan.first_seq
    while pos < plan.end_seq:
        rows = await store.read_leaves(plan.tenant, pos, min(BATCH, plan.end_seq - pos))
        bodies = []
        for seq, body in rows:
            if seq != pos:
                break
            bodies.append(body)
            pos += 1
        if not bodies:
            raise ArchiveError(
                f"seq {pos} of tenant {plan.tenant} is not in the store (pruned meanwhile, or "
                "removed: run auditlog verify)"
            )
        yield bodies


async def write(
    store: Store, plan: Plan, origin: str, file: os.PathLike[str] | str, created_by: str
) -> Manifest:
    """Write the archive of ``plan`` to ``file`` (a new file), flushed to disk; its manifest."""
    tenant, first, end = plan.tenant, plan.first_seq, plan.end_seq
    size = plan.checkpoint.size
    prefix = await load_prefix(store, tenant, first)
    consistency, _ = await from_nodes(
        store, tenant, lambda subtree: proofs.consistency(end, size, subtree)
    )
    digest = hashlib.sha256()
    count = 0
    async for bodies in _batches(store, plan):
        for body in bodies:
            digest.update(body + b"\n")
        count += len(bodies)
    manifest = Manifest(
        tenant=tenant,
        origin=origin,
        first_seq=first,
        end_seq=end,
        events=count,
        events_sha256=digest.hexdigest(),
        checkpoint_size=size,
        root_hash=plan.checkpoint.root_hash,
        created_at=times.format_us(times.now_us()),
        created_by=created_by,
    )
    with open(file, "wb") as out:
        writer = ArchiveWriter(out, manifest)
        try:
            async for bodies in _batches(store, plan):
                writer.add_events(bodies)
            writer.finish(plan.checkpoint.note, Proof(prefix.hashes, consistency))
        except BaseException:
            writer.abort()
            raise
        out.flush()
        os.fsync(out.fileno())
    return manifest


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _publish(temporary: Path, target: Path, force: bool) -> None:
    """Put the written file in place: never over an existing file unless ``force``."""
    if force:
        os.replace(temporary, target)
        return
    try:
        os.link(temporary, target)  # fails if the target exists, whatever happens meanwhile
    except FileExistsError:
        raise ArchiveError(f"{target} exists; --force replaces it") from None
    except OSError:  # a file system without hard links
        if target.exists():
            raise ArchiveError(f"{target} exists; --force replaces it") from None
        os.replace(temporary, target)
        return
    temporary.unlink()


async def make(
    store: Store,
    plan: Plan,
    origin: str,
    verifier: notes.Verifier,
    output: str | Path,
    *,
    force: bool = False,
    created_by: str,
) -> ArchiveRecord:
    """Write the archive of ``plan`` to ``output``, check it and put it in place.

    The file is written under a temporary name beside ``output`` and flushed, checked
    completely with ``verifier`` (the log's own key), renamed to ``output`` and the directory
    flushed. ``ArchiveError`` when ``output`` exists (unless ``force``) or the written file
    does not pass the check; nothing is left behind then. The record to store is returned.
    """
    target = Path(output).absolute()
    if target.exists() and not force:
        raise ArchiveError(f"{target} exists; --force replaces it")
    if target.is_dir():
        raise ArchiveError(f"{target} is a directory")
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    temporary = Path(name)
    try:
        manifest = await write(store, plan, origin, temporary, created_by)
        report = check_archive(temporary, verifier)
        if report.findings:
            problems = "; ".join(f.line() for f in report.findings[:5])
            raise ArchiveError(f"the archive written does not pass its check: {problems}")
        sha256 = file_sha256(temporary)
        _publish(temporary, target, force)
        _fsync_dir(target.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
    return ArchiveRecord(
        tenant=plan.tenant,
        first_seq=plan.first_seq,
        end_seq=plan.end_seq,
        sha256=sha256,
        location=str(target),
        checkpoint_size=plan.checkpoint.size,
        created_us=times.parse_rfc3339(manifest.created_at),
        created_by=created_by,
    )

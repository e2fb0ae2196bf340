"""Checking a tenant's stored log from scratch: what ``auditlog verify`` does with a store.

The events are read in seq order and their tree is recomputed (leaf hash = SHA-256(0x00 ||
stored bytes)); on the way every event is compared with what the tree committed to, and every
stored checkpoint with the recomputed root at its size:

* **removed**: a seq missing from the stored events (a gap, or the end of the log short of
  the size recorded for it or of a checkpoint's size);
* **moved**: the event stored at seq k says it is another seq (events swapped or reordered);
* **foreign**: the event stored at seq k belongs to another tenant;
* **unreadable**: the stored bytes are not a JSON object;
* **changed**: the event's leaf hash differs from the leaf the tree committed to (the stored
  level-0 node), so its bytes changed after they were integrated;
* **inserted**: an event beyond the log size the store records for the tenant;
* **uncovered**: events that no signed checkpoint covers, after waiting a moment for a running
  integrator to sign them, although they were received (``received_at``) well before the
  latest checkpoint was signed: the integrator would have covered them, so they were put
  there behind its back. Uncovered events received after the latest checkpoint are normal
  (the service stopped before integrating them, or a command wrote them while it was down):
  they are a **notice**, not a problem, until the service integrates them;
* **mismatch**: a checkpoint whose root the events do not give, where no single event could
  be named (the events and the tree nodes were changed together);
* **signature**: a checkpoint whose signature does not verify with the log's key, or whose
  stored row differs from its signed note;
* **rolled back** / **forked**: against a checkpoint verified earlier and remembered outside
  the store (``remembered``): the log is now shorter, or its first events give another root.

Where a leaf is found wrong but the tree holds its committed hash, the recomputation goes on
with the committed hash, so that each later problem is found and named too.

A log whose start was pruned by retention (API.md §14) is checked from its horizon H, the first
kept seq: the recomputation starts from the stored tree nodes of the perfect subtrees of
[0, H), which the kept events must extend to the root of every checkpoint larger than H; a
checkpoint of at most H leaves is checked against the stored nodes alone. Events below H are
not expected; the prefix is a **notice** (with the archives that hold it, and the seqs that
none holds), and its problems are findings:

* **pruned prefix**: a tree node the pruned prefix needs is not stored, or the stored nodes
  do not give the root of a checkpoint of at most H leaves (a node was changed).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from auditlog.integrity import IntegrityError
from auditlog.integrity import checkpoint as checkpoints
from auditlog.integrity import note as notes
from auditlog.integrity.compact import CompactRange
from auditlog.integrity.hasher import leaf_hash
from auditlog.model import times
from auditlog.service import pruned
from auditlog.storage.base import Store, StoredCheckpoint

BATCH = 10_000
#: An uncovered event received this long before the latest checkpoint was signed is a problem:
#: far more than an integrator round takes between reading the log and signing.
SLACK_US = 5_000_000


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing wrong with a log: the first ``seq`` it concerns (``None``: a checkpoint
    only, named by ``size``), its kind (see the module) and what exactly."""

    tenant: str
    seq: int | None
    kind: str
    detail: str

    def line(self) -> str:
        where = f"seq {self.seq}" if self.seq is not None else "checkpoint"
        return f"tenant {self.tenant}: {where}: {self.kind}: {self.detail}"


@dataclass(frozen=True, slots=True)
class Remembered:
    """A checkpoint verified earlier and kept outside the store."""

    size: int
    root_hash: bytes
    verified_at: str


@dataclass(slots=True)
class Report:
    """What checking one tenant's log found."""

    tenant: str
    events: int = 0
    checkpoints: int = 0
    #: The first kept seq: the events before it were pruned by retention (0: none was).
    horizon: int = 0
    latest: StoredCheckpoint | None = None
    findings: list[Finding] = field(default_factory=list)
    notices: list[Finding] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Target:
    """A size whose root is known: a signed checkpoint's, or the remembered one."""

    root_hash: bytes
    what: str
    remembered: bool = False


class _Check:
    def __init__(
        self,
        store: Store,
        tenant: str,
        verifier: notes.Verifier,
        recorded_size: int,
        progress: Callable[[int], None],
        horizon: int = 0,
    ) -> None:
        self.store = store
        self.tenant = tenant
        self.verifier = verifier
        self.recorded_size = recorded_size
        self.progress = progress
        self.report = Report(tenant, horizon=horizon)
        self.horizon = horizon
        self.pos = horizon  # the next seq expected
        self.after_checkpoint = -1  # the largest checkpoint size read so far
        self.covered = 0  # the largest size a signed checkpoint covers
        self.signed_us = 0  # when the latest signed checkpoint was signed
        self.targets: dict[int, _Target] = {}
        # The tree at the last size whose root matched, and the leaf hashes after it.
        self.base = CompactRange()
        self.tail: list[bytes] = []
        self.stopped = False  # roots are no longer compared once the events diverged
        self.prefix_checked: set[int] = set()  # target sizes <= horizon checked on the nodes

    def find(self, seq: int | None, kind: str, detail: str) -> None:
        self.report.findings.append(Finding(self.tenant, seq, kind, detail))

    # -- checkpoints -----------------------------------------------------------------------

    async def read_checkpoints(self) -> None:
        while True:
            page = await self.store.list_checkpoints(self.tenant, self.after_checkpoint, 1000)
            if not page:
                return
            for stored in page:
                self.add_checkpoint(stored)
            self.after_checkpoint = page[-1].size

    def add_checkpoint(self, stored: StoredCheckpoint) -> None:
        self.report.checkpoints += 1
        self.report.latest = stored
        try:
            signed = checkpoints.verify(stored.note, self.verifier, origin=self.verifier.name)
        except IntegrityError as exc:
            self.find(None, "signature", f"the checkpoint of size {stored.size}: {exc}")
            return
        if signed.size != stored.size or signed.root_hash != stored.root_hash:
            self.find(
                None,
                "signature",
                f"the checkpoint of size {stored.size}: its stored row differs from its signed "
                f"note (size {signed.size})",
            )
            return
        if signed.size >= self.covered:
            self.covered = signed.size
            self.signed_us = stored.timestamp_us
        self.add_target(
            signed.size, _Target(signed.root_hash, f"the checkpoint of size {signed.size}")
        )

    def add_target(self, size: int, target: _Target) -> None:
        known = self.targets.get(size)
        if known is not None and known.remembered and not target.remembered:
            if known.root_hash == target.root_hash:
                return  # the same tree: the remembered one stays, to name a fork as such
            self.find(None, "forked", f"{target.what} has another root than {known.what}")
        self.targets[size] = target
        self.compare_up_to(self.base.size + len(self.tail))

    # -- the pruned prefix -----------------------------------------------------------------

    async def load_prefix(self) -> None:
        """Start the recomputation from the stored nodes of the pruned prefix [0, horizon)."""
        try:
            self.base = await pruned.load_prefix(self.store, self.tenant, self.horizon)
        except IntegrityError as exc:
            self.find(0, "pruned prefix", f"{exc}: the log cannot be recomputed past them")
            self.stopped = True

    async def check_prefix_targets(self) -> None:
        """Check each known size of at most ``horizon`` leaves against the stored nodes."""
        for size in sorted(self.targets):
            if size > self.horizon or size in self.prefix_checked:
                continue
            self.prefix_checked.add(size)
            target = self.targets[size]
            try:
                stored = await pruned.load_prefix(self.store, self.tenant, size)
            except IntegrityError as exc:
                self.find(0, "pruned prefix", f"{target.what} cannot be checked: {exc}")
                continue
            if stored.root != target.root_hash:
                self.find(
                    0,
                    "forked" if target.remembered else "pruned prefix",
                    f"the stored tree nodes of seq 0..{size - 1} (pruned) do not give the root "
                    f"of {target.what}: a node of the pruned prefix was changed",
                )

    # -- events ----------------------------------------------------------------------------

    async def read_events(self) -> None:
        while True:
            rows = await self.store.read_leaves(self.tenant, self.pos, BATCH)
            if not rows:
                return
            keys = [(0, s) for s in range(self.pos, rows[-1][0] + 1)]
            committed: dict[tuple[int, int], bytes] = {}
            for start in range(0, len(keys), BATCH):
                chunk = keys[start : start + BATCH]
                committed.update(await self.store.get_nodes(self.tenant, chunk))
            for seq, body in rows:
                if seq > self.pos:
                    self.gap(seq, committed)
                self.append(self.leaf(seq, body, committed.get((0, seq))))
                self.pos = seq + 1
            self.compare_up_to(self.pos)
            self.report.events += len(rows)
            self.progress(len(rows))

    def gap(self, seq: int, committed: dict[tuple[int, int], bytes]) -> None:
        last = f"..{seq - 1}" if seq - 1 > self.pos else ""
        self.find(
            self.pos,
            "removed",
            f"seq {self.pos}{last} missing from the stored events (the next stored is seq {seq})",
        )
        for missing in range(self.pos, seq):
            h = committed.get((0, missing))
            if h is None:  # the tree cannot be recomputed past this point
                self.compare_up_to(missing)
                self.stopped = True
                return
            self.append(h)

    def leaf(self, seq: int, body: bytes, committed: bytes | None) -> bytes:
        """The leaf hash of an event, checked; the tree's own hash where they differ."""
        h = leaf_hash(body)
        try:
            event = orjson.loads(body)
        except orjson.JSONDecodeError:
            event = None
        if not isinstance(event, dict):
            self.find(seq, "unreadable", "the stored bytes are not a JSON object")
        elif event.get("seq") != seq:
            self.find(seq, "moved", f"the event stored at seq {seq} says seq {event.get('seq')}")
        elif event.get("tenant") != self.tenant:
            self.find(seq, "foreign", f"the event stored here is of tenant {event.get('tenant')!r}")
        elif committed is not None and committed != h:
            self.find(seq, "changed", "its leaf hash differs from the one the tree committed to")
        else:
            return h
        # Carry on with the hash the tree committed to, to test what follows on its own.
        return committed if committed is not None else h

    def append(self, h: bytes) -> None:
        if not self.stopped:
            self.tail.append(h)

    def compare_up_to(self, end: int) -> None:
        """Compare the root at every known size in (base, end], growing ``base`` as they match."""
        if self.stopped:
            return
        for size in sorted(t for t in self.targets if self.base.size < t <= end):
            if size - self.base.size > len(self.tail):
                return
            target = self.targets[size]
            grown, _ = self.base.extend(self.tail[: size - self.base.size])
            if grown.root != target.root_hash:
                first = self.base.size
                kind = "forked" if target.remembered else "mismatch"
                if first == self.horizon > 0:  # from the prefix's nodes, not proven yet
                    detail = (
                        f"seq {first}..{size - 1}, after the stored tree nodes of the pruned "
                        f"prefix (seq 0..{first - 1}), do not give the root of {target.what}: "
                        "a node of the pruned prefix was changed, or an event among seq "
                        f"{first}..{size - 1} along with the tree"
                    )
                else:
                    detail = (
                        f"seq {first}..{size - 1} do not give the root of {target.what}: an "
                        "event among them was changed along with the tree"
                    )
                self.find(first, kind, detail)
                self.stopped = True
                return
            del self.tail[: size - self.base.size]
            self.base = grown

    # -- the end ---------------------------------------------------------------------------

    async def finish(self) -> None:
        # Read after the events: it only grows, so events beyond it were not appended by
        # the service (which records the size in the same transaction as the events).
        now = (await self.store.log_sizes()).get(self.tenant, 0)
        if self.pos > now:
            self.find(
                now,
                "inserted",
                f"seq {now}..{self.pos - 1} are beyond the log size the store records ({now})",
            )
        if self.pos < self.recorded_size:
            self.find(
                self.pos,
                "removed",
                f"seq {self.pos}..{self.recorded_size - 1} missing: the store records "
                f"{self.recorded_size} events for the tenant, and holds {self.pos}",
            )
        beyond = [t for t in self.targets if t > self.pos]
        if beyond:
            largest = max(beyond)
            target = self.targets[largest]
            self.find(
                self.pos,
                "rolled back" if target.remembered else "removed",
                f"seq {self.pos}..{largest - 1} are covered by {target.what}, and gone",
            )
        if self.pos > self.covered:
            await self.uncovered()

    async def uncovered(self) -> None:
        """Sort the events beyond the latest checkpoint: received before it, or after."""
        early: list[int] = []
        late = 0
        start = self.covered
        while start < self.pos:
            rows = await self.store.read_leaves(self.tenant, start, min(BATCH, self.pos - start))
            if not rows:
                break
            for seq, body in rows:
                try:
                    received = times.parse_rfc3339(orjson.loads(body)["received_at"])
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                    received = 0
                if received < self.signed_us - SLACK_US:
                    early.append(seq)
                else:
                    late += 1
            start = rows[-1][0] + 1
        if early:
            signed = times.format_us(self.signed_us)
            shown = ", ".join(str(s) for s in early[:10]) + (", ..." if len(early) > 10 else "")
            self.find(
                early[0],
                "uncovered",
                f"seq {shown} ({len(early)} events) are covered by no signed checkpoint, "
                f"though received before the latest one was signed ({signed}): put there "
                "behind the service's back",
            )
        if late:
            self.report.notices.append(
                Finding(
                    self.tenant,
                    self.covered,
                    "not yet covered",
                    f"{late} events after the latest checkpoint (size {self.covered}) are not "
                    "integrated yet; the service integrates them when it runs",
                )
            )


async def check_log(
    store: Store,
    tenant: str,
    verifier: notes.Verifier,
    recorded_size: int,
    *,
    remembered: Remembered | None = None,
    wait: float = 0.0,
    progress: Callable[[int], None] = lambda n: None,
) -> Report:
    """Check ``tenant``'s stored log against its signed checkpoints (see the module).

    ``verifier`` is the log's key under the tenant's origin; ``recorded_size`` the number of
    events the store recorded for the tenant before the check (``Store.log_sizes``). Events
    beyond the latest checkpoint get up to ``wait`` seconds for a running integrator to sign
    a checkpoint that covers them. A pruned prefix is read from the store (``Store.horizon``).
    """
    horizon = await store.horizon(tenant)
    check = _Check(store, tenant, verifier, recorded_size, progress, horizon)
    if horizon:
        archives = await store.list_archives(tenant)
        check.report.notices.append(
            Finding(tenant, 0, "pruned", pruned.describe(horizon, pruned.held(horizon, archives)))
        )
        await check.load_prefix()
    if remembered is not None:
        check.add_target(
            remembered.size,
            _Target(
                remembered.root_hash,
                f"the checkpoint verified on {remembered.verified_at} (size {remembered.size})",
                remembered=True,
            ),
        )
    await check.read_checkpoints()
    await check.check_prefix_targets()
    await check.read_events()
    deadline = time.monotonic() + wait
    while check.pos > check.covered and not check.stopped:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        await asyncio.sleep(min(0.1, left))
        await check.read_checkpoints()
        await check.check_prefix_targets()
        await check.read_events()
    await check.finish()
    return check.report

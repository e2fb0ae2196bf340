"""The integrator: committed events become each tenant's Merkle tree and signed checkpoints.

Sequence first, integrate second. A write is answered once its ``seq`` is durable; the
integrator follows behind, in one idempotent step, ``integrate_batch(tenant)``:

1. read the tenant's latest checkpoint (size S) and check it: its signature is ours (unless
   it is the very checkpoint this process last signed or verified), its note says what its
   row says, and it is not older than a checkpoint this process has seen;
2. load the compact range of [0, S) from the stored tree nodes (popcount(S) reads) and check
   that it gives the checkpoint's root;
3. read the next committed events (seq S on, in seq order, no gap) and append their leaf
   hashes (``hasher.leaf_hash`` of the stored bytes) to the range;
4. keep every perfect subtree completed on the way (leaves included), which is what proofs
   are made of, so a proof reads O(log n) nodes and never scans;
5. check the consistency proof from the old checkpoint to the new tree, and sign a checkpoint
   of the new size;
6. store the nodes and the checkpoint, which the store refuses unless it is larger than the
   latest. A round makes steps 1-5 for every tenant with new events, then stores all their
   nodes and checkpoints in one transaction (``Store.add_integrations``): one flush per round
   however many tenants wrote, instead of two per tenant.

Every step can be repeated: a crash anywhere leaves at most nodes that the next run writes
again with the same hashes (a stored node never changes). After the tenants' round, the new
checkpoints are integrated into the tenants log (API.md §13) the same way, and its checkpoint
signed (``tenants_tree``). Several processes may integrate one
store at once: they compute the same nodes from the same events, and of their checkpoints
only ever-larger ones are stored. A checkpoint is signed only on top of one that verified, so
the log never signs one smaller than, or inconsistent with, an earlier one. To save the
repeated work, a store shared by several processes gives the turn to one of them at a time
(``Store.integrating``); the others only read the checkpoints it stores, for their own
``wait_for`` callers, and take over when it goes away.

The loop runs every tenant with new events every ``checkpoint_interval_ms`` (200 ms by
default), or sooner when ``wake`` is called; ``wait_for`` lets a writer wait until its event is
covered by a checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from auditlog.errors import Unavailable
from auditlog.integrity import IntegrityError
from auditlog.integrity import note as notes
from auditlog.integrity.compact import CompactRange
from auditlog.model import times
from auditlog.service import treelog
from auditlog.service.logkey import LogKey
from auditlog.service.recentleaves import RecentLeaves
from auditlog.service.treelog import Seen, TreeLog, span, subtree_key
from auditlog.storage.base import Integration, Store, StoredCheckpoint

log = logging.getLogger("auditlog.integrator")

_T = TypeVar("_T")

#: Most events one ``integrate_batch`` takes: bounds its memory, the time it holds the event
#: loop, and the time between checkpoints when a long backlog is integrated (after a
#: restart, say). Under full load a round takes about 10,000.
BATCH_LEAVES = 20_000


#: Seconds between the checks, within one round, that it is still this process's turn.
TURN_CHECK_SECONDS = 1.0

#: The tenants log is integrated in every round that stored a tenant checkpoint, and at
#: least this often otherwise (to take over what a process that died left unintegrated).
TENANTS_CHECK_SECONDS = 2.0

__all__ = ["Integrator", "load_range", "span", "subtree_key", "tenant_tree", "tenants_tree"]


async def load_range(store: Store, tenant: str, size: int, what: str) -> CompactRange:
    """The compact range of the tenant's first ``size`` leaves, from its stored tree nodes
    (popcount(size) reads). ``IntegrityError`` naming the nodes of ``what`` (and the seqs
    they cover) that are not stored."""
    return await treelog.load_range_of(lambda keys: store.get_nodes(tenant, keys), size, what)


def tenant_tree(
    store: Store, key: LogKey, tenant: str, recent: RecentLeaves | None = None
) -> TreeLog:
    """The Merkle log of one tenant's events, signed under the tenant's origin; its leaves
    are read from ``recent`` where it holds them, else from the store."""

    async def read_leaves(start: int, limit: int) -> list[tuple[int, bytes]]:
        held = None if recent is None else recent.take(tenant, start, limit)
        return held if held else await store.read_leaves(tenant, start, limit)

    return TreeLog(
        what=f"tenant {tenant!r}",
        origin=key.origin(tenant),
        signer=key.signer(tenant),
        latest=lambda: store.latest_checkpoint(tenant),
        add=lambda checkpoint: store.add_checkpoint(tenant, checkpoint),
        get_nodes=lambda keys: store.get_nodes(tenant, keys),
        put_nodes=lambda nodes: store.put_nodes(tenant, nodes),
        read_leaves=read_leaves,
    )


def tenants_leaf(note: str) -> bytes:
    """The leaf of the tenants log for a tenant checkpoint: the body of its signed note (the
    origin, size and root hash lines, as signed, each ending in a newline)."""
    return notes.parse(note).text.encode("utf-8")


def tenants_tree(store: Store, key: LogKey) -> TreeLog:
    """The tenants log (API.md §13): its leaves are the tenants' checkpoints, as stored."""

    async def read_leaves(start: int, limit: int) -> list[tuple[int, bytes]]:
        leaves = await store.read_tenants_leaves(start, limit)
        return [(leaf.index, tenants_leaf(leaf.checkpoint.note)) for leaf in leaves]

    return TreeLog(
        what="the tenants log",
        origin=key.tenants_origin,
        signer=key.tenants_signer(),
        latest=store.latest_tenants_checkpoint,
        add=store.add_tenants_checkpoint,
        get_nodes=store.get_tenants_nodes,
        put_nodes=store.put_tenants_nodes,
        read_leaves=read_leaves,
    )


class Integrator:
    """Integrates committed events into each tenant's tree and signs checkpoints; then the
    tenants' new checkpoints into the tenants log, and signs its checkpoint."""

    def __init__(
        self,
        store: Store,
        key: LogKey,
        *,
        interval_ms: int = 200,
        batch_leaves: int = BATCH_LEAVES,
        clock: Callable[[], int] = times.now_us,
    ) -> None:
        self._store = store
        self._key = key
        self._interval = interval_ms / 1000
        self._batch = batch_leaves
        self._clock = clock
        # The largest checkpoint seen per tenant: the store must never show a smaller one.
        self._seen: dict[str, Seen] = {}
        self._tenants_seen: Seen | None = None
        # Per tenant, the latest checkpoint this process signed or verified: not verified again.
        self._trusted: dict[str, StoredCheckpoint] = {}
        self._waiters: dict[str, list[tuple[int, asyncio.Future[StoredCheckpoint]]]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._failing: dict[str, str] = {}
        self._turn_checked = 0.0  # loop time of the last ``Store.integrating`` that said yes
        self._tenants_listeners: list[Callable[[StoredCheckpoint], None]] = []
        self._tenants_due = 0.0  # loop time from which the tenants log is checked again
        #: What this process committed, fed by the group commit (``Ingestor.on_commit``).
        self.recent = RecentLeaves()

    def on_tenants_checkpoint(self, callback: Callable[[StoredCheckpoint], None]) -> None:
        """Call ``callback`` with each tenants-log checkpoint this process stores."""
        self._tenants_listeners.append(callback)

    # -- one step ------------------------------------------------------------------------

    async def integrate_batch(self, tenant: str) -> StoredCheckpoint | None:
        """Integrate the tenant's next committed events and sign a checkpoint of the new size.

        Returns the checkpoint stored by this call; ``None`` when there was nothing new to
        integrate, or another process stored a checkpoint at least as large first. Raises
        ``IntegrityError`` (and signs nothing) when the stored tree or checkpoint is not what
        was signed before, and ``Unavailable`` when storage fails.
        """
        await self._key.load()
        prepared = await self._prepare(tenant)
        if prepared.checkpoint is None:
            return None
        (stored,) = await self._store.add_integrations(
            [Integration(tenant, prepared.nodes, prepared.checkpoint)]
        )
        if stored:
            self._trust(tenant, prepared.checkpoint)
            return prepared.checkpoint
        await self._lost(tenant)
        return None

    async def _prepare(self, tenant: str) -> treelog.Prepared:
        """The tenant's next step, made and signed but not stored (``treelog.prepare_step``)."""
        tree = tenant_tree(self._store, self._key, tenant, self.recent)
        prepared = await treelog.prepare_step(
            tree, self._seen.get(tenant), self._batch, self._clock(), self._trusted.get(tenant)
        )
        if prepared.latest is not None:
            self._trust(tenant, prepared.latest)
        return prepared

    def _trust(self, tenant: str, checkpoint: StoredCheckpoint) -> None:
        """A checkpoint this process signed, or verified, as the tenant's latest: not verified
        again when the store shows it next, and seen (``_saw``)."""
        if len(self._trusted) > 100_000:
            self._trusted.clear()
        self._trusted[tenant] = checkpoint
        self._saw(tenant, checkpoint)

    async def _lost(self, tenant: str) -> bool:
        """Another process stored a checkpoint at least as large meanwhile: check it (True)."""
        newer = await self._store.latest_checkpoint(tenant)
        tree = tenant_tree(self._store, self._key, tenant)
        treelog.check_latest(tree, newer, self._seen.get(tenant), self._trusted.get(tenant))
        if newer is not None:
            self._trust(tenant, newer)
        return True

    async def integrate_tenants(self) -> StoredCheckpoint | None:
        """Integrate the tenants' new checkpoints into the tenants log, in batches, and sign
        its checkpoint; the last one stored, or ``None`` if there was nothing new.
        ``IntegrityError`` and storage errors as ``integrate_batch``."""
        await self._key.load()
        tree = tenants_tree(self._store, self._key)
        stored: StoredCheckpoint | None = None
        while True:
            step = await treelog.integrate_step(
                tree, self._tenants_seen, self._batch, self._clock()
            )
            for checkpoint in (step.latest, step.stored):
                if checkpoint is not None and (
                    self._tenants_seen is None or checkpoint.size > self._tenants_seen[0]
                ):
                    self._tenants_seen = (checkpoint.size, checkpoint.root_hash)
            if step.stored is None:
                break
            stored = step.stored
            for callback in self._tenants_listeners:
                callback(stored)
        return stored

    def sign(self, tenant: str, size: int, root_hash: bytes) -> StoredCheckpoint:
        """A checkpoint of ``tenant``'s tree, signed now (not stored)."""
        return treelog.sign(
            tenant_tree(self._store, self._key, tenant), size, root_hash, self._clock()
        )

    # -- waiting for a checkpoint ----------------------------------------------------------

    def _saw(self, tenant: str, checkpoint: StoredCheckpoint) -> None:
        seen = self._seen.get(tenant)
        if seen is None or checkpoint.size > seen[0]:
            self._seen[tenant] = (checkpoint.size, checkpoint.root_hash)
        waiters = self._waiters.get(tenant)
        if waiters:
            keep = []
            for size, future in waiters:
                if future.done():
                    continue
                if size <= checkpoint.size:
                    future.set_result(checkpoint)
                else:
                    keep.append((size, future))
            self._waiters[tenant] = keep

    async def wait_for(self, tenant: str, size: int, timeout: float) -> StoredCheckpoint | None:
        """The first checkpoint of ``tenant`` of at least ``size`` leaves, waiting up to
        ``timeout`` seconds for one; ``None`` if none came."""
        latest = await self._store.latest_checkpoint(tenant)
        if latest is not None and latest.size >= size:
            return latest
        future: asyncio.Future[StoredCheckpoint] = asyncio.get_running_loop().create_future()
        entry = (size, future)
        self._waiters.setdefault(tenant, []).append(entry)
        self.wake()
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            latest = await self._store.latest_checkpoint(tenant)
            return latest if latest is not None and latest.size >= size else None
        finally:
            future.cancel()
            waiters = self._waiters.get(tenant)
            if waiters is not None and entry in waiters:
                waiters.remove(entry)

    # -- the loop ----------------------------------------------------------------------------

    def wake(self) -> None:
        """Run the next round now rather than at the end of the interval."""
        self._wake.set()

    def start(self) -> None:
        """Start the loop on the running event loop."""
        if self._task is None:
            self._closing = False
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="auditlog-integrator"
            )

    async def close(self) -> None:
        """Stop the loop after one last round, so that every committed event is covered."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self.run_once()
        for waiters in self._waiters.values():
            for _, future in waiters:
                future.cancel()
        self._waiters.clear()

    async def _run(self) -> None:
        # Rounds start every interval (not an interval after the last one ended), so a round
        # that takes long under load is followed at once by the next.
        loop = asyncio.get_running_loop()
        next_round = loop.time() + self._interval
        while not self._closing:
            delay = next_round - loop.time()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
            self._wake.clear()
            if self._closing:
                return
            next_round = loop.time() + self._interval
            await self.run_once()

    async def run_once(self) -> int:
        """One round: integrate every tenant whose log grew; the checkpoints stored.

        Failures are logged, never raised: the next round tries again.
        """
        if not await self._store.integrating():
            self.recent.set_active(False)
            await self._follow()
            return 0
        self.recent.set_active(True)
        self._turn_checked = asyncio.get_running_loop().time()
        try:
            sizes = await self._store.log_sizes()
        except Unavailable as exc:
            log.warning("integrator: cannot read the log sizes: %s", exc.detail)
            return 0
        except Exception:
            log.exception("integrator: reading the log sizes failed unexpectedly")
            return 0
        stored = await self._catch_up(sizes)
        now = asyncio.get_running_loop().time()
        if stored or now >= self._tenants_due:
            self._tenants_due = now + TENANTS_CHECK_SECONDS
            await self._catch_up_tenants()
        return stored

    async def _catch_up_tenants(self) -> None:
        try:
            await self.integrate_tenants()
        except Unavailable as exc:
            log.warning("integrator: the tenants log: storage failed: %s", exc.detail)
            return
        except IntegrityError as exc:
            if self._failing.get("") != str(exc):
                self._failing[""] = str(exc)
                log.error("integrator: NOT signing checkpoints of the tenants log: %s", exc)
            return
        except Exception:
            log.exception("integrator: the tenants log: integration failed unexpectedly")
            return
        self._failing.pop("", None)

    async def _still_our_turn(self) -> bool:
        """Within a long round, ask the store again (at most every ``TURN_CHECK_SECONDS``):
        that keeps the turn alive, and ends the round if it has passed to another process."""
        now = asyncio.get_running_loop().time()
        if now - self._turn_checked < TURN_CHECK_SECONDS:
            return True
        self._turn_checked = now
        return await self._store.integrating()

    async def _follow(self) -> None:
        """While another process integrates: answer this process's waiters from the
        checkpoints that process stores."""
        for tenant, waiters in list(self._waiters.items()):
            if not any(not future.done() for _, future in waiters):
                continue
            try:
                latest = await self._store.latest_checkpoint(tenant)
            except Unavailable as exc:
                log.warning(
                    "integrator: tenant %r: cannot read checkpoints: %s", tenant, exc.detail
                )
                return
            if latest is not None:
                self._saw(tenant, latest)

    async def _catch_up(self, sizes: dict[str, int]) -> int:
        """Integrate every tenant behind its size, in passes: each pass makes every such
        tenant's next step, then stores them all at once (``Store.add_integrations``: one
        transaction, however many tenants); the checkpoints stored."""
        try:
            await self._key.load()
        except Exception:
            log.exception("integrator: the checkpoint signing key cannot be loaded")
            return 0
        pending = dict(sizes)
        stored = 0
        while pending:
            if not await self._still_our_turn():
                return stored
            steps: list[tuple[str, treelog.Prepared]] = []
            for tenant, size in list(pending.items()):
                if self._seen.get(tenant, (0, b""))[0] >= size:
                    del pending[tenant]
                    continue
                prepared = await self._guarded(tenant, self._prepare(tenant))
                if prepared is None or prepared.checkpoint is None:
                    del pending[tenant]  # failed, or nothing new was readable yet
                    continue
                steps.append((tenant, prepared))
            if not steps:
                return stored
            try:
                results = await self._store.add_integrations(
                    [Integration(t, p.nodes, p.checkpoint) for t, p in steps if p.checkpoint]
                )
            except Unavailable as exc:
                log.warning("integrator: storing a round failed: %s", exc.detail)
                return stored
            except Exception:
                log.exception("integrator: storing a round failed unexpectedly")
                return stored
            for (tenant, prepared), ok in zip(steps, results, strict=True):
                if ok and prepared.checkpoint is not None:
                    self._trust(tenant, prepared.checkpoint)
                    stored += 1
                elif await self._guarded(tenant, self._lost(tenant)) is None:
                    pending.pop(tenant, None)
        return stored

    async def _guarded(self, tenant: str, work: Awaitable[_T]) -> _T | None:
        """``work`` for one tenant; ``None`` when it failed, which is logged (an integrity
        problem once, not every round: nothing more is signed for the tenant)."""
        try:
            result = await work
        except Unavailable as exc:
            log.warning("integrator: tenant %r: storage failed: %s", tenant, exc.detail)
            return None
        except IntegrityError as exc:
            if self._failing.get(tenant) != str(exc):
                self._failing[tenant] = str(exc)
                log.error("integrator: NOT signing checkpoints: %s", exc)
            return None
        except Exception:
            log.exception("integrator: tenant %r: integration failed unexpectedly", tenant)
            return None
        self._failing.pop(tenant, None)
        return result

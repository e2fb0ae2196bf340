"""Pruning: a tenant's events older than its retention leave the store, from the start of its log.

API.md §14. For each tenant with a retention policy, ``Pruner.prune``:

1. finds the **target**: the first seq whose ``received_at`` is within the retention (seqs
   are given in commit order, so ``received_at`` grows with them and a bisection over point
   reads finds it), no further than the largest signed checkpoint (the tree then holds every
   pruned leaf) and, unless ``--no-archive``, than what recorded archives cover without a gap
   from the current horizon;
2. moves the horizon there with ``Store.prune_to``, which a legal hold refuses. From then on
   every read leaves those events out;
3. sweeps the rows below the horizon in small steps (``Store.sweep``) and gives the space
   freed back (``Store.reclaim_space``);
4. records what it did in the tenant's own log (``auditlog.log.pruned``): the seqs pruned, the
   archives that hold them, and whether pruning went ahead without one.

Every step can be repeated: after a crash the next run finds the horizon where it was
moved and finishes the sweep. The service runs ``run_once`` every ``prune_interval_seconds``
(the first time a minute after it starts, or one interval if that is shorter) in the process
that integrates (one process at a time on PostgreSQL); ``auditlog prune``
runs it on demand.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from auditlog.errors import AuditlogError
from auditlog.metrics import Metrics
from auditlog.model import times
from auditlog.model.retention import ArchiveRecord, Hold
from auditlog.service.selfaudit import LOG_PRUNED
from auditlog.storage.base import Store

log = logging.getLogger("auditlog.pruning")

#: Events removed per sweep step: each step is one short write, so appends go in between.
SWEEP_EVENTS = 2000

#: Seconds after the start of the service of its first pruning round (or the interval, if shorter).
FIRST_ROUND_AFTER = 60.0

#: Records an action in a tenant's log: (tenant, type, data).
Recorder = Callable[[str, str, dict[str, Any]], Awaitable[None]]


@dataclass(slots=True)
class Outcome:
    """What one prune of one tenant did (or why it did nothing)."""

    tenant: str
    horizon_before: int = 0
    horizon: int = 0
    swept: int = 0
    reclaimed_bytes: int = 0
    #: Why nothing (more) was pruned, when that is so: a hold, no archive, nothing old enough.
    stopped: str = ""
    #: Events were due and stayed: a legal hold (``held``), or no archive covers them.
    refused: bool = False
    held: bool = False
    archives: list[str] = field(default_factory=list)

    @property
    def pruned(self) -> int:
        return self.horizon - self.horizon_before

    def line(self) -> str:
        if self.pruned:
            text = (
                f"tenant {self.tenant}: pruned seq {self.horizon_before}..{self.horizon - 1}"
                f" ({self.pruned} events); {self.swept} rows removed"
            )
        else:
            text = f"tenant {self.tenant}: nothing pruned (horizon {self.horizon})"
            if self.swept:
                text += f"; {self.swept} rows left by an earlier prune removed"
        if self.reclaimed_bytes:
            text += f"; {self.reclaimed_bytes} bytes given back"
        return text + (f"; {self.stopped}" if self.stopped else "")


def archived_until(archives: list[ArchiveRecord], horizon: int) -> int:
    """The end of what ``archives`` cover without a gap from ``horizon`` (``horizon`` if none)."""
    end = horizon
    for archive in sorted(archives, key=lambda a: (a.first_seq, -a.end_seq)):
        if archive.first_seq <= end:
            end = max(end, archive.end_seq)
    return end


class Pruner:
    """Prunes tenants' logs as their retention says (see the module)."""

    def __init__(
        self,
        store: Store,
        record: Recorder,
        *,
        clock: Callable[[], int] = times.now_us,
        sweep_events: int = SWEEP_EVENTS,
        metrics: Metrics | None = None,
    ) -> None:
        self._store = store
        self._record = record
        self._clock = clock
        self._sweep_events = sweep_events
        self._metrics = metrics

    async def first_kept(self, tenant: str, cutoff_us: int, low: int, high: int) -> int:
        """The first seq in [low, high) received at or after ``cutoff_us`` (``high`` if none)."""
        while low < high:
            middle = (low + high) // 2
            leaves = await self._store.read_leaves(tenant, middle, 1)
            if not leaves or leaves[0][0] >= high:
                high = middle
                continue
            seq, body = leaves[0]
            if _received_us(body) < cutoff_us:
                low = seq + 1
            else:
                high = middle
        return low

    async def target(self, tenant: str, *, no_archive: bool = False) -> tuple[int, int, str]:
        """(horizon now, the target, why the target is not further when events are due and
        no archive covers them) for ``tenant``."""
        horizon = await self._store.horizon(tenant)
        policy = await self._store.get_retention(tenant)
        if policy is None or policy.keep_seconds is None:
            return horizon, horizon, ""
        latest = await self._store.latest_checkpoint(tenant)
        signed = 0 if latest is None else latest.size
        cutoff = self._clock() - policy.keep_seconds * 1_000_000
        due = await self.first_kept(tenant, cutoff, horizon, signed)
        if no_archive:
            return horizon, due, ""
        covered = archived_until(await self._store.list_archives(tenant), horizon)
        if covered < due:
            return (
                horizon,
                covered,
                (
                    f"seq {covered}..{due - 1} are due but no archive covers them: run auditlog"
                    f" archive --tenant {tenant} --through-seq {due - 1}"
                ),
            )
        return horizon, due, ""

    async def prune(self, tenant: str, *, no_archive: bool = False) -> Outcome:
        """Prune one tenant now, as far as its retention, its archives and a hold allow."""
        horizon, target, why = await self.target(tenant, no_archive=no_archive)
        outcome = Outcome(tenant, horizon, horizon, stopped=why, refused=bool(why))
        if target > horizon:
            moved = await self._store.prune_to(tenant, target)
            if isinstance(moved, Hold):
                outcome.stopped = f"a legal hold is set ({moved.reason}, by {moved.set_by})"
                outcome.refused = outcome.held = True
            else:
                outcome.horizon = moved
        metrics = self._metrics
        if metrics is not None:
            metrics.pruned_events.inc(outcome.pruned)
            if outcome.refused:
                metrics.prune_refused.labels("hold" if outcome.held else "archive").inc()
        while swept := await self._store.sweep(tenant, self._sweep_events):
            outcome.swept += swept
            if metrics is not None:
                metrics.prune_swept.inc(swept)
        if outcome.swept:
            outcome.reclaimed_bytes = await self._store.reclaim_space()
            if metrics is not None:
                metrics.prune_reclaimed.inc(outcome.reclaimed_bytes)
        if outcome.pruned:
            archives = await self._store.list_archives(tenant)
            outcome.archives = [
                a.sha256
                for a in archives
                if a.first_seq < outcome.horizon and a.end_seq > outcome.horizon_before
            ]
            await self._record(
                tenant,
                LOG_PRUNED,
                {
                    "first_seq": outcome.horizon_before,
                    "end_seq": outcome.horizon,
                    "events": outcome.pruned,
                    "archives": outcome.archives,
                    "without_archive": no_archive
                    and archived_until(archives, outcome.horizon_before) < outcome.horizon,
                },
            )
            log.info("%s", outcome.line())
        return outcome

    async def tenants(self) -> list[str]:
        """Every tenant with a retention policy, or a pruned prefix (whose sweep a crash may
        have cut short)."""
        tenants = [p.tenant for p in await self._store.list_retention()]
        return tenants + [t for t in await self._store.horizons() if t not in tenants]

    async def run_once(
        self, tenants: list[str] | None = None, *, no_archive: bool = False
    ) -> list[Outcome]:
        """Prune every tenant that may have something to prune (or those named)."""
        if tenants is None:
            tenants = await self.tenants()
        return [await self.prune(t, no_archive=no_archive) for t in tenants]


def _received_us(body: bytes) -> int:
    try:
        return times.parse_rfc3339(orjson.loads(body)["received_at"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return 0  # unreadable: treated as old, as verify will report it anyway


class PruneSchedule:
    """Runs ``Pruner.run_once`` every ``interval`` seconds in the process whose turn it is."""

    def __init__(
        self, pruner: Pruner, store: Store, interval: float, metrics: Metrics | None = None
    ) -> None:
        self._pruner = pruner
        self._store = store
        self._interval = interval
        self._metrics = metrics
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._interval > 0 and self._task is None:
            self._task = asyncio.create_task(self._run(), name="auditlog-pruning")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        # The first round a little after the start, not during it: what a prune cut short
        # by a stop is invisible meanwhile, and is finished then.
        await asyncio.sleep(min(self._interval, FIRST_ROUND_AFTER))
        while True:
            try:
                if await self._store.integrating():
                    if self._metrics is not None:
                        self._metrics.pruning.set(1)
                    await self._pruner.run_once()
                    if self._metrics is not None:
                        self._metrics.prune_last_round.set(time.time())
            except AuditlogError as exc:
                log.warning("pruning stopped for now: %s", exc)
            except Exception:
                log.exception("pruning failed; trying again at the next round")
            finally:
                if self._metrics is not None:
                    self._metrics.pruning.set(0)
            await asyncio.sleep(self._interval)

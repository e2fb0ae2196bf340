"""The stored bytes of events this process just committed, kept for the integrator.

The integrator hashes every committed event into its tenant's tree, about a second after the
commit. Reading the events back from the store for that costs as much as a tenth of what a
batch write costs; but the process that committed them still holds their bytes. The group
commit hands them here (``add``, once they are durable), and the integrator takes them
(``take``) instead of reading them, when they are exactly the leaves it wants next.

Only runs of consecutive seqs are kept, per tenant: a seq that does not follow the run (an
event another process committed, a commit seen out of order) starts a new run, and the
integrator reads from the store what no run covers. The bytes are those the commit stored,
so the tree is the same either way. At most ``limit`` events are held; past that, or while
this process does not integrate (``active`` false), nothing is kept.
"""

from __future__ import annotations

from collections.abc import Sequence

#: Events held at most: about a second of full ingest, ~40 MB of stored bytes.
LIMIT = 65_536


class _Run:
    __slots__ = ("bodies", "start")

    def __init__(self, start: int) -> None:
        self.start = start
        self.bodies: list[bytes] = []


class RecentLeaves:
    """Per tenant, one run of consecutive committed events (seq, stored bytes)."""

    def __init__(self, limit: int = LIMIT) -> None:
        self.limit = limit
        self.active = False
        self._runs: dict[str, _Run] = {}
        self._held = 0

    def add(self, tenant: str, events: Sequence[tuple[int, bytes]]) -> None:
        """Events durably committed by this process, in seq order."""
        if not self.active or not events:
            return
        run = self._runs.get(tenant)
        for seq, body in events:
            if run is None or run.start + len(run.bodies) != seq:
                if run is not None:
                    self._held -= len(run.bodies)
                run = self._runs[tenant] = _Run(seq)
            run.bodies.append(body)
            self._held += 1
        if self._held > self.limit:
            self.clear()

    def take(self, tenant: str, start: int, limit: int) -> list[tuple[int, bytes]] | None:
        """Up to ``limit`` leaves from seq ``start`` on, if a run holds ``start``; ``None``
        otherwise (read them from the store). What lies before ``start`` is let go: the
        integrator does not ask for it again."""
        run = self._runs.get(tenant)
        if run is None or not run.start <= start < run.start + len(run.bodies):
            return None
        drop = start - run.start
        if drop:
            del run.bodies[:drop]
            run.start = start
            self._held -= drop
        return [(start + i, body) for i, body in enumerate(run.bodies[:limit])]

    def set_active(self, active: bool) -> None:
        """Whether this process integrates; while it does not, nothing is kept."""
        if not active:
            self.clear()
        self.active = active

    def clear(self) -> None:
        self._runs.clear()
        self._held = 0

    @property
    def held(self) -> int:
        return self._held

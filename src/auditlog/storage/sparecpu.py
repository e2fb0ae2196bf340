"""How much of the machine's CPU goes spare: whether a helper process would find a core.

A helper (the SQLite indexer's term workers) takes work off a busy process at the cost of
passing it there and back. That pays only where a core would otherwise be idle: on a machine
whose cores the server already keeps busy, the helper only adds its cost. So the indexer
looks, between two of its steps, at how much CPU was idle or went to its helpers themselves,
and hands work out only when that comes to a useful part of a core.
"""

from __future__ import annotations

import os
from collections.abc import Iterable


def _ticks(pid: int) -> int | None:
    """The user and system clock ticks a process has used, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[11]) + int(fields[12])


def _machine() -> tuple[int, int] | None:
    """(all ticks, idle ticks) of every core together since boot, or None off Linux."""
    try:
        with open("/proc/stat", "rb") as fh:
            first = fh.readline().split()
    except OSError:
        return None
    if not first or first[0] != b"cpu" or len(first) < 6:
        return None
    values = [int(v) for v in first[1:9]]  # user nice system idle iowait irq softirq steal
    return sum(values), values[3] + values[4]


#: The least time between two looks that is measured (0.2 s of every core), in clock ticks
#: of one core: shorter ones say too little at 100 ticks a second.
MIN_TICKS = 20


class SpareCpu:
    """The cores that were idle, or busy with given processes, between two looks."""

    def __init__(self) -> None:
        self._last: tuple[int, int, dict[int, int]] | None = None

    def cores(self, helpers: Iterable[int]) -> float | None:
        """Cores spare since the last look: idle, or used by the processes ``helpers``
        (their own use is what they would give back). None at the first look, if the last
        one was too recent (it then still counts as the last), or where the machine does not
        tell (off Linux).

        The machine's ticks and each process's are counted apart and read a moment apart,
        so their sum can come out a tick or two past the whole machine (or a helper's past
        the idle it took): the answer is kept between none and every core."""
        machine = _machine()
        if machine is None:
            return None
        used = {pid: t for pid in helpers if (t := _ticks(pid)) is not None}
        cores = os.cpu_count() or 1
        last = self._last
        if last is not None and machine[0] - last[0] < MIN_TICKS * cores:
            return None  # too soon: the last look still counts
        self._last = (*machine, used)
        if last is None:
            return None
        theirs = sum(t - last[2].get(pid, t) for pid, t in used.items())
        spare = (machine[1] - last[1] + theirs) / (machine[0] - last[0]) * cores
        return min(max(spare, 0.0), float(cores))

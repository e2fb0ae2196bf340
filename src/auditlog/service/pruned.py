"""A tenant's pruned prefix (API.md §14): where its log now begins, what stands for the events
before that, and which archives hold them.

Retention prunes a tenant's events from the start of its log up to its horizon H, the first
kept seq. The tree nodes are kept, so the perfect subtrees of [0, H), the compact range of H
leaves (``prefix``), stand for the pruned events in every root, proof and check: ``auditlog
verify`` starts its recomputation from them, and an auditor gets them from
``GET /v1/log/pruned``, proven by the roots they give with the kept events.

Reads that begin below the horizon continue from it and say so: ``reaches_below`` tells
whether a query's range of seqs begins below it (``Auditlog-Pruned-Before`` on
``GET /v1/events`` and the export, a comment on the live stream).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from typing import Any

from auditlog.integrity.compact import CompactRange
from auditlog.model import times
from auditlog.model.query import Query
from auditlog.model.retention import ArchiveRecord
from auditlog.service.integrator import load_range
from auditlog.storage.base import Store

#: The response header that tells a read of events began below the tenant's horizon.
PRUNED_BEFORE_HEADER = "Auditlog-Pruned-Before"


async def load_prefix(store: Store, tenant: str, horizon: int) -> CompactRange:
    """The compact range of [0, ``horizon``) from the tenant's stored tree nodes.

    ``IntegrityError`` naming the nodes (and the seqs they cover) that are not stored.
    """
    return await load_range(store, tenant, horizon, f"the pruned prefix (seq 0..{horizon - 1})")


#: An archive as the pruned prefix's description needs it: (first seq, end seq, sha256).
Held = tuple[int, int, str]


def held(horizon: int, archives: Sequence[ArchiveRecord]) -> list[Held]:
    """The archives that hold some of the pruned seqs [0, ``horizon``), by first seq."""
    return holding(horizon, [(a.first_seq, a.end_seq, a.sha256) for a in archives])


def holding(horizon: int, spans: Sequence[Held]) -> list[Held]:
    """The spans among ``spans`` that hold some of [0, ``horizon``), by first seq."""
    return sorted(s for s in spans if s[0] < min(s[1], horizon))


def uncovered(horizon: int, spans: Sequence[Held]) -> list[tuple[int, int]]:
    """The ranges [start, end) of [0, ``horizon``) that no span holds (pruned without one)."""
    gaps: list[tuple[int, int]] = []
    reached = 0
    for first, end, _ in holding(horizon, spans):
        if first > reached:
            gaps.append((reached, first))
        reached = max(reached, end)
    if reached < horizon:
        gaps.append((reached, horizon))
    return gaps


def _seqs(start: int, end: int) -> str:
    return f"seq {start}" if end - start == 1 else f"seq {start}..{end - 1}"


def describe(horizon: int, spans: Sequence[Held]) -> str:
    """The pruned prefix in words, for ``auditlog verify``: the seqs, the archives that hold
    them (seq range and sha256) and the seqs no archive holds."""
    parts = [f"{_seqs(0, horizon)} pruned by the tenant's retention"]
    found = holding(horizon, spans)
    if found:
        parts.append(
            "archived in " + "; ".join(f"{_seqs(f, e)} (sha256 {sha})" for f, e, sha in found)
        )
    gaps = uncovered(horizon, spans)
    if gaps:
        shown = ", ".join(_seqs(s, e) for s, e in gaps)
        parts.append(f"{shown} covered by no recorded archive (pruned with --no-archive)")
    return "; ".join(parts)


def first_seq(query: Query) -> int:
    """The smallest seq ``query`` could return: from its seq conditions, and in ascending
    order from its position (a cursor's, or an ``after_seq``)."""
    low = 0
    if query.order == "asc" and query.after_seq is not None:
        low = query.after_seq + 1
    for condition in query.conditions:
        if condition.path != ("seq",):
            continue
        numbers = [v.number for v in condition.values]
        if condition.op == "gt" and numbers[0] is not None:
            low = max(low, math.floor(numbers[0]) + 1)
        elif condition.op == "gte" and numbers[0] is not None:
            low = max(low, math.ceil(numbers[0]))
        elif condition.op in ("eq", "in"):
            # Equal values OR together; a value that is no number matches no seq.
            known = [n for n in numbers if n is not None]
            if known:
                low = max(low, math.ceil(min(known)))
    return low


def reaches_below(query: Query, horizon: int) -> bool:
    """Whether ``query``'s range of seqs begins below ``horizon`` (0: nothing is pruned)."""
    return horizon > 0 and first_seq(query) < horizon


async def prefix_json(store: Store, tenant: str) -> dict[str, Any]:
    """``GET /v1/log/pruned`` of ``tenant``: its horizon, the base64 hashes of the perfect
    subtrees of its pruned prefix (left to right) and every archive recorded of its log."""
    horizon = await store.horizon(tenant)
    prefix = await load_prefix(store, tenant, horizon) if horizon else CompactRange()
    archives = await store.list_archives(tenant)
    return {
        "horizon": horizon,
        "prefix": [base64.b64encode(h).decode("ascii") for h in prefix.hashes],
        "archives": [
            {
                "first_seq": a.first_seq,
                "end_seq": a.end_seq,
                "sha256": a.sha256,
                "created_at": times.format_us(a.created_us),
            }
            for a in sorted(archives, key=lambda a: (a.first_seq, a.end_seq, a.sha256))
        ],
    }

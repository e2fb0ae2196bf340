"""The first pages of a query, held to the reference semantics over every stored event."""

from __future__ import annotations

import dataclasses
from typing import Any

from auditlog.model import times
from auditlog.model.matching import event_matches
from auditlog.model.query import Query
from auditlog.storage.base import Store


async def check_first_pages(
    store: Store, tenant: str, events: list[tuple[dict[str, Any], bytes]], q: Query, what: Any
) -> None:
    """Read the first three pages of ``q``, each after the last seq of the one before, and
    check that they are the first matches of ``events`` (parsed, bytes) in the page order."""
    expected = [b for e, b in events if event_matches(e, times.parse_rfc3339(e["time"]), q)]
    if q.order == "desc":
        expected.reverse()
    got: list[bytes] = []
    page_query = q
    for _ in range(3):
        page = await store.query(tenant, page_query)
        got += page.bodies
        if not page.more:
            break
        assert page.last_seq is not None
        page_query = dataclasses.replace(q, after_seq=page.last_seq)
    assert got == expected[: len(got)], what
    assert len(got) == min(len(expected), 3 * q.limit), what

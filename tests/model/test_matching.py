"""A whole query against one stored event: the reference semantics every store must meet."""

from __future__ import annotations

from typing import Any

import pytest

from auditlog.model.canonical import canonical_bytes
from auditlog.model.matching import body_matches, event_matches
from auditlog.model.query import parse_query
from auditlog.model.times import parse_rfc3339

TIME = "2026-11-27T02:27:53.123456Z"
EVENT: dict[str, Any] = {
    "id": "e1",
    "type": "invoice.billed",
    "time": TIME,
    "actor": {"id": "alice", "type": "user"},
    "subject": {"id": "inv-42", "type": "invoice"},
    "source": "billing",
    "outcome": "success",
    "data": {"amount": 100, "city": "Zürich", "tags": ["a", "b"]},
    "tenant": "acme",
    "seq": 7,
    "received_at": "2026-11-27T02:27:54.000000Z",
}


def matches(*pairs: tuple[str, str]) -> bool:
    query, _ = parse_query(list(pairs))
    found = event_matches(EVENT, parse_rfc3339(TIME), query)
    # The stores match stored bytes: the same answer, whether or not they are decoded.
    assert body_matches(canonical_bytes(EVENT), parse_rfc3339(TIME), query) is found
    return found


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ((), True),
        ((("type", "invoice.billed"),), True),
        ((("type", "invoice.paid"),), False),
        ((("type", "invoice.paid"), ("type", "invoice.billed")), True),  # repeated: OR
        ((("type", "invoice.billed"), ("source", "billing")), True),  # different: AND
        ((("type", "invoice.billed"), ("source", "crm")), False),
        ((("actor", "alice"),), True),
        ((("actor", "user"),), False),  # actor matches the id
        ((("actor.type", "user"),), True),
        ((("subject", "inv-42"),), True),
        ((("subject.type", "invoice"),), True),
        ((("outcome", "success"),), True),
        ((("data.amount[gte]", "100"), ("data.amount[lt]", "101")), True),
        ((("data.amount[gt]", "50"), ("data.amount[gt]", "100")), False),  # repeated gt: AND
        ((("data.tags", "b"),), True),
        ((("seq", "7"),), True),
        ((("seq[gt]", "7"),), False),
        ((("tenant", "acme"),), True),
        ((("id", "e1"),), True),
        ((("q", "ZURICH"),), True),
        ((("q", "zur* billing"),), True),
        ((("q", "zurich paris"),), False),
        ((("since", TIME),), True),  # since is inclusive
        ((("until", TIME),), False),  # until is exclusive
        ((("until", "2026-11-27T02:27:53.123457Z"),), True),
        ((("since", "2026-11-27T02:27:53.123457Z"),), False),
        ((("since", "1795746473"), ("until", "1795746473.123457")), True),
        ((("time[gte]", TIME),), True),
        ((("time[gt]", TIME),), False),
        ((("time", "2026-11-27T03:27:53.123456+01:00"),), True),
        ((("received_at[gt]", TIME),), True),
    ],
)
def test_event_matches(pairs: tuple[tuple[str, str], ...], expected: bool) -> None:
    assert matches(*pairs) is expected


def test_time_range_uses_the_time_given() -> None:
    query, _ = parse_query([("since", "2026-01-01T00:00:00Z")])
    assert event_matches(EVENT, parse_rfc3339("2026-06-01T00:00:00Z"), query)
    assert not event_matches(EVENT, parse_rfc3339("2025-06-01T00:00:00Z"), query)
    body = canonical_bytes(EVENT)
    assert body_matches(body, parse_rfc3339("2026-06-01T00:00:00Z"), query)
    assert not body_matches(body, parse_rfc3339("2025-06-01T00:00:00Z"), query)

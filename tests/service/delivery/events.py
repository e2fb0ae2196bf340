"""Stored events for the sink tests, as the API returns them (canonical bytes)."""

from __future__ import annotations

from typing import Any

from auditlog.model.canonical import canonical_bytes
from auditlog.service.delivery.sink import Batch


def stored_event(seq: int, **fields: Any) -> bytes:
    """An event as stored: the envelope with defaults, ``fields`` over them."""
    event: dict[str, Any] = {
        "id": f"evt-{seq}",
        "type": "user.login",
        "time": "2026-01-02T03:04:05.123456Z",
        "actor": {"id": "alice", "type": "user"},
        "source": "tests",
        "data": {"n": seq},
        "tenant": "acme",
        "seq": seq,
        "received_at": "2026-01-02T03:04:06.000001Z",
    }
    event.update(fields)
    return canonical_bytes(event)


def batch(stream_id: str, *seqs: int, **fields: Any) -> Batch:
    """A batch of the events ``seqs``, each made by ``stored_event`` with ``fields``."""
    return Batch(stream_id, [(seq, stored_event(seq, **fields)) for seq in seqs])

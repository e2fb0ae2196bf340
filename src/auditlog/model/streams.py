"""Log streams as values: a tenant's standing order to push its events to a destination.

A stream is its definition (name, destination, filter, where it starts, paused or not),
changed only through the admin API, and its progress and state, changed only by the process
that holds its delivery lease. ``position`` is the last seq the stream has dealt with: every
event of the tenant from ``start_seq`` through it that matches the filter has been delivered
(events that do not match are passed over). It starts at ``start_seq - 1``.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

STREAM_ID = re.compile(r"st_[a-z2-7]{16}", re.ASCII)
_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"


def new_stream_id() -> str:
    """A new stream id: ``st_`` and 80 random bits in lower-case base32."""
    return "st_" + "".join(secrets.choice(_ALPHABET) for _ in range(16))


@dataclass(frozen=True, slots=True)
class LogStream:
    """A stream as stored. ``destination`` and ``filter`` are JSON text; the destination
    holds its secrets (the webhook signing secret, a Splunk token), which the API never
    shows after creation."""

    stream_id: str
    tenant: str
    name: str
    destination: str
    filter: str
    start_seq: int
    paused: bool
    created_us: int
    updated_us: int
    position: int
    deliveries: int = 0
    failures: int = 0
    last_success_us: int | None = None
    last_error: str | None = None
    last_error_us: int | None = None

    @property
    def delivered_seq(self) -> int | None:
        """What the API calls ``delivered_seq``: ``position``, or ``None`` before the stream
        has dealt with any event from its start on."""
        return self.position if self.position >= self.start_seq else None

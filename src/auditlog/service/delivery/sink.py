"""The seam between a stream's delivery worker and its destination: ``Batch``, ``Sink``,
``DeliveryFailed`` and ``open_sink``.

A sink only encodes a batch for its destination and sends it, once. Retries, backoff,
progress and leases live in the worker, once for every kind of destination. What a worker
may rely on:

* ``await sink.send(batch)`` returns when the destination has accepted the whole batch, as
  far as its protocol can tell (HTTP: a 2xx answer; syslog: every byte written to the
  connection, see ``syslog``). Otherwise it raises ``DeliveryFailed`` and nothing else
  (cancellation aside), within about the sink's ``timeout``; the batch may then have been
  delivered in part or in full, so sending it again is always right (delivery is at least
  once, and receivers drop repeats by the events' ``id`` and ``seq``).
* Sending the same batch again is recognisable as a repeat where the protocol has a place
  for it (the webhook's ``webhook-id``).
* A sink keeps its connections between batches, reconnects by itself on the next ``send``
  after a failure, and never sleeps or retries on its own. One ``send`` at a time per sink;
  ``close`` releases the connections, and the sink must not be used after it.
* ``DeliveryFailed.message`` is safe to show and to log: it never holds a secret (token,
  signing secret, the URL's path or query, which can carry one) nor any event.
  ``reason`` is one of ``REASONS``, a fixed label for metrics; ``retry_after`` is the
  seconds the destination asked to wait (HTTP ``Retry-After``), or None.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeAlias

from auditlog.service.delivery.destinations import Destination

Reason: TypeAlias = Literal[
    "http_3xx",
    "http_4xx",
    "http_429",
    "http_5xx",
    "timeout",
    "connect",
    "tls",
    "closed",
    "protocol",
]
#: Every ``DeliveryFailed.reason``: answered with a redirect (never followed), a client
#: error, 429, a server error; no answer in time; no connection; a TLS handshake or
#: certificate failure; the connection closed or reset under us; an answer that is not the
#: protocol's.
REASONS: tuple[Reason, ...] = (
    "http_3xx",
    "http_4xx",
    "http_429",
    "http_5xx",
    "timeout",
    "connect",
    "tls",
    "closed",
    "protocol",
)


@dataclass(frozen=True, slots=True)
class Batch:
    """Events of one stream to deliver together: ``(seq, stored JSON bytes)`` in seq order.

    The bytes are each event exactly as the API returns it; sinks embed them as they are.
    A batch has at least one event.
    """

    stream_id: str
    events: Sequence[tuple[int, bytes]]

    def __post_init__(self) -> None:
        if not self.events:
            raise ValueError("a batch has at least one event")

    @property
    def first_seq(self) -> int:
        return self.events[0][0]

    @property
    def last_seq(self) -> int:
        return self.events[-1][0]


class DeliveryFailed(Exception):
    """A batch was not (or not surely) delivered; the worker sends it again later."""

    def __init__(self, message: str, *, reason: Reason, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason: Reason = reason
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"DeliveryFailed({self.message!r}, reason={self.reason!r}, retry_after={self.retry_after!r})"


class Sink(Protocol):
    """Sends batches to one destination (see the module's docstring for the contract)."""

    async def send(self, batch: Batch) -> None: ...

    async def close(self) -> None: ...


def open_sink(dest: Destination, timeout: float) -> Sink:
    """A sink for ``dest`` whose every ``send`` gives up after about ``timeout`` seconds.

    Nothing is connected yet: the first ``send`` connects, so this never fails for a
    destination that ``parse_destination`` accepted. A syslog destination without a
    ``hostname`` gets this machine's host name, taken now.
    """
    # Imported here: each sink module imports this one for Batch and DeliveryFailed.
    from auditlog.service.delivery.splunk_hec import SplunkHecSink
    from auditlog.service.delivery.syslog import SyslogSink
    from auditlog.service.delivery.webhook import WebhookSink

    if dest.kind == "webhook":
        if dest.secret is None:
            raise ValueError("a webhook destination needs its signing secret")
        return WebhookSink(dest.url, dest.secret, timeout)
    if dest.kind == "splunk_hec":
        return SplunkHecSink.from_destination(dest, timeout)
    return SyslogSink.from_destination(dest, timeout, default_hostname=socket.gethostname())

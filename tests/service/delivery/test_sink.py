"""The seam between the delivery worker and the sinks (``auditlog.service.delivery.sink``):
batches, failures, and a sink for every kind of destination."""

from __future__ import annotations

import pytest

from auditlog.service.delivery.destinations import parse_destination
from auditlog.service.delivery.sink import REASONS, Batch, DeliveryFailed, open_sink
from auditlog.service.delivery.splunk_hec import SplunkHecSink
from auditlog.service.delivery.syslog import SyslogSink
from auditlog.service.delivery.webhook import WebhookSink

pytestmark = pytest.mark.anyio


def test_a_batch_has_events_and_knows_its_first_and_last_seq() -> None:
    with pytest.raises(ValueError, match="at least one event"):
        Batch("s", [])
    batch = Batch("s", [(4, b"{}"), (5, b"{}"), (9, b"{}")])
    assert (batch.first_seq, batch.last_seq) == (4, 9)


def test_a_failure_carries_a_message_a_reason_and_retry_after() -> None:
    failure = DeliveryFailed("hooks.example answered 429", reason="http_429", retry_after=3.0)
    assert (failure.message, failure.reason, failure.retry_after) == (
        "hooks.example answered 429",
        "http_429",
        3.0,
    )
    assert str(failure) == failure.message
    assert "http_429" in repr(failure)
    assert DeliveryFailed("x", reason="timeout").retry_after is None
    assert len(set(REASONS)) == len(REASONS)


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ({"kind": "webhook", "url": "https://hooks.example/h"}, WebhookSink),
        ({"kind": "splunk_hec", "url": "https://s:8088", "token": "t"}, SplunkHecSink),
        ({"kind": "syslog", "url": "tcp://collector:514"}, SyslogSink),
        ({"kind": "syslog", "url": "tls://collector:6514", "verify_tls": False}, SyslogSink),
    ],
)
async def test_open_sink_makes_the_sink_of_the_kind_without_connecting(
    value: dict[str, object], kind: type
) -> None:
    # The hosts do not exist: making a sink must not touch the network.
    sink = open_sink(parse_destination(value), 5.0)
    assert isinstance(sink, kind)
    await sink.close()
    await sink.close()  # closing twice is harmless

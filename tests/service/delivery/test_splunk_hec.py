"""The Splunk HEC sink (``auditlog.service.delivery.splunk_hec``) against a fake HTTP Event
Collector on 127.0.0.1 that reads the wire format as HEC does: JSON objects, concatenated."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest

from auditlog.service.delivery.destinations import parse_destination
from auditlog.service.delivery.sink import Batch, DeliveryFailed, open_sink
from auditlog.service.delivery.splunk_hec import SplunkHecSink
from service.delivery.events import batch, stored_event
from service.delivery.receiver import CLOSE, Received, Receiver, Reply

pytestmark = pytest.mark.anyio

TOKEN = "6c1c9bde-2a5b-4bd2-93a5-1f0c2e7d8f10"
TIMEOUT = 10.0
SUCCESS = Reply(200, {"content-type": "application/json"}, b'{"text":"Success","code":0}')


def hec_objects(body: bytes) -> list[dict[str, Any]]:
    """The objects of a HEC batch body, read one after another as HEC does."""
    decoder = json.JSONDecoder(parse_float=Decimal)
    text = body.decode("utf-8")
    objects, at = [], 0
    while at < len(text):
        while at < len(text) and text[at].isspace():
            at += 1
        if at == len(text):
            break
        value, at = decoder.raw_decode(text, at)
        assert isinstance(value, dict)
        objects.append(value)
    return objects


def epoch(rfc3339: str) -> Decimal:
    """Unix seconds with microseconds, exactly, from an RFC 3339 time."""
    when = datetime.fromisoformat(rfc3339.replace("Z", "+00:00"))
    whole = int(when.replace(microsecond=0).timestamp())
    return Decimal(whole) + Decimal(when.microsecond) / Decimal(1_000_000)


def splunk(url: str, **options: Any) -> SplunkHecSink:
    sink = open_sink(
        parse_destination({"kind": "splunk_hec", "url": url, "token": TOKEN, **options}), TIMEOUT
    )
    assert isinstance(sink, SplunkHecSink)
    return sink


async def send(sink: SplunkHecSink, *batches: Batch) -> None:
    try:
        for each in batches:
            await sink.send(each)
    finally:
        await sink.close()


def check_request(received: Received, path: str) -> None:
    assert received.path == path
    assert received.headers["authorization"] == f"Splunk {TOKEN}"
    assert received.headers["content-type"] == "application/json"
    assert received.headers["x-splunk-request-channel"]


async def test_a_batch_is_one_object_per_event_with_time_sourcetype_and_event() -> None:
    events = [
        (10, stored_event(10, time="2026-03-04T05:06:07.000001Z")),
        (11, stored_event(11, type="compte créé", data={"note": "ünïcödé ✓", "x": 1.5})),
        (12, stored_event(12, time="1969-12-31T23:59:59.250000Z")),  # before the epoch
    ]
    with Receiver() as hec:
        hec.script(SUCCESS)
        await send(splunk(hec.url + "/"), Batch("str_1", events))
    (received,) = hec.requests
    check_request(received, "/services/collector/event")  # the url's trailing slash minded
    objects = hec_objects(received.body)
    assert len(objects) == 3
    for obj, (_, stored) in zip(objects, events, strict=True):
        event = orjson.loads(stored)
        assert set(obj) == {"time", "sourcetype", "event"}
        assert obj["sourcetype"] == "auditlog"
        assert obj["time"] == epoch(event["time"])
        assert obj["event"] == json.loads(stored, parse_float=Decimal)
        assert stored in received.body  # embedded as stored, not serialised again
    assert objects[2]["time"] == Decimal("-0.75")


async def test_index_source_and_host_are_sent_when_set() -> None:
    with Receiver() as hec:
        sink = splunk(
            hec.url + "/splunk/",
            index="audit",
            sourcetype="acme:audit",
            source="auditlog-eu",
            host="audit-1",
        )
        await send(sink, batch("s", 1, 2), batch("s", 3))
    assert len(hec.requests) == 2
    for received in hec.requests:
        check_request(received, "/splunk/services/collector/event")
        for obj in hec_objects(received.body):
            assert obj["index"] == "audit"
            assert obj["sourcetype"] == "acme:audit"
            assert obj["source"] == "auditlog-eu"
            assert obj["host"] == "audit-1"
    # One channel for the sink, one connection kept for both batches.
    assert len({r.headers["x-splunk-request-channel"] for r in hec.requests}) == 1
    assert len({r.client_port for r in hec.requests}) == 1


async def test_an_event_without_a_usable_time_is_sent_without_one() -> None:
    with Receiver() as hec:
        await send(splunk(hec.url), Batch("s", [(1, b'{"seq":1,"type":"x"}')]))
    (obj,) = hec_objects(hec.requests[0].body)
    assert obj == {"sourcetype": "auditlog", "event": {"seq": 1, "type": "x"}}


async def test_hec_errors_are_in_the_message_and_the_token_never_is() -> None:
    with Receiver() as hec:
        hec.script(
            Reply(400, {}, b'{"text":"Invalid data format","code":6,"invalid-event-number":1}'),
            Reply(403, {}, b'{"text":"Invalid token","code":4}'),
            Reply(401, {}, ('{"text":"Token ' + TOKEN + ' is disabled","code":1}').encode()),
            Reply(503, {"retry-after": "15"}, b'{"text":"Server is busy","code":9}'),
            Reply(500, {}, b"<html>not json</html>"),
            CLOSE,
            SUCCESS,
        )
        expected = [
            ("http_4xx", None, "400 Bad Request: Invalid data format (code 6, event 1)"),
            ("http_4xx", None, "403 Forbidden: Invalid token (code 4)"),
            ("http_4xx", None, "401 Unauthorized: Token [token] is disabled (code 1)"),
            ("http_5xx", 15.0, "503 Service Unavailable: Server is busy (code 9)"),
            ("http_5xx", None, "500 Internal Server Error"),
            ("closed", None, "closed the connection"),
        ]
        sink = splunk(hec.url)
        sent = batch("s", 1, 2)
        try:
            for reason, retry_after, words in expected:
                with pytest.raises(DeliveryFailed) as caught:
                    await sink.send(sent)
                failure = caught.value
                assert (failure.reason, failure.retry_after) == (reason, retry_after)
                assert words in failure.message
                assert TOKEN not in failure.message
                assert TOKEN not in repr(failure)
            await sink.send(sent)
        finally:
            await sink.close()
    assert len(hec.requests) == len(expected) + 1
    assert {r.body for r in hec.requests} == {hec.requests[0].body}


async def test_verify_tls_false_still_fails_on_a_plain_http_port_as_tls() -> None:
    with Receiver() as hec:
        sink = splunk(f"https://127.0.0.1:{hec.port}", verify_tls=False)
        with pytest.raises(DeliveryFailed) as caught:
            await send(sink, batch("s", 1))
    assert caught.value.reason == "tls"

"""The webhook sink (``auditlog.service.delivery.webhook``) against a real HTTP receiver on
127.0.0.1 that checks every signature on its own, and the failures it turns into
``DeliveryFailed``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
from email.utils import formatdate

import pytest

from auditlog.service.delivery.destinations import (
    new_webhook_secret,
    parse_destination,
    webhook_key,
)
from auditlog.service.delivery.sink import Batch, DeliveryFailed, open_sink
from auditlog.service.delivery.webhook import WebhookSink, encode, message_id, sign
from service.delivery.events import batch, stored_event
from service.delivery.receiver import CLOSE, HANG, Received, Receiver, Reply

pytestmark = pytest.mark.anyio

NOW = 1_700_000_000
TIMEOUT = 10.0


def fixed_clock() -> float:
    return NOW + 0.75


def signature_is_valid(received: Received, secret: str) -> bool:
    """The receiver's side of Standard Webhooks, written here from the specification."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    msg_id = received.headers["webhook-id"]
    timestamp = received.headers["webhook-timestamp"]
    signed = f"{msg_id}.{timestamp}.".encode() + received.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    offered = received.headers["webhook-signature"].split(" ")
    return any(
        version == "v1" and hmac.compare_digest(value, expected)
        for version, _, value in (o.partition(",") for o in offered)
    )


def test_the_signature_matches_the_standard_webhooks_test_vector() -> None:
    # The known answer of the Standard Webhooks reference library's test_sign_function:
    # github.com/standard-webhooks/standard-webhooks, libraries/python/tests/test_webhooks.py.
    key = webhook_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    signature = sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_a_batch_is_the_stored_events_joined_as_they_are() -> None:
    # Spacing and key order no serialiser of ours would write: the bytes must pass untouched.
    odd = b'{ "seq" : 8, "type":"x",  "data":{"k":"\xc3\xa9"} }'
    body = encode(Batch("str_1", [(7, stored_event(7)), (8, odd)]))
    assert body == b'{"events":[' + stored_event(7) + b"," + odd + b"]}"
    assert json.loads(body)["events"][1] == {"seq": 8, "type": "x", "data": {"k": "é"}}


async def test_a_batch_is_posted_and_signed() -> None:
    secret = new_webhook_secret()
    sent = batch("str_01J", 41, 42, 43)
    with Receiver() as receiver:
        sink = WebhookSink(
            receiver.url + "/hooks/audit?tenant=acme", secret, TIMEOUT, clock=fixed_clock
        )
        try:
            await sink.send(sent)
        finally:
            await sink.close()
    (received,) = receiver.requests
    assert received.path == "/hooks/audit?tenant=acme"
    assert received.headers["content-type"] == "application/json"
    assert received.headers["webhook-id"] == "msg_str_01J_41_43"
    assert received.headers["webhook-timestamp"] == str(NOW)
    assert signature_is_valid(received, secret)
    assert not signature_is_valid(received, new_webhook_secret())
    assert received.body == b'{"events":[' + b",".join(e for _, e in sent.events) + b"]}"
    events = json.loads(received.body)["events"]
    assert [e["seq"] for e in events] == [41, 42, 43]


async def test_every_failure_is_a_delivery_failure_and_the_retry_succeeds() -> None:
    secret = new_webhook_secret()
    sent = batch("str_9", 5, 6)
    with Receiver() as receiver:
        receiver.script(
            Reply(500, body=b"oops"),
            Reply(503, {"retry-after": "30"}),
            Reply(429, {"retry-after": "7"}),
            Reply(429, {"retry-after": "soon"}),
            Reply(301, {"location": receiver.url + "/elsewhere"}),
            Reply(307),
            Reply(404),
            Reply(401, body=b'{"error": "bad signature"}'),
            Reply(101),
            CLOSE,
            Reply(204),
        )
        expected = [
            ("http_5xx", None, "500"),
            ("http_5xx", 30.0, "503"),
            ("http_429", 7.0, "429"),
            ("http_429", None, "429"),
            ("http_3xx", None, "are not followed"),
            ("http_3xx", None, "are not followed"),
            ("http_4xx", None, "404"),
            ("http_4xx", None, "401"),
            ("protocol", None, ""),  # an upgrade nobody asked for: not HTTP as expected
            ("closed", None, "closed the connection"),
        ]
        sink = open_sink(
            parse_destination({"kind": "webhook", "url": receiver.url + "/hook"}, secret), TIMEOUT
        )
        try:
            for reason, retry_after, words in expected:
                with pytest.raises(DeliveryFailed) as caught:
                    await sink.send(sent)
                failure = caught.value
                assert (failure.reason, words) == (reason, words)
                assert words in failure.message
                assert receiver.url in failure.message
                assert failure.retry_after == retry_after
            await sink.send(sent)
        finally:
            await sink.close()
    assert len(receiver.requests) == len(expected) + 1
    assert {r.path for r in receiver.requests} == {"/hook"}  # no redirect was followed
    assert {r.headers["webhook-id"] for r in receiver.requests} == {"msg_str_9_5_6"}
    assert all(signature_is_valid(r, secret) for r in receiver.requests)
    assert {r.body for r in receiver.requests} == {receiver.requests[0].body}


async def test_retry_after_as_an_http_date_is_counted_from_the_clock() -> None:
    with Receiver() as receiver:
        receiver.script(Reply(429, {"retry-after": formatdate(NOW + 120, usegmt=True)}))
        sink = WebhookSink(receiver.url, new_webhook_secret(), TIMEOUT, clock=lambda: float(NOW))
        try:
            with pytest.raises(DeliveryFailed) as caught:
                await sink.send(batch("s", 1))
        finally:
            await sink.close()
    assert (caught.value.reason, caught.value.retry_after) == ("http_429", 120.0)


async def test_a_receiver_that_does_not_answer_in_time_is_a_timeout() -> None:
    secret = new_webhook_secret()
    with Receiver() as receiver:
        receiver.script(HANG)
        sink = WebhookSink(receiver.url, secret, 0.5)
        try:
            with pytest.raises(DeliveryFailed) as caught:
                await sink.send(batch("s", 1))
            assert caught.value.reason == "timeout"
            assert "0.5 s" in caught.value.message
            await sink.send(batch("s", 1))  # on a new connection
        finally:
            await sink.close()
    assert len(receiver.requests) == 2
    assert receiver.requests[0].client_port != receiver.requests[1].client_port


async def test_the_connection_is_kept_between_batches() -> None:
    with Receiver() as receiver:
        sink = WebhookSink(receiver.url, new_webhook_secret(), TIMEOUT)
        try:
            for first in (0, 10, 20):
                await sink.send(batch("s", first, first + 1))
        finally:
            await sink.close()
    assert len({r.client_port for r in receiver.requests}) == 1
    assert [r.headers["webhook-id"] for r in receiver.requests] == [
        "msg_s_0_1",
        "msg_s_10_11",
        "msg_s_20_21",
    ]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_nobody_listening_is_a_connect_failure() -> None:
    sink = WebhookSink(f"http://127.0.0.1:{closed_port()}/", new_webhook_secret(), TIMEOUT)
    try:
        with pytest.raises(DeliveryFailed) as caught:
            await sink.send(batch("s", 1))
    finally:
        await sink.close()
    assert caught.value.reason == "connect"


async def test_https_to_a_plain_http_receiver_is_a_tls_failure() -> None:
    with Receiver() as receiver:
        sink = WebhookSink(f"https://127.0.0.1:{receiver.port}/", new_webhook_secret(), TIMEOUT)
        try:
            with pytest.raises(DeliveryFailed) as caught:
                await sink.send(batch("s", 1))
        finally:
            await sink.close()
    assert caught.value.reason == "tls"
    assert f"https://127.0.0.1:{receiver.port}" in caught.value.message


async def test_messages_hold_no_secret_path_query_or_event() -> None:
    secret = new_webhook_secret()
    sent = batch("s", 1, data={"card": "4111-1111-1111-1111"})
    with Receiver() as receiver:
        receiver.script(
            Reply(400, body=sent.events[0][1]),  # a receiver that echoes what it got
            Reply(302, {"location": "/login?next=/hooks/T0K3N"}),
            CLOSE,
        )
        sink = WebhookSink(receiver.url + "/hooks/T0K3N?sig=s3cr3t", secret, TIMEOUT)
        messages = []
        try:
            for _ in range(3):
                with pytest.raises(DeliveryFailed) as caught:
                    await sink.send(sent)
                messages.append(caught.value.message)
                messages.append(repr(caught.value))
        finally:
            await sink.close()
    for message in messages:
        for secret_part in ("T0K3N", "s3cr3t", "4111", secret, secret.removeprefix("whsec_")):
            assert secret_part not in message


def test_the_message_id_is_stable_for_a_batch() -> None:
    assert message_id(batch("str_X", 3, 4, 5)) == "msg_str_X_3_5"
    assert message_id(batch("str_X", 3)) == "msg_str_X_3_3"

"""Failures against a real server: answers lost after the server stored the events, 503
floods, 429 with Retry-After from a rate-limited server, conflicts (409), invalid events
(422) and a wrong token (401)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from auditlog_client import APIError, Client, ConflictError, Failure, RetryableError

from live_server import create_key, serving

from .conftest import SCOPES, Live
from .helpers import pause_with, stored
from .transports import Pauses, Recording, batch_ids, problem


def test_a_batch_whose_answer_was_lost_is_resent_and_stored_once(live: Live, token: str) -> None:
    transport = Recording()
    transport.lose_answer = lambda number: number < 3  # the server stored it; we never heard
    pauses = Pauses()
    client = Client(live.url, token, batch_events=5, flush_interval=600, transport=transport)
    pause_with(client, pauses)
    try:
        ids = [client.log("lost.test", data={"i": i}) for i in range(10)]
        assert client.flush(60)
        stats = client.stats()
        assert (stats.sent, stats.failed) == (10, 0)
        assert stats.retried == 15  # three attempts of five events came to nothing
    finally:
        client.close()
    writes = transport.writes()
    assert [batch_ids(r) for r in writes[:4]] == [ids[:5]] * 4  # the same events, same ids
    assert transport.answers == [200, 201]  # the fourth attempt: a replay
    assert [e["id"] for e in stored(live.url, token, type="lost.test")] == ids


def test_a_503_flood_is_waited_out_with_growing_delays(live: Live, token: str) -> None:
    transport = Recording()
    transport.fault = lambda request, number: problem(503, "2") if number < 6 else None
    pauses = Pauses()
    client = Client(live.url, token, flush_interval=600, transport=transport)
    pause_with(client, pauses)
    try:
        ids = [client.log("flood.test", data={"i": i}) for i in range(3)]
        assert client.flush(60)
        assert client.stats().retried == 18
    finally:
        client.close()
    assert len(pauses.delays) == 6
    assert all(d >= 2 for d in pauses.delays)  # never sooner than Retry-After
    # The backoff outgrows Retry-After: the fifth and sixth waits' ceilings are 8 and 16 s.
    assert pauses.delays[4] >= 4
    assert pauses.delays[5] >= 8
    assert len(transport.writes()) == 7
    assert [e["id"] for e in stored(live.url, token, type="flood.test")] == ids


def test_a_rate_limited_server_s_retry_after_is_respected(tmp_path: Path) -> None:
    data = tmp_path / "data"
    token = create_key(data, "t", SCOPES)
    flags = ("--write-rate", "1", "--write-burst", "1")
    with serving(data, tmp_path / "serve.log", *flags) as server:
        transport = Recording()
        pauses = Pauses(real=True)
        client = Client(server.url, token, batch_events=1, flush_interval=0, transport=transport)
        pause_with(client, pauses)
        try:
            ids = [client.log("rate.test", data={"i": i}) for i in range(3)]
            assert client.flush(60)
            assert client.stats().sent == 3
        finally:
            client.close()
        refused = transport.answers.count(429)
        assert refused >= 1
        assert len(pauses.delays) == refused
        assert all(d >= 1 for d in pauses.delays)  # the server's Retry-After is at least 1 s
        assert [e["id"] for e in stored(server.url, token, type="rate.test")] == ids


def test_a_conflict_is_reported_never_retried_and_the_rest_is_stored(
    live: Live, token: str
) -> None:
    failures: list[Failure] = []
    transport = Recording()
    client = Client(
        live.url, token, flush_interval=600, transport=transport, on_error=failures.append
    )
    try:
        first = client.log_sync("conflict.test", id="order-1", data={"v": 1})
        assert first["seq"] >= 0
        with pytest.raises(ConflictError) as refused:
            client.log_sync("conflict.test", id="order-1", data={"v": 2})
        assert refused.value.status == 409
        assert refused.value.problem["type"].endswith("conflict")
        # The same content again is a replay, not a conflict.
        assert client.log_sync("conflict.test", id="order-1", data={"v": 1})["seq"] == first["seq"]

        a = client.log("conflict.test", data={"v": "a"})
        client.log("conflict.test", id="order-1", data={"v": 3})
        b = client.log("conflict.test", data={"v": "b"})
        assert client.flush(60)
        stats = client.stats()
        assert (stats.sent, stats.failed, stats.retried) == (2, 1, 0)
    finally:
        client.close()
    assert len(failures) == 1
    assert isinstance(failures[0].error, ConflictError)
    assert [line for line in failures[0].lines if b"order-1" in line] == list(failures[0].lines)
    bodies = [batch_ids(r) for r in transport.writes()[3:]]  # after the three log_sync calls
    assert bodies == [[a, "order-1", b], [a, b]]
    assert [e["id"] for e in stored(live.url, token, type="conflict.test")] == ["order-1", a, b]


def test_invalid_events_are_refused_and_the_rest_is_stored(live: Live, token: str) -> None:
    failures: list[Failure] = []
    client = Client(live.url, token, flush_interval=600, on_error=failures.append)
    try:
        a = client.log("invalid.test", data={"v": "a"})
        client.log("invalid.test", data={"n": 2**70})  # beyond 64 bits: 422 naming a line
        client.log("invalid.test", actor={"id": "x", "email": "y"})  # 422 naming the index
        b = client.log("invalid.test", data={"v": "b"})
        assert client.flush(60)
        assert (client.stats().sent, client.stats().failed) == (2, 2)
    finally:
        client.close()
    refused = sorted((f for f in failures), key=lambda f: f.lines[0])
    assert [len(f.lines) for f in refused] == [1, 1]
    assert all(isinstance(f.error, APIError) and f.error.status == 422 for f in failures)
    assert any(b"email" in f.lines[0] for f in failures)
    assert any(b"1180591620717411303424" in f.lines[0] for f in failures)
    assert [e["id"] for e in stored(live.url, token, type="invalid.test")] == [a, b]


def test_a_wrong_token_fails_every_event_with_the_problem(live: Live) -> None:
    failures: list[Failure] = []
    client = Client(live.url, "alk_nosuchkey", flush_interval=600, on_error=failures.append)
    try:
        client.log("x")
        client.log("y")
        assert client.flush(60)
        assert (client.stats().sent, client.stats().failed) == (0, 2)
        with pytest.raises(APIError) as refused:
            client.log_sync("z")
        assert refused.value.status == 401
    finally:
        client.close()
    assert isinstance(failures[0].error, APIError)
    assert failures[0].error.status == 401
    assert len(failures[0].lines) == 2


def test_log_sync_retries_a_lost_answer_and_gets_the_stored_event(live: Live, token: str) -> None:
    transport = Recording()
    transport.lose_answer = lambda number: number == 0
    client = Client(live.url, token, transport=transport)
    try:
        event = client.log_sync("sync.test", data={"k": 1})
    finally:
        client.close()
    assert transport.answers == [200]  # the retry was a replay of the first attempt
    assert [e["id"] for e in stored(live.url, token, type="sync.test")] == [event["id"]]


def test_log_sync_gives_up_after_its_attempts(live: Live, token: str) -> None:
    transport = Recording()
    transport.fault = lambda request, number: problem(503, "0")
    client = Client(live.url, token, transport=transport)
    try:
        with pytest.raises(RetryableError) as refused:
            client.log_sync("never")
        assert refused.value.status == 503
    finally:
        client.close()
    assert len(transport.writes()) == 5


def test_an_unreachable_server_is_retried_then_reached(live: Live, token: str) -> None:
    transport = Recording()

    def fail_first(request: httpx.Request, number: int) -> None:
        if number < 2:
            raise httpx.ConnectError("refused (test)", request=request)

    transport.fault = fail_first
    pauses = Pauses()
    client = Client(live.url, token, flush_interval=600, transport=transport)
    pause_with(client, pauses)
    try:
        event_id = client.log("reach.test")
        assert client.flush(60)
    finally:
        client.close()
    assert len(pauses.delays) == 2
    assert [e["id"] for e in stored(live.url, token, type="reach.test")] == [event_id]

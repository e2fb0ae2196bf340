"""The bounded queue: full in events or in bytes, it blocks for a while, drops and counts, or
raises, as the caller chose; what it took is sent once there is room."""

from __future__ import annotations

import dataclasses
import threading

import pytest
from auditlog_client import Client, ClosedError, QueueFullError

from .conftest import Live
from .helpers import stored
from .transports import Recording


def held_client(live: Live, token: str, **options: object) -> tuple[Client, threading.Event]:
    """A client whose every write waits at a gate until the test opens it."""
    transport = Recording()
    gate = threading.Event()
    transport.gate = gate
    options.setdefault("batch_events", 5)
    options.setdefault("flush_interval", 0)
    return Client(live.url, token, transport=transport, **options), gate  # type: ignore[arg-type]


def test_drop_counts_what_a_full_queue_did_not_take(live: Live, token: str) -> None:
    client, gate = held_client(live, token, max_queue_events=10, on_full="drop")
    try:
        taken = [client.log("drop.test", data={"i": i}) for i in range(10)]
        for i in range(5):
            client.log("drop.test", data={"late": i})
        stats = client.stats()
        assert (stats.dropped, stats.queued) == (5, 10)
        gate.set()
        assert client.flush(60)
        assert (client.stats().sent, client.stats().dropped) == (10, 5)
        client.log("drop.test", data={"after": True})  # room again
        assert client.flush(60)
    finally:
        gate.set()
        client.close()
    ids = [e["id"] for e in stored(live.url, token, type="drop.test")]
    assert ids[:10] == taken
    assert len(ids) == 11


def test_the_byte_bound_counts_too(live: Live, token: str) -> None:
    client, gate = held_client(live, token, max_queue_bytes=2000, on_full="drop")
    try:
        for i in range(4):
            client.log("bytes.bound", data={"pad": "x" * 500, "i": i})
        assert (client.stats().queued, client.stats().dropped) == (3, 1)
    finally:
        gate.set()
        client.close()
    assert len(stored(live.url, token, type="bytes.bound")) == 3


def test_block_waits_for_room_then_drops(live: Live, token: str) -> None:
    client, gate = held_client(live, token, max_queue_events=3, on_full="block", block_timeout=0.1)
    try:
        for i in range(3):
            client.log("block.test", data={"i": i})
        client.log("block.test", data={"timed out": True})  # waits 0.1 s, then is dropped
        assert client.stats().dropped == 1

        client._sender.settings = dataclasses.replace(client._sender.settings, block_timeout=60.0)
        logged: list[str] = []
        blocked = threading.Thread(target=lambda: logged.append(client.log("block.test")))
        blocked.start()
        blocked.join(0.2)
        assert blocked.is_alive()  # the gate holds the queue full: the producer waits
        gate.set()
        blocked.join(60)
        assert not blocked.is_alive()
        assert client.flush(60)
        assert (client.stats().sent, client.stats().dropped) == (4, 1)
    finally:
        gate.set()
        client.close()
    assert [e["id"] for e in stored(live.url, token, type="block.test")][-1] == logged[0]


def test_raise_tells_the_caller(live: Live, token: str) -> None:
    client, gate = held_client(live, token, max_queue_events=2, on_full="raise")
    try:
        client.log("raise.test")
        client.log("raise.test")
        with pytest.raises(QueueFullError):
            client.log("raise.test")
        assert client.stats().dropped == 1
    finally:
        gate.set()
        client.close()
    with pytest.raises(ClosedError):
        client.log("after.close")

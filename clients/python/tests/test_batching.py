"""Batching against a real server: a batch goes when it holds ``batch_events`` events, or
``batch_bytes`` bytes, or ``flush_interval`` after its first event; in the order logged."""

from __future__ import annotations

from auditlog_client import Client

from .conftest import Live
from .helpers import eventually, stored
from .transports import Recording, batch_sizes


def test_a_batch_goes_when_it_holds_batch_events(live: Live, token: str) -> None:
    transport = Recording()
    client = Client(live.url, token, batch_events=10, flush_interval=600, transport=transport)
    try:
        ids = [client.log("count.test", data={"i": i}) for i in range(25)]
        eventually(lambda: client.stats().sent == 20, "two full batches sent")
        assert batch_sizes(transport.writes()) == [10, 10]
        assert client.flush(60)
        assert batch_sizes(transport.writes()) == [10, 10, 5]
        assert client.stats().sent == 25
    finally:
        client.close()
    assert [e["id"] for e in stored(live.url, token, type="count.test")] == ids


def test_a_batch_goes_when_it_holds_batch_bytes(live: Live, token: str) -> None:
    transport = Recording()
    client = Client(
        live.url,
        token,
        batch_events=1000,
        batch_bytes=2000,
        flush_interval=600,
        transport=transport,
    )
    try:
        # Each event's line is 550-650 bytes: three fit in 2000 bytes, four do not.
        ids = [client.log("bytes.test", data={"pad": "x" * 500, "i": i}) for i in range(8)]
        sizes = [len(r.content) for r in transport.writes()]
        eventually(lambda: client.stats().sent == 6, "two batches of three sent")
        requests = transport.writes()
        assert batch_sizes(requests) == [3, 3]
        assert all(len(r.content) <= 2000 for r in requests), sizes
        assert client.flush(60)
        assert batch_sizes(transport.writes()) == [3, 3, 2]
    finally:
        client.close()
    assert [e["id"] for e in stored(live.url, token, type="bytes.test")] == ids


def test_a_batch_goes_after_the_flush_interval_without_a_flush(live: Live, token: str) -> None:
    transport = Recording()
    client = Client(live.url, token, batch_events=1000, flush_interval=0.05, transport=transport)
    try:
        ids = [client.log("delay.test", data={"i": i}) for i in range(3)]
        eventually(lambda: client.stats().sent == 3, "the events sent by the timer")
        assert sum(batch_sizes(transport.writes())) == 3
    finally:
        client.close()
    assert [e["id"] for e in stored(live.url, token, type="delay.test")] == ids


def test_many_threads_log_at_once_and_each_event_is_stored_once(live: Live, token: str) -> None:
    import threading

    client = Client(live.url, token, batch_events=100, flush_interval=0.01)
    logged: list[list[str]] = [[] for _ in range(8)]

    def produce(n: int) -> None:
        for i in range(500):
            logged[n].append(client.log("threads.test", data={"thread": n, "i": i}))

    try:
        threads = [threading.Thread(target=produce, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert client.flush(60)
        assert client.stats().sent == 4000
    finally:
        client.close()
    events = stored(live.url, token, type="threads.test")
    assert sorted(e["id"] for e in events) == sorted(i for ids in logged for i in ids)
    for n in range(8):  # each thread's events in the order it logged them
        assert [e["id"] for e in events if e["data"]["thread"] == n] == logged[n]


def test_several_batches_in_flight_store_each_event_once(live: Live, token: str) -> None:
    transport = Recording()
    client = Client(
        live.url, token, batch_events=100, flush_interval=0.01, max_in_flight=4, transport=transport
    )
    try:
        ids = [client.log("inflight.test", data={"i": i}) for i in range(3000)]
        assert client.flush(60)
        assert client.stats().sent == 3000
        more = [client.log("inflight.test", data={"i": i}) for i in range(3000, 3050)]
        assert client.flush(60)
        assert client.stats().sent == 3050
    finally:
        client.close()
    assert all(size <= 100 for size in batch_sizes(transport.writes()))
    events = stored(live.url, token, type="inflight.test")
    assert sorted(e["id"] for e in events) == sorted(ids + more)

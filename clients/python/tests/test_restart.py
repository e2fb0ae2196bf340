"""The server killed with SIGKILL and restarted while a producer logs 20,000 events with a
spool: every event is stored exactly once, in the order logged."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from unittest import mock

from auditlog_client import Client, RetryPolicy

import live_server
from live_server import Server, create_key

from .conftest import SCOPES
from .helpers import WAIT, eventually, stored

COUNT = 20_000


def restart_on(port: int, data: Path, log: Path) -> Server:
    with mock.patch.object(live_server, "free_port", return_value=port):
        server = Server(data, log)
    server.wait_ready()
    return server


def test_a_server_killed_twice_while_logging_stores_each_event_once_in_order(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    token = create_key(data, "t", SCOPES)
    server = Server(data, tmp_path / "serve0.log")
    servers = [server]
    client: Client | None = None
    try:
        server.wait_ready()
        port = server.port
        client = Client(
            server.url,
            token,
            spool_dir=tmp_path / "spool",
            batch_events=200,
            flush_interval=0.01,
            retry=RetryPolicy(initial=0.05, maximum=0.5),
        )
        logged: list[str] = []

        def produce() -> None:
            assert client is not None
            for i in range(COUNT):
                logged.append(client.log("restart.test", data={"i": i}))
                if i % 500 == 499:
                    time.sleep(0.02)  # a steady stream, not one burst

        producer = threading.Thread(target=produce)
        producer.start()
        for round_, threshold in enumerate((4_000, 11_000), start=1):
            eventually(lambda t=threshold: client.stats().sent >= t, f"{threshold} events sent")
            server.stop()  # SIGKILL, mid-stream
            server = restart_on(port, data, tmp_path / f"serve{round_}.log")
            servers.append(server)
        producer.join(WAIT)
        assert not producer.is_alive()
        assert client.flush(120)
        stats = client.stats()
        assert (stats.sent, stats.failed, stats.dropped) == (COUNT, 0, 0)
        ids = [e["id"] for e in stored(server.url, token, type="restart.test")]
    finally:
        if client is not None:
            client.close(timeout=5)
        for s in servers:
            s.stop()
    assert len(ids) == len(set(ids)), "an event was stored twice"
    assert ids == logged

"""``auditlog serve`` as a real process: start, serve, and drain on SIGTERM.

Each test makes its own data directory and key with ``auditlog keys create``, starts the
server on a free port of 127.0.0.1, and stops every process it started, by its pid, in a
``finally`` block. Every wait is bounded.

The server runs with its defaults, so it audits itself: the tenant's log starts with the
record of the key's creation, and every read of the log adds a record of it.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from live_server import create_key, serving

pytestmark = pytest.mark.slow

REQUEST_TIMEOUT = 30.0
CONNECTION_ERROR = "connection error"


def all_events(client: httpx.Client) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    params: dict[str, str] = {"order": "asc", "limit": "1000"}
    for _ in range(1000):
        response = client.get("/v1/events", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        found.extend(page["events"])
        if page["next_cursor"] is None:
            return found
        params["cursor"] = page["next_cursor"]
    raise AssertionError("the query did not end")


def is_own_record(event: dict[str, Any]) -> bool:
    """Whether the service made this event itself (its self-audit)."""
    return str(event["type"]).startswith("auditlog.")


def test_serve_writes_and_reads(tmp_path: Path) -> None:
    data = tmp_path / "data"
    token = create_key(data)
    headers = {"Authorization": f"Bearer {token}"}
    with (
        serving(data, tmp_path / "serve.log") as server,
        httpx.Client(base_url=server.url, headers=headers, timeout=REQUEST_TIMEOUT) as client,
    ):
        created = client.post("/v1/events", json={"id": "e1", "type": "user.login"})
        assert created.status_code == 201, created.text
        assert created.headers["location"] == "/v1/events/e1"
        fetched = client.get("/v1/events/e1")
        assert fetched.status_code == 200
        assert fetched.json() == created.json()
        assert client.get("/v1/events", params={"type": "user.login"}).json()["events"] == [
            created.json()
        ]
        ndjson = b'{"id": "e2", "type": "a"}\n{"id": "e3", "type": "b"}\n'
        batch = client.post(
            "/v1/events", content=ndjson, headers={"Content-Type": "application/x-ndjson"}
        )
        # seq 0 is the key's creation; 2 and 3 record the two reads of e1.
        assert batch.json() == {"events": [{"id": "e2", "seq": 4}, {"id": "e3", "seq": 5}]}
        assert client.get("/readyz").status_code == 200
        assert client.get("/v1/auth/whoami").json()["tenant"] == "t"
        assert client.get("/v1/events", headers={"Authorization": "Bearer x"}).status_code == 401
        server.terminate()
    # What was acknowledged is there after a restart.
    with (
        serving(data, tmp_path / "serve2.log") as server,
        httpx.Client(base_url=server.url, headers=headers, timeout=REQUEST_TIMEOUT) as client,
    ):
        events = all_events(client)
        assert [e["type"] for e in events] == [
            "auditlog.key.created",
            "user.login",
            "auditlog.log.read",
            "auditlog.log.read",
            "a",
            "b",
        ]
        assert [e["id"] for e in events if not is_own_record(e)] == ["e1", "e2", "e3"]
        assert [e["seq"] for e in events] == list(range(6))
        server.terminate()


def test_sigterm_drains_in_flight_writes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    token = create_key(data)
    headers = {"Authorization": f"Bearer {token}"}
    workers = 50
    outcomes: list[tuple[str, int | str]] = []
    lock = threading.Lock()
    answered = threading.Semaphore(0)
    stop = threading.Event()

    def produce(worker: int, url: str) -> None:
        """POST events one after another until the server is gone."""
        with httpx.Client(base_url=url, headers=headers, timeout=REQUEST_TIMEOUT) as client:
            for n in range(10_000):
                if stop.is_set():
                    return
                event_id = f"w{worker}-{n}"
                event = {"id": event_id, "type": "drain.test", "data": {"n": n}}
                try:
                    status: int | str = client.post("/v1/events", json=event).status_code
                except httpx.TransportError:
                    status = CONNECTION_ERROR
                with lock:
                    outcomes.append((event_id, status))
                answered.release()
                if status == CONNECTION_ERROR:
                    return

    with serving(data, tmp_path / "serve.log") as server:
        threads = [
            threading.Thread(target=produce, args=(w, server.url), daemon=True)
            for w in range(workers)
        ]
        try:
            for thread in threads:
                thread.start()
            # Let every producer get going, then stop the server under full load.
            for _ in range(workers * 4):
                assert answered.acquire(timeout=REQUEST_TIMEOUT), server.log()
            returncode = server.terminate()
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=REQUEST_TIMEOUT + 5)
        assert not any(thread.is_alive() for thread in threads)
        log = server.log()
    # The exit status itself is test_sigterm_exits_with_status_0's concern.
    assert returncode in (0, -signal.SIGTERM), log

    statuses = {status for _, status in outcomes}
    assert statuses <= {201, 503, CONNECTION_ERROR}, (statuses, log)
    assert "Traceback" not in log
    acknowledged = {event_id for event_id, status in outcomes if status == 201}
    assert len(acknowledged) >= workers * 4  # every answer before the SIGTERM at least

    # After a restart, every acknowledged event is there exactly once.
    with (
        serving(data, tmp_path / "serve2.log") as server,
        httpx.Client(base_url=server.url, headers=headers, timeout=REQUEST_TIMEOUT) as client,
    ):
        events = all_events(client)
        server.terminate()
    stored = [e["id"] for e in events if not is_own_record(e)]
    assert len(stored) == len(set(stored))
    assert acknowledged <= set(stored)
    # Anything else stored was sent and cut off by the shutdown, never made up.
    assert set(stored) <= {event_id for event_id, _ in outcomes}
    assert [e["seq"] for e in events] == list(range(len(events)))


def test_sigterm_exits_with_status_0(tmp_path: Path) -> None:
    data = tmp_path / "data"
    create_key(data)
    with serving(data, tmp_path / "serve.log") as server:
        assert server.terminate() == 0, server.log()

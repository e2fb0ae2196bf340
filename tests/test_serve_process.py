"""``auditlog serve`` as a real process: start, serve, and drain on SIGTERM.

Each test makes its own data directory and key with ``auditlog keys create``, starts the
server on a free port of 127.0.0.1, and stops every process it started, by its pid, in a
``finally`` block. Every wait is bounded.

The server runs with its defaults, so it audits itself: the tenant's log starts with the
record of the key's creation, and every read of the log adds a record of it.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from live_server import LOAD, all_events, create_key, is_own_record, serving
from reliability.ledger import Ledger, check
from reliability.producers import Producers

pytestmark = [pytest.mark.slow, LOAD]

REQUEST_TIMEOUT = 30.0


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


def test_sigterm_under_load_answers_every_accepted_request(tmp_path: Path) -> None:
    """SIGTERM while producers write singles and batches: each request is answered (2xx, or
    503 once the shutdown began) or was never accepted (its connection failed), and only what
    was answered 2xx is stored, batches whole; the process exits with status 0."""
    data = tmp_path / "data"
    token = create_key(data)
    ledger = Ledger()
    with serving(data, tmp_path / "serve.log") as server:
        producers = Producers(server.url, {"t": token}, ledger, "term", workers=16, seed=1)
        producers.start()
        try:
            # Let every producer get going, then stop the server under full load.
            for _ in range(16 * 4):
                assert producers.answered.acquire(timeout=REQUEST_TIMEOUT), server.log()
            returncode = server.terminate()
        finally:
            producers.stop()
        log = server.log()
    assert returncode == 0, log
    assert "Traceback" not in log
    statuses = {sent.status for sent in ledger.requests}
    assert statuses <= {201, 503, None}, (statuses, log)
    for sent in ledger.requests:
        if sent.status == 503:
            assert sent.retry_after is not None
            assert sent.retry_after.isdigit()
    assert ledger.acknowledged_events() >= 16 * 4  # every answer before the SIGTERM at least

    # After a restart: every acknowledged event is there once, as answered, in a gap-free log,
    # and nothing of a request that was refused or cut off before acceptance.
    with (
        serving(data, tmp_path / "serve2.log") as server,
        httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30.0
        ) as client,
    ):
        report = check(ledger, {"t": client}, fetch_limit=100)
        server.terminate()
    assert report.problems == []
    assert report.lost == report.partial == report.duplicates == 0
    assert report.unanswered_stored == 0  # a request without an answer was never accepted


def test_sigterm_exits_with_status_0(tmp_path: Path) -> None:
    data = tmp_path / "data"
    create_key(data)
    with serving(data, tmp_path / "serve.log") as server:
        assert server.terminate() == 0, server.log()

"""Overload: a flood far beyond what a real server can commit (API.md §2).

Many connections post large batches at once against a small ingest queue, or single events
past a credential's write rate. Every answer is 201 or a refusal (503 for a full queue, 429 for
a rate) with ``Retry-After``; no connection fails; memory stays bounded; exactly what was
acknowledged is stored; and once the flood stops, the next write is stored at once.

``bench/overload.py`` floods for longer and reports how fast refusals come back and the peak
memory; here only what the service promises is checked, never its speed.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from live_server import LOAD, Storage, all_events, create_key, is_own_record, serving
from reliability.crashing import CRASH_FLAGS
from reliability.flood import batch_body, flood, post_request, single_body

pytestmark = [pytest.mark.slow, LOAD]

#: A bound that only unbounded growth passes: the server takes ~100-300 MiB under a flood.
MEMORY_BOUND_KIB = 1024 * 1024
#: Writes that surely empty a bucket of 50 tokens refilled at 50 a second, one at a time.
MAX_WRITES_TO_EMPTY = 1000


def test_a_flood_of_batches_gets_503_with_retry_after_and_stores_only_what_was_acknowledged(
    storage: Storage, tmp_path: Path
) -> None:
    token = create_key(storage)
    events = 500
    flags = (*CRASH_FLAGS, "--queue-max-events", "2000")
    with serving(storage, tmp_path / "serve.log", *flags) as server:
        result = flood(
            server.port,
            post_request(server.port, token, batch_body(events)),
            connections=48,
            seconds=3.0,
            requests_per_connection=20,
            events_per_request=events,
        )
        assert server.process.poll() is None, server.log()
        peak = server.peak_rss_kib()
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=30.0) as client:
            # The flood is over: the next write is stored, without a retry.
            after = client.post("/v1/events", json={"id": "after-flood", "type": "t"})
            assert after.status_code == 201, after.text
            stored = all_events(client)
        assert server.terminate() == 0, server.log()
        log = server.log()
    assert set(result.statuses) <= {201, 503}, result.statuses
    assert result.statuses[503] > 0
    assert result.statuses[201] > 0
    assert result.refusals_without_retry_after == 0
    assert not result.connection_errors
    assert peak < MEMORY_BOUND_KIB
    assert "Traceback" not in log
    flooded = [e for e in stored if not is_own_record(e) and e["type"] == "flood.test"]
    assert len(flooded) == result.statuses[201] * events
    assert [e["seq"] for e in stored] == list(range(len(stored)))


def test_a_flood_over_the_write_rate_gets_429_with_retry_after_and_recovers(
    storage: Storage, tmp_path: Path
) -> None:
    token = create_key(storage)
    flags = ("--no-audit-reads", "--read-rate", "0", "--write-rate", "50", "--write-burst", "50")
    with serving(storage, tmp_path / "serve.log", *flags) as server:
        result = flood(
            server.port,
            post_request(server.port, token, single_body()),
            connections=32,
            seconds=3.0,
            requests_per_connection=20,
        )
        assert server.process.poll() is None, server.log()
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=30.0) as client:
            # The bucket refills as time passes, so a write now may or may not find a token.
            # Write until one is refused; then waiting as told is enough: the next is stored.
            for _ in range(MAX_WRITES_TO_EMPTY):
                refused = client.post("/v1/events", json={"type": "t"})
                if refused.status_code != 201:
                    break
            assert refused.status_code == 429, refused.text
            time.sleep(int(refused.headers["retry-after"]))
            after = client.post("/v1/events", json={"id": "after-flood", "type": "t"})
            assert after.status_code == 201, after.text
            stored = all_events(client)
        assert server.terminate() == 0
    assert set(result.statuses) <= {201, 429}, result.statuses
    assert result.statuses[429] > 0
    assert result.refusals_without_retry_after == 0
    assert not result.connection_errors
    flooded = [e for e in stored if e["type"] == "flood.test"]
    assert len(flooded) == result.statuses[201]

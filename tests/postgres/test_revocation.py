"""A key revoked with the command line is refused by every running server on PostgreSQL.

Each server caches API keys; a revocation commits a notice (``NOTIFY``) that every server
listens for, and drops the key from its cache. Two servers on one schema have both used (and
so cached) a key; ``auditlog keys revoke`` in a third process must make both refuse it from
their next request.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

import pgtest
from live_server import Storage, auditlog, create_key, serving_many

pytestmark = pytest.mark.slow


def test_a_revoked_key_is_refused_by_every_server(tmp_path: Path) -> None:
    storage = Storage.at(pgtest.private_url())
    token = create_key(storage, "acme", "events:read")
    key_id = token.split("_")[1]
    with serving_many(storage, tmp_path, 2) as servers:
        headers = {"Authorization": f"Bearer {token}"}
        for server in servers:
            for _ in range(3):  # cached after the first
                answer = httpx.get(f"{server.url}/v1/auth/whoami", headers=headers, timeout=10)
                assert answer.status_code == 200, answer.text
        done = auditlog("keys", "revoke", key_id, *storage.flags)
        assert done.returncode == 0, done.stderr
        for server in servers:
            # The notice arrives within moments; a request after it must be refused.
            deadline = time.monotonic() + 10
            while True:
                answer = httpx.get(f"{server.url}/v1/auth/whoami", headers=headers, timeout=10)
                if answer.status_code == 401:
                    break
                assert answer.status_code == 200, answer.text
                assert time.monotonic() < deadline, "a revoked key is still accepted"
                time.sleep(0.05)

"""A key revoked, or a user removed or given a new password, with the command line is
refused by every running server on PostgreSQL.

Each server caches API keys; a revocation commits a notice (``NOTIFY``) that every server
listens for, and drops the key from its cache. Two servers on one schema have both used (and
so cached) a key; ``auditlog keys revoke`` in a third process must make both refuse it from
their next request. Login tokens are not cached: each request reads the token's user.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

import pgtest
from auditlog.service.tokens import PASSWORD_CHANGED, USER_REMOVED
from live_server import Server, Storage, auditlog, create_key, serving_many

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


def test_a_users_tokens_end_on_every_server_when_it_is_changed_or_removed(tmp_path: Path) -> None:
    """Login tokens are checked against the stored user on every request, on whichever server:
    ``users passwd`` and ``users remove`` in another process end them at once, everywhere,
    with nothing to wait for."""
    storage = Storage.at(pgtest.private_url())
    password, new_password = "correct horse battery staple", "tr0ub4dor and three"
    for name in ("alice", "bob"):
        added = auditlog(
            "users", "add", name, "--tenant", "acme", "--scopes", "events:read",
            *storage.flags, stdin=password + "\n",
        )  # fmt: skip
        assert added.returncode == 0, added.stderr

    def login(server: Server, name: str, secret: str) -> httpx.Response:
        body = {"username": name, "password": secret}
        return httpx.post(f"{server.url}/v1/auth/token", json=body, timeout=10)

    def token(server: Server, name: str, secret: str = password) -> str:
        answer = login(server, name, secret)
        assert answer.status_code == 200, answer.text
        value: str = answer.json()["access_token"]
        return value

    def whoami(server: Server, token: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.get(f"{server.url}/v1/auth/whoami", headers=headers, timeout=10)

    def refused(servers: list[Server], token: str, why: str) -> None:
        for server in servers:
            answer = whoami(server, token)
            assert answer.status_code == 401, answer.text
            assert answer.json()["detail"] == why

    with serving_many(storage, tmp_path, 2) as servers:
        first, second = servers
        alices = [token(first, "alice"), token(second, "alice")]
        bobs = token(second, "bob")
        for server in servers:
            for each in [*alices, bobs]:
                assert whoami(server, each).status_code == 200

        done = auditlog("users", "passwd", "alice", *storage.flags, stdin=new_password + "\n")
        assert done.returncode == 0, done.stderr
        for each in alices:
            refused(servers, each, PASSWORD_CHANGED)
        assert login(first, "alice", password).status_code == 401
        renewed = token(first, "alice", new_password)
        for server in servers:
            assert whoami(server, renewed).status_code == 200
            assert whoami(server, bobs).status_code == 200

        done = auditlog("users", "remove", "alice", *storage.flags)
        assert done.returncode == 0, done.stderr
        for each in [*alices, renewed]:
            refused(servers, each, USER_REMOVED)
        for server in servers:
            assert whoami(server, bobs).status_code == 200
            assert login(server, "alice", new_password).status_code == 401

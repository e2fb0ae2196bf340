"""Against a real ``auditlog serve`` (uvicorn, its defaults): oversized request heads, a key
revoked by the command line between two requests, and the first version's README commands
run as written.

Every server runs on a free port of 127.0.0.1 and is stopped by its pid when the test ends
(``live_server.serving``). Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from live_server import Server, auditlog, create_key, serving

pytestmark = pytest.mark.slow

DOCS = Path(__file__).resolve().parents[2] / "docs"
TIMEOUT = 30.0
STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3}) ")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with serving(tmp_path / "data", tmp_path / "serve.log") as running:
        yield running


def exchange(server: Server, raw: bytes) -> int | None:
    """Send raw bytes on a new connection; the status of the answer, or ``None`` if the
    server closed the connection without one."""
    received = b""
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
        with contextlib.suppress(ConnectionError):
            sock.sendall(raw)
        with contextlib.suppress(ConnectionError):
            while chunk := sock.recv(65536):
                received += chunk
                if b"\r\n\r\n" in received:
                    break
    match = STATUS_LINE.match(received)
    assert match or not received, received[:200]
    return int(match.group(1)) if match else None


# -- oversized request heads ------------------------------------------------------------------


def test_oversized_heads_are_refused_never_served_nor_500(server: Server) -> None:
    big = b"x" * 100_000
    close = b"Connection: close\r\n"
    heads = {
        "a 100 KB header": b"GET /healthz HTTP/1.1\r\nHost: a\r\n" + close
        + b"X-Big: " + big + b"\r\n\r\n",
        "a 100 KB token": b"GET /v1/events HTTP/1.1\r\nHost: a\r\n" + close
        + b"Authorization: Bearer " + big + b"\r\n\r\n",
        "20,000 headers": b"GET /healthz HTTP/1.1\r\nHost: a\r\n" + close
        + b"".join(b"X-H%d: v\r\n" % i for i in range(20_000)) + b"\r\n",
        "a 100 KB URL": b"GET /healthz?a=" + big + b" HTTP/1.1\r\nHost: a\r\n" + close + b"\r\n",
        "a 100 KB path": b"GET /v1/events/" + big + b" HTTP/1.1\r\nHost: a\r\n" + close + b"\r\n",
        "a 10 MB header": b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Big: " + b"x" * 10_000_000
        + b"\r\n\r\n",
    }  # fmt: skip
    for name, raw in heads.items():
        status = exchange(server, raw)
        assert status is None or 400 <= status < 500, (name, status)
    # An ordinary large head (8 KB of header) is served, and so is everybody after all that.
    pad = b"X-Pad: " + b"p" * 8000 + b"\r\n"
    assert exchange(server, b"GET /healthz HTTP/1.1\r\nHost: a\r\n" + close + pad + b"\r\n") == 200
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        assert client.get("/healthz").status_code == 200
    assert "Traceback" not in server.log()


def test_a_body_over_the_limit_is_refused_before_it_is_sent(tmp_path: Path) -> None:
    data = tmp_path / "data"
    key = create_key(data)
    with serving(data, tmp_path / "serve.log") as running:
        head = (
            b"POST /v1/events HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + key.encode() + b"\r\nContent-Length: 17825792\r\n\r\n"
        )
        assert exchange(running, head) == 413  # 17 MiB declared, not a byte of it sent


# -- a key revoked between two requests ----------------------------------------------------------


def test_a_key_revoked_by_the_command_line_is_refused_from_the_next_request(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    key = create_key(data, "acme", "events:write,events:read")
    auditor = create_key(data, "acme", "events:read")
    key_id = key.split("_")[1]
    with (
        serving(data, tmp_path / "serve.log") as running,
        httpx.Client(base_url=running.url, timeout=TIMEOUT) as client,
    ):
        headers = {"Authorization": f"Bearer {key}"}
        assert client.get("/v1/auth/whoami", headers=headers).status_code == 200
        assert client.post("/v1/events", json={"type": "t"}, headers=headers).status_code == 201
        done = auditlog("keys", "revoke", key_id, "--data", str(data))
        assert done.returncode == 0, done.stderr
        for method, path in (("GET", "/v1/auth/whoami"), ("POST", "/v1/events")):
            response = client.request(method, path, json={"type": "t"}, headers=headers)
            assert response.status_code == 401, response.text
            assert "revoked" in response.json()["detail"]
        # The revocation is in the tenant's log, made by the operator who ran the command.
        page = client.get(
            "/v1/events",
            params={"type": "auditlog.key.revoked"},
            headers={"Authorization": f"Bearer {auditor}"},
        ).json()
        [revoked] = page["events"]
        assert revoked["data"]["key_id"] == key_id
        assert revoked["actor"]["type"] == "operator"
        assert revoked["actor"]["id"].startswith("cli:")


# -- the first version's README, as written -------------------------------------------------------


def readme_commands() -> list[str]:
    """The first version's README commands, as docs/api.md quotes them."""
    api = (DOCS / "api.md").read_text(encoding="utf-8")
    section = api.split("\n## The first version's routes\n", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block is not None
    commands = [line for line in block.group(1).splitlines() if line.startswith("curl ")]
    assert len(commands) == 6, commands
    return commands


def send_as_curl_would(argv: list[str]) -> str:
    """What ``curl ARGV`` prints, with httpx: for a machine without curl."""
    method, url, headers, data = "GET", "", {}, None
    args = iter(argv[1:])
    for arg in args:
        if arg in ("--request", "-X"):
            method = next(args)
        elif arg == "--url":
            url = next(args)
        elif arg in ("--header", "-H"):
            name, _, value = next(args).partition(":")
            headers[name.strip()] = value.strip()
        elif arg in ("-d", "--data"):
            data = next(args).encode()
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
            method = "POST" if method == "GET" else method
        else:
            raise AssertionError(f"curl option {arg!r} is not understood here")
    response = httpx.request(method, url, headers=headers, content=data, timeout=TIMEOUT)
    return response.text


def run_as_written(command: str, replacements: dict[str, str], tool: str) -> str:
    """One README command, its placeholders filled in, run with ``tool``; what it prints."""
    argv = shlex.split(command)
    for old, new in replacements.items():
        argv = [arg.replace(old, new) for arg in argv]
    if tool == "httpx":
        return send_as_curl_would(argv)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert done.returncode == 0, (argv, done.stderr)
    return done.stdout


@pytest.mark.parametrize(
    "tool",
    [
        pytest.param(
            "curl",
            marks=pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed"),
        ),
        "httpx",  # the same requests, for machines without curl
    ],
)
def test_the_first_versions_readme_commands_against_a_real_server(
    tmp_path: Path, tool: str
) -> None:
    data = tmp_path / "data"
    password = "first version readme 42"
    added = auditlog(
        "users", "add", "alice", "--tenant", "acme", "--scopes", "events:read,events:write",
        "--data", str(data), stdin=password + "\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    flags = ("--log-level", "debug", "--access-log")
    with serving(data, tmp_path / "serve.log", *flags) as running:
        ping, login, auth, post, everything, query = readme_commands()
        filled = {"http://localhost:8000": running.url, "<password>": password}
        assert run_as_written(ping, filled, tool) == '"pong!"'
        answer: dict[str, Any] = json.loads(run_as_written(login, filled, tool))
        assert list(answer) == ["token"]
        token = answer["token"]
        filled["<BearerToken>"] = token
        assert run_as_written(auth, filled, tool) == "JWT is valid"
        submitted = json.loads(run_as_written(post, filled, tool))
        assert submitted == {"status": 200, "message": "Event submitted"}
        events = json.loads(run_as_written(everything, filled, tool))
        # The service recorded the user's creation and the login before the event; the
        # README's event comes next.
        assert [e["event_type"] for e in events] == [
            "auditlog.user.created",
            "auditlog.login.succeeded",
            "account creation",
        ]
        event = events[2]
        assert event["user_id"] == "alice"
        assert event["event_details"] == {
            "message": "Thomas created an account.",
            "Interest": ["Sports", "Cooking", "Movies"],
            "location": {"city": "Seattle", "country": "USA"},
        }
        assert json.loads(run_as_written(query, filled, tool)) == [event]
        log = running.log()
    assert "Traceback" not in log
    assert "GET /event" in log  # the access log was on
    for secret in (password, token, token.rsplit(".", 1)[1]):
        assert secret not in log

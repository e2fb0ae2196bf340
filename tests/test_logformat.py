"""``auditlog.logformat``: the JSON formatter on its own, and ``auditlog serve --log-format
json``'s log read back line by line from a real server, with the request's fields on every line
written while serving it, an ``X-Request-ID`` on every answer (a live stream's too), and no
secret anywhere after requests that carried them."""

from __future__ import annotations

import base64
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any

import httpx

from auditlog.logformat import JsonFormatter
from auditlog.requestcontext import CURRENT, RequestContext
from live_server import auditlog, child_pids, create_key, serving

PASSWORD = "a password for the log test"
TIME = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$"


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("auditlog.test", logging.WARNING, __file__, 1, message, args, None)
    made.__dict__.update(extra)
    return made


def test_a_line_outside_a_request_has_the_four_fields() -> None:
    line = json.loads(JsonFormatter().format(record("%s of %d", "one", 2)))
    assert set(line) == {"time", "level", "logger", "message"}
    assert line["message"] == "one of 2"
    assert line["level"] == "WARNING"
    assert line["logger"] == "auditlog.test"
    assert re.match(TIME, line["time"])


def test_a_line_inside_a_request_has_its_fields_and_a_traceback() -> None:
    context = RequestContext("rid-1", "198.51.100.1", "GET", "/v1/events/{id}", "K1")
    token = CURRENT.set(context)
    try:
        try:
            raise ValueError("boom\nsecond line")
        except ValueError:
            failed = record("failed", status=500, duration_ms=1.5)
            failed.exc_info = sys.exc_info()
        text = JsonFormatter().format(failed)
    finally:
        CURRENT.reset(token)
    assert "\n" not in text  # one line, whatever the message or traceback holds
    line = json.loads(text)
    assert {k: line[k] for k in ("request_id", "client", "method", "route", "credential_id")} == {
        "request_id": "rid-1",
        "client": "198.51.100.1",
        "method": "GET",
        "route": "/v1/events/{id}",
        "credential_id": "K1",
    }
    assert (line["status"], line["duration_ms"]) == (500, 1.5)
    assert "ValueError: boom" in line["exception"]


def test_json_log_lines_carry_the_request_and_no_secret(tmp_path: Path) -> None:
    data = tmp_path / "data"
    added = auditlog(
        "users", "add", "alice", "--tenant", "acme", "--scopes", "events:read", "--data", str(data),
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    key = create_key(data, "acme", "events:write,events:read")
    key_id = key.split("_")[1]
    flags = ("--log-format", "json", "--access-log", "--log-level", "info")
    with serving(data, tmp_path / "serve.log", *flags) as server:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            auth = {"Authorization": f"Bearer {key}"}
            made = http.post(
                "/v1/events",
                json={"id": "e1", "type": "t"},
                headers={**auth, "X-Request-ID": "w-1"},
            )
            assert made.status_code == 201
            assert made.headers["x-request-id"] == "w-1"
            read = http.get("/v1/events/e1", headers={**auth, "X-Request-ID": "r-1"})
            assert read.status_code == 200
            wrong = http.post(
                "/v1/auth/token", json={"username": "alice", "password": PASSWORD + "x"}
            )
            assert wrong.status_code == 401
            token = http.post("/v1/auth/token", json={"username": "alice", "password": PASSWORD})
            assert token.status_code == 200
            jwt = token.json()["access_token"]
            whoami = http.get("/v1/auth/whoami", headers={"Authorization": f"Bearer {jwt}"})
            assert whoami.status_code == 200
            forged = http.get("/v1/events", headers={"Authorization": f"Bearer {key}x"})
            assert forged.status_code == 401
            # A live stream's answer carries its id before its first event.
            with http.stream(
                "GET", "/v1/events/stream", headers={**auth, "X-Request-ID": "s-1"}
            ) as live:
                assert live.status_code == 200
                assert live.headers["x-request-id"] == "s-1"
            # The search indexer, a child process, writes its lines as JSON too.
            [indexer] = child_pids(server.process.pid)
            argv = Path(f"/proc/{indexer}/cmdline").read_bytes().split(b"\0")
            assert argv[argv.index(b"--log-format") + 1] == b"json"
            assert server.terminate() == 0
        lines = server.log().splitlines()

    parsed: list[dict[str, Any]] = [json.loads(line) for line in lines if line.strip()]
    assert len(parsed) == len([line for line in lines if line.strip()]), "a line that is not JSON"
    for line in parsed:
        assert {"time", "level", "logger", "message"} <= set(line), line
        assert re.match(TIME, line["time"]), line
        assert line["level"] in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
    loggers = {line["logger"] for line in parsed}
    assert "uvicorn.error" in loggers  # uvicorn's own lines are JSON too
    access = {line["request_id"]: line for line in parsed if line["logger"] == "auditlog.access"}
    expected = {
        "method": "POST",
        "route": "/v1/events",
        "status": 201,
        "client": "127.0.0.1",
        "credential_id": key_id,
        "level": "INFO",
    }
    assert {k: access["w-1"][k] for k in expected} == expected
    assert isinstance(access["w-1"]["duration_ms"], float)
    assert access["r-1"]["route"] == "/v1/events/{id}"  # the pattern, not the path
    assert access["r-1"]["credential_id"] == key_id
    assert access["s-1"]["route"] == "/v1/events/stream"
    by_status = {(line["route"], line["status"]) for line in access.values()}
    assert ("/v1/auth/token", 401) in by_status
    assert ("/v1/events", 401) in by_status
    # The failed login's warning was written while serving it: it carries the request's id.
    [warning] = [
        line for line in parsed if line["logger"] == "auditlog.login" and line["level"] == "WARNING"
    ]
    assert warning["request_id"] == wrong.headers["x-request-id"]
    assert warning["route"] == "/v1/auth/token"
    assert access[wrong.headers["x-request-id"]]["status"] == 401
    # A login token appears by its jti, which is public (the self-audit records show it).
    claims = jwt.split(".")[1]
    jti = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))["jti"]
    assert access[whoami.headers["x-request-id"]]["credential_id"] == jti

    text = "\n".join(lines)
    # alk_<key id>_<secret>: the secret is base64url, which may hold "_" itself.
    secrets = [key, key.split("_", 2)[2], PASSWORD, jwt, jwt.split(".")[2], "Bearer"]
    for secret in secrets:
        assert secret not in text, secret

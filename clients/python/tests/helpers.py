"""Small things the client's tests share."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
from auditlog_client import Client

WAIT = 60.0  # seconds: the bound of every wait in these tests


def eventually(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Wait (bounded) until ``condition()`` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.01)


def stored(url: str, token: str, **filters: Any) -> list[dict[str, Any]]:
    """Every event of the token's tenant matching ``filters``, in seq order, read with plain
    httpx (not the client under test)."""
    found: list[dict[str, Any]] = []
    params: dict[str, str] = {"order": "asc", "limit": "1000", **filters}
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as http:
        while True:
            page = http.get("/v1/events", params=params)
            assert page.status_code == 200, page.text
            body = page.json()
            found.extend(e for e in body["events"] if not e["type"].startswith("auditlog."))
            if body["next_cursor"] is None:
                return found
            params["cursor"] = body["next_cursor"]


def pause_with(client: Client, pause: Callable[[float], bool]) -> None:
    """Make the background sender wait through ``pause`` between attempts (set before the
    first ``log``: the sender thread takes it when it starts)."""
    client._sender._pause = pause  # type: ignore[method-assign]

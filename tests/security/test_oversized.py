"""Oversized bodies on every route that reads one, declared or streamed: 413 before they are
held whole, never a 5xx. (Oversized heads need a real server: see test_live.py.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest

from auditlog.config import Settings
from auditlog.server.app import AuditlogApp
from server.api import Api, problem
from server.conftest import QUIET, MakeApi
from server.logins import add_user

pytestmark = pytest.mark.anyio

LIMIT = 4096
#: The routes that read a body, and the largest body each takes.
BODY_ROUTES = {
    "/v1/events": LIMIT,
    "/event": LIMIT,
    "/v1/auth/token": 8192,  # a login body is two short strings
    "/login": 8192,
    "/v1/streams": 64 * 1024,  # a log stream's definition
    "/v1/viewer-tokens": 64 * 1024,  # a viewer token's definition
    "/v1/retention": 8192,  # a retention policy: one short field
}
#: The routes of BODY_ROUTES taken by another method than POST.
METHODS = {"/v1/retention": "PUT"}
#: Routes taken by POST that read no body: whatever is sent is left unread.
NO_BODY = {"/v1/viewer-tokens/exchange"}


@pytest.fixture
async def api(make_api: MakeApi) -> Api:
    """A key that may use every route that reads a body (``/v1/streams`` and
    ``/v1/viewer-tokens`` need ``admin``)."""
    return await make_api("acme", ("events:write", "events:read", "admin"))


@pytest.fixture
def settings() -> Settings:
    return replace(QUIET, max_body_bytes=LIMIT)


async def test_the_table_names_every_route_that_reads_a_body(app: AuditlogApp) -> None:
    posts = {route.pattern for route in app.router.routes if route.method in ("POST", "PUT")}
    assert posts == set(BODY_ROUTES) | NO_BODY


async def streamed(size: int, chunk: int = 1000) -> AsyncIterator[bytes]:
    """A body of ``size`` bytes sent in chunks, without a Content-Length."""
    sent = 0
    while sent < size:
        part = min(chunk, size - sent)
        yield b"[" + b" " * (part - 2) + b"]" if part >= 2 else b" " * part
        sent += part


@pytest.mark.parametrize("path", BODY_ROUTES)
async def test_a_body_over_the_limit_is_413_declared_or_streamed(
    app: AuditlogApp, client: httpx.AsyncClient, api: Api, path: str
) -> None:
    await add_user(app)
    limit = BODY_ROUTES[path]
    headers = {**api.headers, "Content-Type": "application/json"}
    declared = await client.request(
        METHODS.get(path, "POST"), path, content=b" " * (limit + 1), headers=headers
    )
    assert "more than the limit" in problem(declared, 413)["detail"]
    lying = await client.request(
        METHODS.get(path, "POST"),
        path,
        content=b" " * 10,
        headers={**headers, "Content-Length": str(10**12)},
    )
    problem(lying, 413)
    chunked = await client.request(
        METHODS.get(path, "POST"), path, content=streamed(limit * 50), headers=headers
    )
    problem(chunked, 413)
    huge = await client.request(
        METHODS.get(path, "POST"),
        path,
        content=streamed(64 * 1024 * 1024, 64 * 1024),
        headers=headers,
    )
    problem(huge, 413)
    assert await api.everything() == []


@pytest.mark.parametrize("path", BODY_ROUTES)
@pytest.mark.parametrize(
    "length", ["", "-1", "1e3", "0x10", "+12", "1_0", "\u0661\u0662".encode(), "9" * 400]
)
async def test_a_content_length_that_is_not_a_number_is_400_or_413(
    client: httpx.AsyncClient, api: Api, path: str, length: str | bytes
) -> None:
    headers: dict[str, str | bytes] = {
        **api.headers,
        "Content-Type": "application/json",
        "Content-Length": length,
    }
    response = await client.request(METHODS.get(path, "POST"), path, content=b"{}", headers=headers)
    assert response.status_code in (400, 413), response.text
    problem(response, response.status_code)


async def test_an_event_over_its_limit_inside_a_body_within_the_limit(
    client: httpx.AsyncClient, api: Api
) -> None:
    nested = b'{"type": "t", "data": ' + b'{"x":' * 600 + b"{}" + b"}" * 600 + b"}"
    assert len(nested) < LIMIT
    problem(await api.post_raw(nested, "application/json"), 422)
    wide = b"[" + b",".join([b'{"type":"t"}'] * 300) + b"]"
    assert len(wide) < LIMIT
    assert (await api.post_raw(wide, "application/json")).status_code == 201

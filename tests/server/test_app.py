"""The application as a whole: routing (404, 405 with Allow, HEAD), the shape of every error,
and reading a request body that streams in (capped while it is read), at the ASGI level."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import anyio
import httpx
import orjson
import pytest

from auditlog.server.app import AuditlogApp
from server.api import Api, problem
from server.conftest import QUIET, ControlledStore

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    "path", ["/", "/v1", "/v1/", "/v1/events/", "/v1/events/a/b", "/v2/events", "/healthz/x"]
)
async def test_an_unknown_path_is_404(client: httpx.AsyncClient, path: str) -> None:
    # No credential is asked for a path that does not exist.
    doc = problem(await client.get(path), 404)
    assert doc["type"].endswith(":not-found")


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/v1/events", "GET, HEAD, POST"),
        ("PUT", "/v1/events", "GET, HEAD, POST"),
        ("PATCH", "/v1/events/e1", "GET, HEAD"),
        ("POST", "/v1/events/e1", "GET, HEAD"),
        ("OPTIONS", "/v1/events/e1", "GET, HEAD"),
        ("POST", "/v1/auth/whoami", "GET, HEAD"),
        ("POST", "/healthz", "GET, HEAD"),
        ("DELETE", "/readyz", "GET, HEAD"),
        ("PUT", "/metrics", "GET, HEAD"),
        ("POST", "/openapi.json", "GET, HEAD"),
    ],
)
async def test_a_known_path_with_another_method_is_405_with_allow(
    client: httpx.AsyncClient, api: Api, method: str, path: str, allow: str
) -> None:
    response = await client.request(method, path, headers=api.headers)
    doc = problem(response, 405)
    assert response.headers["allow"] == allow
    assert method in doc["detail"]


@pytest.mark.parametrize(
    "path",
    [
        "/healthz",
        "/readyz",
        "/openapi.json",
        "/v1/events/e1",
        "/v1/events?type=t",
        "/v1/auth/whoami",
        "/v1/events/nope",
    ],
)
async def test_head_answers_like_get_without_a_body(
    client: httpx.AsyncClient, api: Api, path: str
) -> None:
    await api.create({"id": "e1", "type": "t"})
    get = await client.get(path, headers=api.headers)
    head = await client.head(path, headers=api.headers)
    assert head.status_code == get.status_code
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    assert head.headers["content-length"] == str(len(get.content))


async def test_head_on_metrics(client: httpx.AsyncClient) -> None:
    head = await client.head("/metrics")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"].startswith("text/plain")


async def test_head_needs_the_credential_get_needs(client: httpx.AsyncClient) -> None:
    head = await client.head("/v1/events")
    assert head.status_code == 401
    assert head.headers["www-authenticate"].startswith("Bearer")
    assert head.content == b""


# -- at the ASGI level ------------------------------------------------------------------------


class RawExchange:
    """One request sent straight to the ASGI application, with a body in chunks."""

    def __init__(self, chunks: list[bytes], disconnect_after: int | None = None) -> None:
        self.chunks = chunks
        self.disconnect_after = disconnect_after
        self.received = 0  # how many messages the application asked for
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        self.received += 1
        index = self.received - 1
        if index >= len(self.chunks) or (
            self.disconnect_after is not None and index >= self.disconnect_after
        ):
            return {"type": "http.disconnect"}
        return {
            "type": "http.request",
            "body": self.chunks[index],
            "more_body": index < len(self.chunks) - 1,
        }

    async def send(self, message: Any) -> None:
        self.sent.append(dict(message))

    async def post(
        self, app: AuditlogApp, token: str, headers: Sequence[tuple[bytes, bytes]] = ()
    ) -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/events",
            "raw_path": b"/v1/events",
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"host", b"auditlog.test"),
                (b"authorization", f"Bearer {token}".encode()),
                (b"content-type", b"application/json"),
                *headers,
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
        }
        await app(scope, self.receive, self.send)

    @property
    def status(self) -> int:
        assert self.sent, "no answer was sent"
        assert self.sent[0]["type"] == "http.response.start"
        status: int = self.sent[0]["status"]
        return status

    @property
    def headers(self) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in self.sent[0]["headers"]}

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent[1:])


def streamed(body: bytes, chunk: int) -> list[bytes]:
    return [body[i : i + chunk] for i in range(0, len(body), chunk)]


@pytest.mark.parametrize("settings", [replace(QUIET, max_body_bytes=4096)], ids=["body-4KiB"])
async def test_a_streamed_body_over_the_limit_is_refused_while_it_is_read(
    app: AuditlogApp, api: Api
) -> None:
    # No Content-Length: the body arrives in 1 KiB chunks, 1 MiB in all.
    exchange = RawExchange([b" " * 1024] * 1024)
    await exchange.post(app, api.token)
    assert exchange.status == 413
    assert exchange.headers["content-type"] == "application/problem+json"
    assert orjson.loads(exchange.body)["status"] == 413
    # The application stopped reading soon after the limit, not at the end of the body.
    assert exchange.received <= 4096 // 1024 + 1
    assert await api.everything() == []


@pytest.mark.parametrize("settings", [replace(QUIET, max_body_bytes=4096)], ids=["body-4KiB"])
async def test_a_declared_length_over_the_limit_is_refused_before_reading(
    app: AuditlogApp, api: Api
) -> None:
    exchange = RawExchange([b" " * 1024] * 8)
    await exchange.post(app, api.token, [(b"content-length", b"8192")])
    assert exchange.status == 413
    assert exchange.received == 0


@pytest.mark.parametrize("settings", [replace(QUIET, max_body_bytes=4096)], ids=["body-4KiB"])
async def test_a_streamed_body_within_the_limit_is_read_whole(app: AuditlogApp, api: Api) -> None:
    body = orjson.dumps([{"id": f"s{i}", "type": "streamed"} for i in range(100)])
    assert 2048 < len(body) <= 4096
    exchange = RawExchange(streamed(body, 100))
    await exchange.post(app, api.token)
    assert exchange.status == 201, exchange.body
    assert exchange.received == len(exchange.chunks)
    assert len(orjson.loads(exchange.body)["events"]) == 100
    assert [e["id"] for e in await api.everything()] == [f"s{i}" for i in range(100)]


async def test_a_client_that_leaves_mid_body_gets_no_answer_and_stores_nothing(
    app: AuditlogApp, api: Api
) -> None:
    body = orjson.dumps([{"type": "t"}] * 50)
    exchange = RawExchange(streamed(body, 64), disconnect_after=3)
    await exchange.post(app, api.token)
    assert exchange.sent == []
    assert await api.everything() == []


BUDGET = replace(QUIET, max_body_bytes=4096, max_bodies_bytes=4096)


@pytest.mark.parametrize("settings", [BUDGET], ids=["bodies-4KiB"])
@pytest.mark.usefixtures("expect_unavailable")
async def test_a_declared_length_past_the_bodies_budget_is_refused_before_reading(
    app: AuditlogApp, api: Api, store: ControlledStore
) -> None:
    store.hold_appends()
    held = orjson.dumps({"id": "held", "type": "t", "data": {"pad": "x" * 2000}})
    async with anyio.create_task_group() as tg:
        tg.start_soon(RawExchange([held]).post, app, api.token)
        with anyio.fail_after(10):
            await store.appending.wait()
            # 4,096 bytes fit the limit of one body, not what the budget has left.
            exchange = RawExchange([b" " * 1024] * 4)
            await exchange.post(app, api.token, [(b"content-length", b"4096")])
        assert exchange.status == 503
        assert exchange.headers["retry-after"] == "1"
        assert exchange.received == 0
        store.release_appends()
    assert [e["id"] for e in await api.everything()] == ["held"]


@pytest.mark.parametrize("settings", [BUDGET], ids=["bodies-4KiB"])
async def test_a_client_that_leaves_mid_body_gives_its_bytes_back(
    app: AuditlogApp, api: Api
) -> None:
    body = orjson.dumps([{"id": f"s{i}", "type": "streamed"} for i in range(100)])
    for _ in range(3):
        gone = RawExchange(streamed(body, 1000), disconnect_after=3)
        await gone.post(app, api.token)
        assert gone.sent == []
        declared = RawExchange([b" " * 4096], disconnect_after=0)
        await declared.post(app, api.token, [(b"content-length", b"4096")])
        assert declared.sent == []
    # Had either kept its bytes, a body of the whole budget would be refused.
    exchange = RawExchange(streamed(body, 1000))
    await exchange.post(app, api.token, [(b"content-length", str(len(body)).encode())])
    assert exchange.status == 201, exchange.body
    assert len(await api.everything()) == 100


@pytest.mark.parametrize(
    "length",
    [
        b"abc",
        b"-1",
        b"1.5",
        b" ",
        b"0x10",
        b"\xb2",  # a Latin-1 superscript two: str.isdigit() holds for it, int() refuses it
    ],
    ids=repr,
)
async def test_a_malformed_content_length_is_400(app: AuditlogApp, api: Api, length: bytes) -> None:
    exchange = RawExchange([b'{"type": "t"}'])
    await exchange.post(app, api.token, [(b"content-length", length)])
    assert exchange.status == 400
    assert orjson.loads(exchange.body)["status"] == 400

"""The bound on the request head (``auditlog.server.headlimit``), fed bytes as a socket would.

The protocol runs on a fake transport that keeps what is written; the application behind it
answers 200 to whatever reaches it, and counts the requests that did. tests/security/test_live.py
sends the same heads to a real server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import uvicorn
from uvicorn.server import ServerState

from auditlog.server.headlimit import MAX_HEAD_BYTES, BoundedHttpToolsProtocol

pytestmark = pytest.mark.anyio


class Transport(asyncio.Transport):
    """A socket's transport that keeps what is written to it."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("192.0.2.1", 40000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class Connection:
    """One connection to the bounded protocol, and the requests that reached the app."""

    def __init__(self) -> None:
        self.served: list[dict[str, Any]] = []

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            self.served.append(scope)
            while (await receive()).get("more_body"):
                pass
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        config = uvicorn.Config(app, http=BoundedHttpToolsProtocol, lifespan="off")
        config.load()
        self.transport = Transport()
        self.protocol = BoundedHttpToolsProtocol(config, ServerState(), {})
        self.protocol.connection_made(self.transport)

    async def feed(self, *reads: bytes) -> None:
        for data in reads:
            self.protocol.data_received(data)
        for _ in range(20):  # let the application's task answer
            await asyncio.sleep(0)

    @property
    def statuses(self) -> list[int]:
        return [int(line[9:12]) for line in bytes(self.transport.written).split(b"\r\n")
                if line.startswith(b"HTTP/1.1 ")]  # fmt: skip


def head(size: int, path: bytes = b"/") -> bytes:
    """A GET whose request line and headers are about ``size`` bytes."""
    start = b"GET " + path + b" HTTP/1.1\r\nHost: a\r\n"
    pad = max(0, size - len(start) - len(b"X-Pad: \r\n\r\n"))
    return start + b"X-Pad: " + b"p" * pad + b"\r\n\r\n"


def chunks(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def test_a_head_within_the_limit_is_served() -> None:
    connection = Connection()
    await connection.feed(head(MAX_HEAD_BYTES - 100))
    assert connection.statuses == [200]
    assert len(connection.served) == 1


@pytest.mark.parametrize("reads", [1, 1000], ids=["in-one-read", "in-reads-of-1000-bytes"])
async def test_a_head_over_the_limit_is_431_and_the_connection_closed(reads: int) -> None:
    connection = Connection()
    data = head(MAX_HEAD_BYTES + 100)
    await connection.feed(*(chunks(data, reads if reads > 1 else len(data))))
    assert connection.statuses == [431]
    assert connection.served == []
    assert connection.transport.closed
    answer = bytes(connection.transport.written)
    head_part, _, body = answer.partition(b"\r\n\r\n")
    assert b"content-type: application/problem+json" in head_part
    assert b"connection: close" in head_part
    assert orjson.loads(body)["status"] == 431


async def test_many_small_headers_count_together() -> None:
    connection = Connection()
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(MAX_HEAD_BYTES // 8))
    await connection.feed(b"GET / HTTP/1.1\r\nHost: a\r\n" + many + b"\r\n")
    assert connection.statuses == [431]


async def test_a_long_url_counts() -> None:
    connection = Connection()
    await connection.feed(head(200, b"/?q=" + b"u" * MAX_HEAD_BYTES))
    assert connection.statuses == [431]


async def test_a_head_that_never_ends_is_cut_off_once_past_the_limit() -> None:
    connection = Connection()
    connection.protocol.data_received(b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ")
    sent = 0
    while sent <= MAX_HEAD_BYTES - 2000:
        connection.protocol.data_received(b"s" * 1000)
        sent += 1000
    assert not connection.transport.closed  # still within the limit
    for _ in range(3):
        connection.protocol.data_received(b"s" * 1000)
    assert connection.transport.closed
    assert connection.statuses == [431]


async def test_bodies_do_not_count_and_each_request_has_its_own_limit() -> None:
    connection = Connection()
    body = b"b" * (4 * MAX_HEAD_BYTES)
    post = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(body)
    await connection.feed(post, *chunks(body, 65536))
    for _ in range(3):  # keep-alive: heads near the limit, one after another
        await connection.feed(head(MAX_HEAD_BYTES - 100))
    assert connection.statuses == [200] * 4
    assert not connection.transport.closed

"""Writes gathered per turn of the event loop (``auditlog.server.coalesce``)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from auditlog.server.coalesce import CoalescingTransport

pytestmark = pytest.mark.anyio


class Recorder(asyncio.Transport):
    """A socket's transport that records each write and what else was asked of it."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.calls: list[str] = []
        self.closing = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.calls.append("close")
        self.closing = True

    def abort(self) -> None:
        self.calls.append("abort")
        self.closing = True

    def write_eof(self) -> None:
        self.calls.append("write_eof")

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("192.0.2.1", 40000)}.get(name, default)

    def pause_reading(self) -> None:
        self.calls.append("pause_reading")


async def turn() -> None:
    await asyncio.sleep(0)
    await asyncio.sleep(0)


async def test_the_writes_of_one_turn_leave_as_one_in_order() -> None:
    real = Recorder()
    transport = CoalescingTransport(real, asyncio.get_running_loop())
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(b"")
    transport.write(bytearray(b"body"))
    assert real.writes == []
    await turn()
    assert real.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody"]
    transport.writelines([b"a", b"b"])
    await turn()
    transport.write(b"c")
    await turn()
    assert real.writes[1:] == [b"ab", b"c"]


async def test_close_and_eof_send_what_is_gathered_first_and_abort_drops_it() -> None:
    real = Recorder()
    transport = CoalescingTransport(real, asyncio.get_running_loop())
    transport.write(b"last words")
    transport.write_eof()
    assert real.writes == [b"last words"]
    assert real.calls == ["write_eof"]
    transport.write(b"bye")
    transport.close()
    assert real.writes[-1] == b"bye"
    assert real.calls[-1] == "close"
    await turn()
    assert len(real.writes) == 2  # nothing sent twice
    other = Recorder()
    dropped = CoalescingTransport(other, asyncio.get_running_loop())
    dropped.write(b"never")
    dropped.abort()
    await turn()
    assert other.writes == []
    assert other.calls == ["abort"]


async def test_nothing_is_written_to_a_closed_connection_and_the_rest_is_passed_on() -> None:
    real = Recorder()
    transport = CoalescingTransport(real, asyncio.get_running_loop())
    transport.write(b"late")
    real.closing = True  # the peer went away meanwhile
    await turn()
    assert real.writes == []
    assert transport.is_closing()
    assert transport.get_extra_info("peername") == ("192.0.2.1", 40000)
    transport.pause_reading()
    assert real.calls == ["pause_reading"]


async def test_a_served_response_arrives_whole() -> None:
    """Through ``auditlog serve``'s protocol on a real socket: keep-alive requests each get
    their whole answer."""
    import uvicorn

    from auditlog.server.headlimit import BoundedHttpToolsProtocol

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = scope["path"].encode() * 100
        headers = [(b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, http=BoundedHttpToolsProtocol, lifespan="off"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for path in ("/a", "/bb", "/ccc"):
                response = await client.get(path)
                assert response.status_code == 200
                assert response.content == path.encode() * 100
    finally:
        server.should_exit = True
        await task

"""ASGI types and the Request/Response pair the handlers see.

The request body is read on demand and capped while it is read: a body whose
``Content-Length`` or running size passes the limit is refused with 413 before it is buffered
whole. The bodies of all requests together are capped as well (``BodyBudget``): a body that
would pass that cap is refused with 503 and ``Retry-After`` before it is read, so a crowd of
clients sending the largest bodies at once cannot take the server's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any, Protocol
from urllib.parse import parse_qsl

import orjson

from auditlog.errors import BadRequest, PayloadTooLarge, Unavailable

log = logging.getLogger("auditlog.server")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
#: The scope extension through which ``auditlog serve`` lets a response drop its connection:
#: ``scope["extensions"][DROP_CONNECTION]["drop"]()``.
DROP_CONNECTION = "auditlog.drop_connection"


class ClientDisconnected(Exception):
    """The client closed the connection before its request was read."""


class BodyBudget:
    """The bytes of request bodies the server holds at once, across all requests.

    A request reserves its body's bytes before reading them (all of a declared
    ``Content-Length`` at once, else each chunk as it comes) and gives them back when its
    response has been sent. A reservation that would pass the limit is refused with 503 and
    ``Retry-After``: the server is busy, and the same request a moment later will do.
    """

    __slots__ = ("limit", "on_refusal", "retry_after", "used")

    def __init__(
        self, limit: int, retry_after: int = 1, on_refusal: Callable[[], None] | None = None
    ) -> None:
        self.limit = limit
        self.retry_after = retry_after
        self.on_refusal = on_refusal
        self.used = 0

    def reserve(self, size: int) -> None:
        if self.used + size > self.limit:
            if self.on_refusal is not None:
                self.on_refusal()
            raise Unavailable(
                "the server is holding as many request bodies as it may; retry shortly",
                self.retry_after,
            )
        self.used += size

    def release(self, size: int) -> None:
        self.used -= size


class Request:
    """One HTTP request: method, path, headers, query parameters and a capped body."""

    __slots__ = (
        "_body",
        "_budget",
        "_headers",
        "_reserved",
        "client",
        "path_params",
        "receive",
        "scope",
    )

    def __init__(self, scope: Scope, receive: Receive, budget: BodyBudget | None = None) -> None:
        self.scope = scope
        self.receive = receive
        self.path_params: dict[str, str] = {}
        peer = scope.get("client")
        #: The client's address: the TCP peer's, or the one trusted proxies forwarded.
        self.client: str = str(peer[0]) if peer else "-"
        self._headers: dict[str, str] | None = None
        self._body: bytes | None = None
        self._budget = budget
        self._reserved = 0

    def release(self) -> None:
        """Give the body's bytes back to the budget; called once the response is sent."""
        if self._budget is not None and self._reserved:
            self._budget.release(self._reserved)
            self._reserved = 0

    def _reserve(self, size: int) -> None:
        if self._budget is not None and size > 0:
            self._budget.reserve(size)
            self._reserved += size

    @property
    def method(self) -> str:
        method: str = self.scope["method"]
        return method

    @property
    def path(self) -> str:
        path: str = self.scope["path"]
        return path

    @property
    def headers(self) -> dict[str, str]:
        """Headers by lower-case name; repeated headers joined with ``, ``."""
        if self._headers is None:
            headers: dict[str, str] = {}
            for raw_name, raw_value in self.scope["headers"]:
                name = raw_name.decode("latin-1").lower()
                value = raw_value.decode("latin-1")
                headers[name] = f"{headers[name]}, {value}" if name in headers else value
            self._headers = headers
        return self._headers

    def query_params(self) -> list[tuple[str, str]]:
        """The query string as (name, value) pairs in order; 400 if it is not UTF-8."""
        raw: bytes = self.scope.get("query_string", b"")
        if not raw:
            return []  # most writes carry none
        try:
            text = raw.decode("ascii")
            return parse_qsl(text, keep_blank_values=True, errors="strict")
        except UnicodeDecodeError:
            raise BadRequest("the query string is not valid percent-encoded UTF-8") from None

    async def body(self, limit: int) -> bytes:
        """The whole body, refusing (413) one larger than ``limit`` bytes as soon as it shows."""
        if self._body is not None:
            return self._body
        declared = self.headers.get("content-length")
        if declared is not None:
            if not (declared.isascii() and declared.isdigit()):
                raise BadRequest("Content-Length is not a number")
            if int(declared) > limit:
                raise PayloadTooLarge(
                    f"the body is {declared} bytes, more than the limit of {limit}"
                )
            self._reserve(int(declared))
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"the body is more than the limit of {limit} bytes")
            if size > self._reserved:  # no (or a false) Content-Length: reserve as it comes
                self._reserve(size - self._reserved)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        self._body = b"".join(chunks)
        return self._body

    async def json(self, limit: int) -> Any:
        """The body parsed as JSON; 400 if it is not."""
        try:
            return orjson.loads(await self.body(limit))
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"the request body is not valid JSON: {exc}") from None


class Response:
    """A complete response: status, headers and body bytes."""

    __slots__ = ("body", "headers", "status")

    def __init__(
        self,
        status: int,
        body: bytes = b"",
        content_type: str = "application/json",
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.headers = [(b"content-type", content_type.encode("latin-1"))]
        if headers:
            self.headers.extend(headers)

    @classmethod
    def json(
        cls, status: int, value: Any, headers: list[tuple[bytes, bytes]] | None = None
    ) -> Response:
        return cls(status, orjson.dumps(value), headers=headers)

    async def send(self, send: Send, head_only: bool = False) -> None:
        headers = [*self.headers, (b"content-length", str(len(self.body)).encode())]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if head_only else self.body})


class ByteChunks(Protocol):
    """What a streamed body is read from: an async iterator of bytes that can be closed."""

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def __anext__(self) -> bytes: ...

    async def aclose(self) -> None: ...


class StreamingResponse:
    """A response whose body is sent chunk by chunk as ``chunks`` yields it (HTTP chunked).

    The next chunk is read only once the previous one was handed to the server, so a slow
    client slows the reading instead of making the server hold more. When the client goes
    away (``http.disconnect`` on ``receive``), reading stops at once, even while waiting for
    the next chunk. ``abort``, when set while a send waits on a client that does not read,
    gives that send ``grace`` seconds more, then ends the response by dropping the connection
    (``_drop_connection``; pass ``scope``). ``chunks`` is always closed, also when the server cancels the
    response while a chunk is in the making (then as soon as that chunk's task has ended).
    """

    __slots__ = (
        "_producing",
        "abort",
        "chunks",
        "drop",
        "grace",
        "headers",
        "receive",
        "status",
    )

    def __init__(
        self,
        status: int,
        chunks: ByteChunks,
        content_type: str,
        receive: Receive,
        headers: list[tuple[bytes, bytes]] | None = None,
        abort: asyncio.Event | None = None,
        grace: float = 5.0,
        scope: Scope | None = None,
    ) -> None:
        self.status = status
        #: Drops the connection at once (the server's ``DROP_CONNECTION``), if it offers it.
        extension = (scope or {}).get("extensions", {}).get(DROP_CONNECTION, {})
        self.drop: Callable[[], None] | None = extension.get("drop")
        self.chunks = chunks
        self.receive = receive
        self.abort = abort
        self.grace = grace
        self.headers = [(b"content-type", content_type.encode("latin-1"))]
        if headers:
            self.headers.extend(headers)
        #: The task making the next chunk, while it runs.
        self._producing: asyncio.Task[bytes | None] | None = None

    async def send(self, send: Send, head_only: bool = False) -> None:
        try:
            await send(
                {"type": "http.response.start", "status": self.status, "headers": self.headers}
            )
            if head_only:
                await send({"type": "http.response.body", "body": b""})
                return
            await self._stream(send)
        finally:
            producing = self._producing
            if producing is None or producing.done():
                await self.chunks.aclose()
            else:
                # Cancelled from outside (the server gave up on the request) while a chunk
                # was in the making. A generator cannot be closed while it runs, and waiting
                # here for the cancelled task to end may itself be cancelled (a cancel scope
                # cancels every wait until the request's task ends): the chunks are closed
                # when that task has ended.
                producing.cancel()
                producing.add_done_callback(_closer(self.chunks))

    async def _stream(self, send: Send) -> None:
        loop = asyncio.get_running_loop()
        gone = loop.create_task(self._until_disconnect())
        try:
            while True:
                self._producing = following = loop.create_task(_next_chunk(self.chunks))
                await asyncio.wait({following, gone}, return_when=asyncio.FIRST_COMPLETED)
                if not following.done():
                    following.cancel()
                    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                        await following
                    return  # the client is gone: nothing more to send
                self._producing = None  # done: its chunk is not held beyond its sending
                try:
                    chunk = following.result()
                except Exception as exc:
                    # The answer has begun: its status cannot change. Ending it without its
                    # last chunk tells the client that the body is incomplete.
                    log.warning("a streamed response failed midway: %s", exc)
                    return
                if chunk is None:
                    await send({"type": "http.response.body", "body": b""})
                    return
                if not await self._send_chunk(send, chunk):
                    return
        finally:
            gone.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await gone

    async def _send_chunk(self, send: Send, chunk: bytes) -> bool:
        """Hand one chunk to the server; ``False`` when the response was cut off."""
        message = {"type": "http.response.body", "body": chunk, "more_body": True}
        if self.abort is None:
            await send(message)
            return True
        loop = asyncio.get_running_loop()
        sending = loop.create_task(_sent(send, message))
        aborting = loop.create_task(self.abort.wait())
        try:
            await asyncio.wait({sending, aborting}, return_when=asyncio.FIRST_COMPLETED)
            if not sending.done():
                await asyncio.wait({sending}, timeout=self.grace)
            if not sending.done():
                log.warning("a stream's client stopped reading; closing its connection")
                sending.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sending
                self._drop_connection()
                return False
            sending.result()
            return True
        finally:
            sending.cancel()  # when cancelled from outside: no send goes on without us
            aborting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await aborting

    async def _until_disconnect(self) -> None:
        while (await self.receive())["type"] != "http.disconnect":
            pass

    def _drop_connection(self) -> None:
        """Drop the connection of a client that stopped reading, with what is buffered for it.

        ASGI has no message for this. A response the application leaves unfinished makes
        uvicorn close the connection, and a transport closes only once its buffer is sent:
        to a client that reads nothing more, never. The connection would stay, holding its
        buffers, after its stream was counted as gone, and hold a graceful shutdown up until
        its timeout. ``auditlog serve``'s protocol offers the drop as a scope extension
        (``DROP_CONNECTION``); under another server there is none, and the connection closes
        as that server may.
        """
        if self.drop is not None:
            self.drop()


#: Closings of chunks handed to the loop (``_closer``), held until they are done.
_closings: set[asyncio.Task[None]] = set()


def _closer(chunks: ByteChunks) -> Callable[[object], None]:
    """A done callback that closes ``chunks`` (on the running loop)."""

    def close(_: object) -> None:
        task = asyncio.get_running_loop().create_task(chunks.aclose())
        _closings.add(task)
        task.add_done_callback(_closings.discard)

    return close


async def _sent(send: Send, message: Message) -> None:
    await send(message)


async def _next_chunk(chunks: ByteChunks) -> bytes | None:
    """The next chunk, or ``None`` at the end."""
    try:
        return await chunks.__anext__()
    except StopAsyncIteration:
        return None

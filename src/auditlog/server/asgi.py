"""ASGI types and the Request/Response pair the handlers see.

The request body is read on demand and capped while it is read: a body whose
``Content-Length`` or running size passes the limit is refused with 413 before it is buffered
whole.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

import orjson

from auditlog.errors import BadRequest, PayloadTooLarge

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ClientDisconnected(Exception):
    """The client closed the connection before its request was read."""


class Request:
    """One HTTP request: method, path, headers, query parameters and a capped body."""

    __slots__ = ("_body", "_headers", "path_params", "receive", "scope")

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope = scope
        self.receive = receive
        self.path_params: dict[str, str] = {}
        self._headers: dict[str, str] | None = None
        self._body: bytes | None = None

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
        try:
            text = raw.decode("ascii")
            return parse_qsl(text, keep_blank_values=True, errors="strict")
        except UnicodeDecodeError:
            raise BadRequest("the query string is not valid percent-encoded UTF-8") from None

    @property
    def client(self) -> str:
        client = self.scope.get("client")
        return str(client[0]) if client else "-"

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

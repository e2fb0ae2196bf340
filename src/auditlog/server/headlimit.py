"""A bound on the request head for uvicorn's httptools protocol: 431 past ``MAX_HEAD_BYTES``.

uvicorn's httptools protocol sets no limit on the request head: a client may send headers of
any size and number (a 1 MB header was read whole and answered 200), and the parser holds each
header in memory until it is complete. ``auditlog serve`` therefore runs on this subclass,
which refuses a request whose head (request line and headers) passes ``MAX_HEAD_BYTES`` with
``431`` (a problem document) and closes the connection. Two counts enforce it:

* the URL and each header as the parser delivers them (name, value and the four bytes of
  ``": "`` and the line end): a head that arrived whole in one read is measured exactly;
* the bytes received while a head is still incomplete after a read: a head that keeps coming
  is cut off once the limit is passed, so no more than the limit and one read's worth of
  bytes is ever held for it. Bytes that arrive in the same read as the end of the previous
  request (pipelining) count towards the next head, so a pipelining client may be refused a
  little before the limit.

Bodies are capped by the application (``max_body_bytes``). Besides, the protocol writes through
``auditlog.server.coalesce.CoalescingTransport``, so the headers and body of a response leave in
one send.
"""

from __future__ import annotations

import asyncio
import logging

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from auditlog.server import problems
from auditlog.server.asgi import DROP_CONNECTION
from auditlog.server.coalesce import CoalescingTransport
from auditlog.server.requestid import new_request_id

#: Largest request line plus headers, in bytes. A login token is well under 1 KiB.
MAX_HEAD_BYTES = 64 * 1024

log = logging.getLogger("auditlog.server")


class HeadTooLarge(httptools.HttpParserError):
    """Raised from a parser callback: uvicorn then refuses the request (``send_400_response``)."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing a request head over ``MAX_HEAD_BYTES``."""

    max_head_bytes = MAX_HEAD_BYTES

    def connection_made(  # type: ignore[override]
        self, transport: asyncio.Transport
    ) -> None:
        self._reading_head = True
        self._head_bytes = 0  # of the head being read, as the parser delivered it
        self._received = 0  # bytes received while the head was incomplete
        self._too_large = False
        # Headers and body of a response leave in one send (see auditlog.server.coalesce).
        super().connection_made(CoalescingTransport(transport, asyncio.get_running_loop()))

    # -- the parser's callbacks --------------------------------------------------------

    def on_message_begin(self) -> None:
        self._reading_head = True
        self._head_bytes = 0
        self._received = 0
        super().on_message_begin()
        # ASGI has no message that drops a connection with what is buffered for it: offered
        # to the application as a scope extension (see StreamingResponse).
        extensions = self.scope.setdefault("extensions", {})
        extensions[DROP_CONNECTION] = {"drop": self.transport.abort}

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._reading_head = False
        super().on_headers_complete()

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.max_head_bytes:
            self._too_large = True
            raise HeadTooLarge(f"request head over {self.max_head_bytes} bytes")

    # -- the connection ----------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # Still in a head after the whole read was parsed: all of the read belonged to it.
        if not self._reading_head or self.transport.is_closing():
            return
        self._received += len(data)
        if self._received > self.max_head_bytes:
            self._too_large = True
            self._refuse()

    def send_400_response(self, msg: str) -> None:
        if self._too_large:
            self._refuse()
        else:
            super().send_400_response(msg)

    def _refuse(self) -> None:
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "-"
        # Its headers were not read: the request gets an id of its own (X-Request-ID).
        made = new_request_id()
        log.warning(
            "request head from %s over %d bytes; refused with 431 (request id %s)",
            client,
            self.max_head_bytes,
            made,
        )
        answer = problems.problem(
            431,
            "Request Header Fields Too Large",
            f"the request line and headers are more than {self.max_head_bytes} bytes",
        )
        head = [STATUS_LINE[431]]
        headers = [*self.server_state.default_headers, *answer.headers]
        for name, value in [*headers, (b"x-request-id", made.encode())]:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-length: ",
            str(len(answer.body)).encode(),
            b"\r\nconnection: close\r\n\r\n",
            answer.body,
        ]
        self.transport.write(b"".join(head))
        self.transport.close()

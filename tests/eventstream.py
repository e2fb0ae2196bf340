"""A client of ``GET /v1/events/stream`` (Server-Sent Events) over a plain socket, for tests.

A plain socket rather than an HTTP library, so that a test sees exactly what the server sent
and how the response ended (its last chunk, or the connection closed without it), and can
stop reading at will, as a reader too slow would. Every read waits at most until a deadline.

``EventStream`` sends the request and reads the head; ``read_until`` then reads (de-chunking
HTTP/1.1 and splitting SSE messages) until a condition on what was received holds or the
response ends. Only complete messages count: a message cut in half by the end of the
connection is dropped, as an ``EventSource`` drops it.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import orjson

#: Seconds a test waits at most for anything it expects from a stream.
WAIT = 30.0


class StreamEnded(AssertionError):
    """The response ended (or the wait ran out) before what was awaited came."""


@dataclass
class Message:
    """One SSE message: its fields, and the comment lines that came with it."""

    id: str | None = None
    event: str | None = None
    data: bytes | None = None
    retry: int | None = None
    comments: list[str] = field(default_factory=list)

    @property
    def seq(self) -> int:
        assert self.id is not None
        return int(self.id)

    def json(self) -> dict[str, Any]:
        assert self.data is not None
        value: dict[str, Any] = orjson.loads(self.data)
        return value


class EventStream:
    """One request to the stream route on ``127.0.0.1:port``; see the module docstring.

    ``receive_buffer`` sets the socket's receive buffer before it connects (a reader that
    stops reading then holds little on its side).
    """

    def __init__(
        self,
        port: int,
        token: str | None,
        params: Sequence[tuple[str, str]] = (),
        last_event_id: str | None = None,
        receive_buffer: int | None = None,
        path: str = "/v1/events/stream",
    ) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(WAIT)
        self.sock.connect(("127.0.0.1", port))
        target = path + (f"?{urlencode(list(params))}" if params else "")
        lines = [f"GET {target} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Accept: text/event-stream"]
        if token is not None:
            lines.append(f"Authorization: Bearer {token}")
        if last_event_id is not None:
            lines.append(f"Last-Event-ID: {last_event_id}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.messages: list[Message] = []
        self._events: list[Message] = []
        #: The response ended: ``complete`` says whether with its last chunk.
        self.ended = False
        self.complete = False
        self.received_bytes = 0
        self._raw = b""  # bytes read, not yet de-chunked
        self._text = b""  # de-chunked bytes, not yet split into messages
        self._chunk_left: int | None = None  # bytes of the current chunk still to come
        self.status, self.headers, self.body = self._read_head()
        if self.headers.get("transfer-encoding") == "chunked":
            # The body's first bytes may have come with the head.
            self._dechunk()
            self._split()

    # -- the head -------------------------------------------------------------------------

    def _read_head(self) -> tuple[int, dict[str, str], bytes]:
        deadline = time.monotonic() + WAIT
        while b"\r\n\r\n" not in self._raw:
            if not self._recv(deadline):
                raise StreamEnded(f"the connection closed before a response head: {self._raw!r}")
        head, self._raw = self._raw.split(b"\r\n\r\n", 1)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        status = int(status_line.split()[1])
        body = b""
        if "content-length" in headers:
            length = int(headers["content-length"])
            while len(self._raw) < length and self._recv(deadline):
                pass
            body, self._raw = self._raw[:length], self._raw[length:]
        elif headers.get("transfer-encoding") != "chunked":
            raise AssertionError(f"neither a length nor chunks: {headers}")
        return status, headers, body

    def problem(self) -> dict[str, Any]:
        """The body of a refusal (problem+json)."""
        value: dict[str, Any] = orjson.loads(self.body)
        return value

    # -- the body -------------------------------------------------------------------------

    def _recv(self, deadline: float) -> bool:
        """Read what the socket has, waiting until ``deadline``; False at its end."""
        left = deadline - time.monotonic()
        if left <= 0:
            return True
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(1 << 20)
        except TimeoutError:
            return True
        except ConnectionResetError:
            data = b""
        if not data:
            return False
        self.received_bytes += len(data)
        self._raw += data
        return True

    def _dechunk(self) -> None:
        raw, at, pieces = self._raw, 0, []
        while not self.complete:
            if self._chunk_left is None:
                end = raw.find(b"\r\n", at)
                if end < 0:
                    break
                size = int(raw[at:end].split(b";")[0], 16)
                at = end + 2
                if size == 0:
                    self.ended = self.complete = True
                    break
                self._chunk_left = size + 2  # its bytes, then a line end
            take = min(max(self._chunk_left - 2, 0), len(raw) - at)
            pieces.append(raw[at : at + take])
            at += take
            self._chunk_left -= take
            if self._chunk_left > 2:
                break
            line_end = raw[at : at + self._chunk_left]
            assert b"\r\n"[2 - self._chunk_left :].startswith(line_end), raw[at : at + 20]
            at += len(line_end)
            self._chunk_left -= len(line_end)
            if self._chunk_left:
                break
            self._chunk_left = None
        self._raw = raw[at:]
        self._text += b"".join(pieces)

    def _split(self) -> None:
        *blocks, self._text = self._text.split(b"\n\n")
        for block in blocks:
            message = Message()
            for line in block.split(b"\n"):
                name, _, value = line.partition(b":")
                value = value.removeprefix(b" ")
                if name == b"":
                    message.comments.append(value.decode())
                elif name == b"id":
                    message.id = value.decode()
                elif name == b"event":
                    message.event = value.decode()
                elif name == b"data":
                    message.data = value if message.data is None else message.data + b"\n" + value
                elif name == b"retry":
                    message.retry = int(value)
            self.messages.append(message)
            if message.event == "audit":
                self._events.append(message)

    def _pump(self, deadline: float) -> bool:
        """One read, de-chunked and split; False once the response has ended."""
        if self.ended:
            return False
        more = self._recv(deadline)
        self._dechunk()
        self._split()
        if not more:
            self.ended = True
        return not self.ended

    def read_until(
        self, done: Callable[[EventStream], bool], timeout: float = WAIT, what: str = ""
    ) -> None:
        """Read until ``done(self)`` holds; ``StreamEnded`` if the response ends or ``timeout``
        seconds pass first."""
        deadline = time.monotonic() + timeout
        while not done(self):
            if time.monotonic() >= deadline:
                raise StreamEnded(f"waited {timeout} s for {what or 'a condition'}; {self}")
            if not self._pump(deadline) and not done(self):
                raise StreamEnded(f"the response ended before {what or 'a condition'}; {self}")

    def read_to_end(self, timeout: float = WAIT) -> None:
        """Read until the response ends (``StreamEnded`` if it has not after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while self._pump(deadline):
            if time.monotonic() >= deadline:
                raise StreamEnded(f"the response did not end within {timeout} s; {self}")

    def read_seq(self, seq: int, timeout: float = WAIT) -> None:
        """Read until the event ``seq`` (or a later one) has come."""
        self.read_until(
            lambda s: bool(s._events) and s._events[-1].seq >= seq, timeout, f"seq {seq}"
        )

    # -- what came ------------------------------------------------------------------------

    def events(self) -> list[Message]:
        return self._events

    def seqs(self) -> list[int]:
        return [m.seq for m in self.events()]

    def last_id(self) -> str | None:
        ids = [m.id for m in self.messages if m.id is not None]
        return ids[-1] if ids else None

    def comments(self) -> list[str]:
        return [c for m in self.messages for c in m.comments]

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        seqs = self.seqs()
        shown = f"{seqs[:3]}...{seqs[-3:]}" if len(seqs) > 6 else str(seqs)
        return (
            f"<stream {self.status}, {len(seqs)} events {shown}, comments "
            f"{self.comments()[-3:]}, ended={self.ended} complete={self.complete}>"
        )

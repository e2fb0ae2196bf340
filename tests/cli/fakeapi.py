"""A stand-in for the service's export and stream routes on 127.0.0.1, for the tests of
``auditlog export`` and ``auditlog tail``: it speaks their wire format (API.md §10) over
HTTP/1.1 with chunked bodies, answers from a list of events as the service would, and breaks
the answer where a test's plan says: a cut connection (mid-line, mid-record, mid-chunk), a
problem with ``Retry-After``, a stream the server ends.

Each request is recorded (path, parameters, headers) for the tests to check what the client
asked. Every connection is answered once and closed; every wait is bounded.

``CuttingProxy`` does the breaking in front of a real server instead.
"""

from __future__ import annotations

import contextlib
import csv
import io
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

#: Bytes per chunk of a body, so that records reach the client in pieces.
CHUNK = 53
#: The longest a held stream stays open, in seconds (the test ends it sooner).
HOLD_LIMIT = 60.0


@dataclass(frozen=True)
class Seen:
    """One request as received."""

    path: str
    params: list[tuple[str, str]]
    headers: dict[str, str]  # names in lower case

    def param(self, name: str) -> str | None:
        values = [v for k, v in self.params if k == name]
        return values[-1] if values else None


def event(seq: int, tenant: str = "acme", **data: Any) -> dict[str, Any]:
    """A stored event as the service returns it."""
    return {
        "id": f"ev-{seq}",
        "type": "user.login" if seq % 3 else "invoice.billed",
        "time": f"2026-01-01T00:00:{seq % 60:02d}.000000Z",
        "actor": {"id": f"user-{seq % 5}"},
        "source": "test",
        "data": data or {"n": seq},
        "tenant": tenant,
        "seq": seq,
        "received_at": f"2026-01-01T00:01:{seq % 60:02d}.000000Z",
    }


def awkward_events(count: int) -> list[dict[str, Any]]:
    """Events whose CSV cells need quoting: commas, quotes, line breaks (LF and CRLF), and
    text that is not ASCII, among plain ones."""
    notes = [
        "plain",
        'a "quoted", comma',
        "line one\nline two",
        "crlf one\r\ncrlf two,\r\n",
        'ends with a quote"',
        "naïve café \u2028 — 𝄞",
        "",
        '"\n"',
    ]
    return [event(seq, note=notes[seq % len(notes)], amount=seq * 10) for seq in range(count)]


# -- answers -------------------------------------------------------------------------------


class Connection:
    """The server's side of one connection, answering one request."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def head(self, status: int, headers: dict[str, str]) -> None:
        lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Other')}"]
        lines += [f"{k}: {v}" for k, v in {**headers, "Connection": "close"}.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())

    def chunk(self, data: bytes) -> None:
        if data:
            self.sock.sendall(b"%x\r\n%s\r\n" % (len(data), data))

    def end(self) -> None:
        self.sock.sendall(b"0\r\n\r\n")

    def body(self, data: bytes, cut_at: int | None = None) -> None:
        """``data`` in chunks, then the terminator; or, with ``cut_at``, its first
        ``cut_at`` bytes and a cut connection (the chunk it falls in is announced whole)."""
        for start in range(0, len(data), CHUNK):
            piece = data[start : start + CHUNK]
            if cut_at is not None and start + len(piece) > cut_at:
                self.sock.sendall(b"%x\r\n%s" % (len(piece), piece[: cut_at - start]))
                self.cut()
                return
            self.chunk(piece)
        if cut_at is not None:
            self.cut()
            return
        self.end()

    def cut(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def problem(self, status: int, detail: str, retry_after: str | None = None) -> None:
        body = orjson.dumps(
            {
                "type": "about:blank",
                "title": REASONS.get(status, ""),
                "status": status,
                "detail": detail,
            }
        )
        headers = {"Content-Type": "application/problem+json", "Content-Length": str(len(body))}
        if retry_after is not None:
            headers["Retry-After"] = retry_after
        self.head(status, headers)
        self.sock.sendall(body)


REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    429: "Too Many Requests",
    503: "Service Unavailable",
}


@dataclass(frozen=True)
class Refuse:
    """A step of a plan: a problem instead of the answer."""

    status: int
    detail: str = "refused"
    retry_after: str | None = None


@dataclass(frozen=True)
class Cut:
    """A step of an export plan: the answer, cut after ``at(body)`` bytes of its body; then
    the log grows to ``grow_to`` events (as if they were committed meanwhile)."""

    at: Callable[[bytes], int]
    grow_to: int | None = None


# -- the export route ----------------------------------------------------------------------


class ExportRoute:
    """``GET /v1/events/export`` over ``events``, of which the first ``size`` are committed.

    Each request takes the next step of ``plan`` (a ``Cut`` or a ``Refuse``); once the plan
    is used up, every answer is whole. Honours ``format``, ``columns``, ``after_seq``,
    ``before_seq`` and ``type`` (equality).
    """

    def __init__(
        self,
        events: list[dict[str, Any]],
        size: int,
        plan: list[Cut | Refuse],
        pruned_before: int = 0,
    ):
        self.events = events
        self.size = size
        self.plan = list(plan)
        #: The tenant's horizon: events below it are left out and the answer says so.
        self.pruned_before = pruned_before

    def body(self, params: list[tuple[str, str]], size: int | None = None) -> bytes:
        """The whole answer's body for these parameters (what an uninterrupted export gives)."""
        given = dict(params)
        after = max(int(given.get("after_seq", -1)), self.pruned_before - 1)
        before = min(int(given.get("before_seq", self.size)), self.size if size is None else size)
        types = [v for k, v in params if k == "type"]
        chosen = [
            e
            for e in self.events[:before]
            if e["seq"] > after and (not types or e["type"] in types)
        ]
        if given.get("format", "ndjson") == "ndjson":
            return b"".join(orjson.dumps(e) + b"\n" for e in chosen)
        columns = ["seq", "id", "type", "data"]
        extra = [c for c in given.get("columns", "").split(",") if c]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(columns + extra)
        for e in chosen:
            row = [e["seq"], e["id"], e["type"], orjson.dumps(e["data"]).decode()]
            row += [_path(e, c) for c in extra]
            writer.writerow(row)
        return out.getvalue().encode()

    def answer(self, seen: Seen, conn: Connection) -> None:
        step = self.plan.pop(0) if self.plan else None
        if isinstance(step, Refuse):
            conn.problem(step.status, step.detail, step.retry_after)
            return
        size = self.size
        fmt = seen.param("format") or "ndjson"
        ctype = "application/x-ndjson" if fmt == "ndjson" else "text/csv; charset=utf-8"
        body = self.body(seen.params, size)
        headers = {
            "Content-Type": ctype,
            "Transfer-Encoding": "chunked",
            "Auditlog-Log-Size": str(size),
        }
        if int(seen.param("after_seq") or -1) < self.pruned_before - 1:
            headers["Auditlog-Pruned-Before"] = str(self.pruned_before)
        conn.head(200, headers)
        if step is None:
            conn.body(body)
            return
        if step.grow_to is not None:
            self.size = step.grow_to
        conn.body(body, cut_at=step.at(body))


def _path(stored: dict[str, Any], path: str) -> str:
    value: Any = stored
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else str(value)


# -- the stream route ----------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    """A step of a stream plan: ``count`` events from where the request asks (or from
    ``rewind`` events before it, as a server that sends some again), then ``then``:
    ``"cut"`` (a cut connection inside the next event), ``"end"`` (the server ends the
    response) or ``"hold"`` (every other event, then keep-alives until the test ends)."""

    count: int = 0
    then: str = "hold"
    rewind: int = 0


class StreamRoute:
    """``GET /v1/events/stream`` over ``events``; a request with no position begins at
    seq ``now`` (the events before it were committed before the request)."""

    def __init__(self, events: list[dict[str, Any]], now: int, plan: list[Send | Refuse]):
        self.events = events
        self.now = now
        self.plan = list(plan)
        self.stopping = threading.Event()

    @staticmethod
    def frame(stored: dict[str, Any]) -> bytes:
        return b"id: %d\nevent: audit\ndata: %s\n\n" % (stored["seq"], orjson.dumps(stored))

    def answer(self, seen: Seen, conn: Connection) -> None:
        step = self.plan.pop(0) if self.plan else Send()
        if isinstance(step, Refuse):
            conn.problem(step.status, step.detail, step.retry_after)
            return
        last = seen.headers.get("last-event-id") or seen.param("after_seq")
        start = int(last) + 1 if last is not None else self.now
        start = max(start - step.rewind, 0)
        conn.head(200, {"Content-Type": "text/event-stream", "Transfer-Encoding": "chunked"})
        conn.chunk(b": welcome\r\nretry: 50\r\n\r\n")
        count = len(self.events) if step.then == "hold" else step.count
        sent = b"".join(self.frame(e) for e in self.events[start : start + count])
        for at in range(0, len(sent), CHUNK):  # pieces that split lines and line ends
            conn.chunk(sent[at : at + CHUNK])
        if step.then == "cut":
            following = self.events[start + count : start + count + 1]
            partial = self.frame(following[0]) if following else b""
            conn.chunk(partial[: len(partial) - 7])  # the id and most of the data line
            conn.cut()
        elif step.then == "end":
            conn.end()
        else:
            deadline = time.monotonic() + HOLD_LIMIT
            while not self.stopping.wait(0.2) and time.monotonic() < deadline:
                conn.chunk(b": keep-alive\n\n")
            conn.end()


# -- the server ----------------------------------------------------------------------------


@dataclass
class FakeApi:
    """The server: ``url``, and the requests received by route."""

    routes: dict[str, ExportRoute | StreamRoute]
    url: str = ""
    seen: list[Seen] = field(default_factory=list)

    def requests(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        with contextlib.suppress(OSError):  # a client that went away
            request = self.rfile.readline(65536).decode("latin-1")
            headers: dict[str, str] = {}
            while (line := self.rfile.readline(65536).decode("latin-1").strip()) != "":
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            _, target, _ = request.split(" ", 2)
            parts = urlsplit(target)
            seen = Seen(parts.path, parse_qsl(parts.query, keep_blank_values=True), headers)
            api = self.server.api
            api.seen.append(seen)
            route = api.routes.get(parts.path)
            conn = Connection(self.request)
            if route is None:
                conn.problem(404, f"no route {parts.path}")
            else:
                route.answer(seen, conn)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, api: FakeApi) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.api = api


@contextlib.contextmanager
def serving(*routes: tuple[str, ExportRoute | StreamRoute]) -> Iterator[FakeApi]:
    """A fake server with ``routes`` (path, route) on a free port of 127.0.0.1, stopped
    when the block ends."""
    api = FakeApi(dict(routes))
    server = _Server(api)
    host, port = server.server_address[:2]
    api.url = f"http://{host!s}:{port}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield api
    finally:
        for route in api.routes.values():
            if isinstance(route, StreamRoute):
                route.stopping.set()
        server.shutdown()
        thread.join(timeout=HOLD_LIMIT)
        server.server_close()


# -- a proxy that breaks connections to a real server --------------------------------------


class CuttingProxy:
    """A TCP proxy on 127.0.0.1 in front of ``upstream`` (host, port) that lets the ``n``th
    connection's answer through up to ``cuts[n]`` bytes (status line, headers and chunk
    framing included) and then cuts both sides; connections beyond ``cuts`` pass whole.
    ``requests`` holds each connection's request head (request line and headers)."""

    def __init__(self, upstream: tuple[str, int], cuts: list[int]) -> None:
        self.upstream = upstream
        self.cuts = list(cuts)
        self.requests: list[str] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._accepter = threading.Thread(target=self._accept)
        self._accepter.start()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            budget = self.cuts.pop(0) if self.cuts else None
            thread = threading.Thread(target=self._relay, args=(client, budget))
            self._threads.append(thread)
            thread.start()

    def _relay(self, client: socket.socket, budget: int | None) -> None:
        with client, contextlib.suppress(OSError):
            upstream = socket.create_connection(self.upstream, timeout=HOLD_LIMIT)
            self._sockets += [client, upstream]
            with upstream:
                client.settimeout(HOLD_LIMIT)
                request = b""
                while b"\r\n\r\n" not in request:  # the clients here send no request body
                    data = client.recv(65536)
                    if not data:
                        return
                    request += data
                self.requests.append(request.decode("latin-1"))
                upstream.sendall(request)
                sent = 0
                while not self._stopping.is_set():
                    data = upstream.recv(65536)
                    if not data:
                        break
                    if budget is not None and sent + len(data) >= budget:
                        client.sendall(data[: budget - sent])
                        client.shutdown(socket.SHUT_RDWR)
                        return
                    client.sendall(data)
                    sent += len(data)

    def close(self) -> None:
        self._stopping.set()
        self._accepter.join(timeout=HOLD_LIMIT)
        self._listener.close()
        for sock in self._sockets:  # wakes the relays that wait for bytes
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=HOLD_LIMIT)


@contextlib.contextmanager
def cutting(upstream_url: str, cuts: list[int]) -> Iterator[CuttingProxy]:
    """A ``CuttingProxy`` in front of the server at ``upstream_url``, closed when the block
    ends."""
    parts = urlsplit(upstream_url)
    assert parts.hostname == "127.0.0.1"
    assert parts.port is not None
    proxy = CuttingProxy((parts.hostname, parts.port), cuts)
    try:
        yield proxy
    finally:
        proxy.close()

"""A real HTTP receiver on 127.0.0.1 for the HTTP sinks' tests, answering from a script.

Each POST is recorded (path, headers, body, the client's port) and answered with the next
scripted ``Reply``: a status with headers and body, ``CLOSE`` (drop the connection without
a word) or ``HANG`` (answer nothing until the receiver stops). With nothing scripted it
answers 200. It speaks HTTP/1.1, so a client can keep its connection alive.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

#: How long a HANG lasts at most, should the receiver never be stopped.
HANG_LIMIT = 30.0


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


CLOSE = "close"
HANG = "hang"


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    client_port: int


class Receiver:
    """``with Receiver() as r:`` serves on ``r.url`` until the block ends."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._script: deque[Reply | str] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver._lock:
                    receiver.requests.append(
                        Received(
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                            self.client_address[1],
                        )
                    )
                    reply = receiver._script.popleft() if receiver._script else Reply(200)
                if reply == HANG:
                    receiver._stopping.wait(HANG_LIMIT)
                if isinstance(reply, str):
                    self.close_connection = True
                    return
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # the tests look at what was received, not at a log

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # A short poll interval: shutdown() waits for the serving loop to look.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def script(self, *replies: Reply | str) -> None:
        """Answer the next requests with these, in order."""
        with self._lock:
            self._script.extend(replies)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)

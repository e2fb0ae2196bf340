"""A webhook receiver on 127.0.0.1 for the delivery tests, and the checks of what it received.

Every POST is recorded as a ``Request``: its Standard Webhooks headers and body, what it was
answered, when it began and ended (``time.monotonic`` of the test process) and, where the
test names the processes that may send (``senders``), which of them sent it (from
``/proc``). A request ends when its answer is written or when the receiver sees that its
sender has gone (a client that gave up, a process killed), whichever comes first: so two
requests overlap only if both were open on both ends at once.

How it answers is scripted, request by request (``script``): ``OK`` (200), ``FAIL`` (500),
``SLOW`` (nothing until the sender gives up), ``Throttle(seconds)`` (429 with
``Retry-After``), ``CLOSE`` (the connection closed without an answer), ``HOLD`` (nothing until
the sender goes, after calling ``hook`` with the request: a test kills the sender there) and
``HOOK`` (200 once ``hook`` has returned: the test does something while a batch is on its
way). With the script used up it answers 200, or 500 while ``failing`` is set.

Signatures are checked with this module's own HMAC code (``signature_ok``), not the
service's.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import itertools
import os
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import orjson

#: Longest a request is left unanswered, should its sender never go.
HOLD_LIMIT = 30.0
#: Oldest a webhook-timestamp may be (Standard Webhooks' receivers refuse older ones).
TOLERANCE = 300


@dataclass(frozen=True)
class Throttle:
    """Answer 429 with ``Retry-After: seconds``."""

    seconds: int


OK = "ok"
FAIL = "fail"
SLOW = "slow"
CLOSE = "close"
HOLD = "hold"
HOOK = "hook"
Action = str | Throttle


@dataclass
class Request:
    number: int
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    start: float
    action: Action = OK
    end: float | None = None
    answered: int | None = None  # the status written; None when none was
    sender: int | None = None  # the pid, when the test named the candidates
    received_at: float = field(default_factory=time.time)

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")

    @property
    def stream_id(self) -> str:
        """From ``webhook-id``: ``msg_<stream id>_<first seq>_<last seq>``."""
        return self.webhook_id.split("_", 1)[1].rsplit("_", 2)[0]

    @property
    def events(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = orjson.loads(self.body)["events"]
        return events

    @property
    def seqs(self) -> list[int]:
        return [int(e["seq"]) for e in self.events]

    @property
    def accepted(self) -> bool:
        return self.answered is not None and 200 <= self.answered < 300


def signature_ok(secret: str, request: Request) -> bool:
    """Whether one of the request's ``webhook-signature`` values is HMAC-SHA256, keyed with
    the secret's base64 part, of ``id.timestamp.body``; and its timestamp is recent."""
    assert secret.startswith("whsec_"), secret
    key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    msg_id = request.headers["webhook-id"]
    timestamp = request.headers["webhook-timestamp"]
    if not timestamp.isdigit() or abs(int(timestamp) - request.received_at) > TOLERANCE:
        return False
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + request.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(
        version == "v1" and hmac.compare_digest(value, expected)
        for version, _, value in (
            part.partition(",") for part in request.headers["webhook-signature"].split()
        )
    )


class WebhookReceiver:
    """``with WebhookReceiver() as r:`` serves on ``r.url`` until the block ends."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.failing = False
        self.senders: tuple[int, ...] = ()
        self.hook: Callable[[Request], None] | None = None
        self._script: deque[Action] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                start = time.monotonic()
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._lock:
                    request = Request(len(receiver.requests), self.path, headers, body, start)
                    receiver.requests.append(request)
                    if receiver._script:
                        request.action = receiver._script.popleft()
                    elif receiver.failing:
                        request.action = FAIL
                    senders = receiver.senders
                if senders:
                    request.sender = connection_owner(
                        self.client_address[1], receiver.port, senders
                    )
                try:
                    self._answer(request)
                finally:
                    request.end = time.monotonic()

            def _answer(self, request: Request) -> None:
                action = request.action
                if action in (HOLD, HOOK) and receiver.hook is not None:
                    receiver.hook(request)
                if action in (SLOW, HOLD):
                    receiver._until_gone(self.connection)
                if action in (SLOW, HOLD, CLOSE):
                    self.close_connection = True
                    return
                status, extra = 200, {}
                if action == FAIL:
                    status = 500
                elif isinstance(action, Throttle):
                    status, extra = 429, {"retry-after": str(action.seconds)}
                with contextlib.suppress(OSError):
                    self.send_response(status)
                    for name, value in extra.items():
                        self.send_header(name, value)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    self.wfile.flush()
                    request.answered = status

            def log_message(self, format: str, *args: object) -> None:
                pass  # the tests look at what was received, not at a log

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, *actions: Action) -> None:
        """Answer the next requests so, in order."""
        with self._lock:
            self._script.extend(actions)

    def received(self) -> list[Request]:
        """The requests so far, in the order they began."""
        with self._lock:
            return list(self.requests)

    def _until_gone(self, sock: socket.socket) -> None:
        deadline = time.monotonic() + HOLD_LIMIT
        while not self._stopping.is_set() and time.monotonic() < deadline:
            if client_gone(sock):
                return
            self._stopping.wait(0.005)

    def __enter__(self) -> WebhookReceiver:
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


def client_gone(sock: socket.socket) -> bool:
    """Whether the other end of ``sock`` has closed it (or it broke)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def connection_owner(client_port: int, server_port: int, pids: Iterable[int]) -> int | None:
    """Which of ``pids`` holds the client end of the TCP connection from ``client_port`` to
    ``server_port`` on this machine (from /proc/net/tcp and the processes' descriptors)."""
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                local, remote = fields[1], fields[2]
                if (
                    int(local.rsplit(":", 1)[1], 16) == client_port
                    and int(remote.rsplit(":", 1)[1], 16) == server_port
                ):
                    inode = fields[9]
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                        return pid
    return None


# -- checks ------------------------------------------------------------------------------


def check_in_order(requests: Sequence[Request], expected: Sequence[int], *, strict: bool) -> None:
    """The requests (in the order they began) carry ``expected`` (the seqs the stream must
    deliver, in order), each at least once, in order, without a gap: every batch is a run
    of ``expected`` that begins no later than right after what came before it. ``strict``
    (no process died): every batch begins right after the one before it, except a repeat of
    that same batch (the same ``webhook-id`` and body) after a failure.
    """
    index = {seq: i for i, seq in enumerate(expected)}
    reached = 0  # how many of expected have arrived, in order
    previous: Request | None = None
    for request in requests:
        seqs = request.seqs
        assert seqs, f"request {request.number} has no events"
        assert all(seq in index for seq in seqs), (
            f"request {request.number} carries seqs not to be delivered: {seqs}"
        )
        first = index[seqs[0]]
        assert [index[s] for s in seqs] == list(range(first, first + len(seqs))), (
            f"request {request.number} is not a run of the stream's events: {seqs}"
        )
        assert first <= reached, (
            f"request {request.number} begins at seq {seqs[0]}, past a gap after "
            f"{expected[reached - 1] if reached else 'the start'}"
        )
        assert request.webhook_id == f"msg_{request.stream_id}_{seqs[0]}_{seqs[-1]}"
        if strict:
            assert (
                previous is None or previous.accepted or (request.webhook_id == previous.webhook_id)
            ), f"request {request.number} follows a batch that failed and was not sent again"
            if previous is not None and request.webhook_id == previous.webhook_id:
                assert request.body == previous.body, f"request {request.number}: a repeat changed"
                assert not previous.accepted, f"request {request.number} repeats an accepted batch"
            else:
                assert first == reached, (
                    f"request {request.number} begins at seq {seqs[0]}: a batch was sent again "
                    "after it had been accepted"
                )
        reached = max(reached, first + len(seqs))
        previous = request
    assert reached == len(expected), (
        f"{reached} of {len(expected)} events arrived; the last missing: {expected[reached:][:5]}"
    )


def check_no_overlap(requests: Sequence[Request]) -> None:
    """No two requests of one stream were open at the same moment."""
    by_stream: dict[str, list[Request]] = {}
    for request in requests:
        by_stream.setdefault(request.stream_id, []).append(request)
    for stream_id, of_stream in by_stream.items():
        ordered = sorted(of_stream, key=lambda r: r.start)
        for before, after in itertools.pairwise(ordered):
            assert before.end is not None, f"request {before.number} never ended"
            assert before.end <= after.start, (
                f"stream {stream_id}: request {after.number} (from {after.sender}) began while "
                f"request {before.number} (from {before.sender}) was open"
            )

"""The witness's HTTP interface: a small ASGI application of its own.

====================================  ====================================================
``POST /add-checkpoint``              C2SP tlog-witness add-checkpoint: 200 with the
                                      cosignature line, or 400, 403, 404, 409, 422 (see
                                      ``verifier``); 413 past ``MAX_BODY`` bytes
``GET /<origin hash>/checkpoint``     the latest cosigned checkpoint of the log whose
                                      origin has that lowercase hex SHA-256, with the log's
                                      signatures and the witness's; 404 if none was
``GET /``                             one line: the witness's name and verifier key
====================================  ====================================================

Another method on a route is answered 405 with ``Allow``; any other path 404. Every error is
a one-line reason in ``text/plain``, but the 409's body, which is the recorded size.

Every refusal of add-checkpoint is logged at WARNING with the origin, status and reason; one
whose checkpoint the log had signed is also recorded in the state, as evidence. The SQLite and
Ed25519 work runs in a worker thread; the state's lock serialises requests, so those for one
log are answered one after another.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from auditlog.integrity.cosignature import Cosigner
from auditlog.witness.state import State
from auditlog.witness.verifier import (
    TEXT_TYPE,
    Accepted,
    Decision,
    Logs,
    Recorded,
    Refused,
    Submission,
    accept,
    check,
    open_request,
    origin_of,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: The largest add-checkpoint body: 1 MiB, far beyond 63 proof lines and a checkpoint.
MAX_BODY = 1 << 20

_MONITORING = re.compile(r"/([0-9a-f]{64})/checkpoint")

log = logging.getLogger("auditlog.witness")


class TooLarge(Exception):
    """The request body is over ``MAX_BODY`` bytes."""


class WitnessApp:
    """The witness: ``cosigner`` cosigns checkpoints of ``logs`` recorded in ``state``.

    ``clock`` gives the time in POSIX seconds, for cosignatures' timestamps.
    """

    def __init__(
        self,
        cosigner: Cosigner,
        logs: Logs,
        state: State,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cosigner = cosigner
        self.logs = logs
        self.state = state
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        method: str = scope["method"]
        if path == "/add-checkpoint":
            if method != "POST":
                await _text(send, 405, "add-checkpoint takes POST", allow="POST")
                return
            await self._add_checkpoint(scope, receive, send)
            return
        if path == "/" or _MONITORING.fullmatch(path):
            if method not in ("GET", "HEAD"):
                await _text(send, 405, f"{path} takes GET", allow="GET, HEAD")
                return
            head = method == "HEAD"
            if path == "/":
                vkey = self.cosigner.key.vkey
                await _text(send, 200, f"auditlog witness {self.cosigner.name} {vkey}", head)
                return
            await self._checkpoint(path, send, head)
            return
        await _text(send, 404, f"no such route: {path}", method == "HEAD")

    async def _checkpoint(self, path: str, send: Send, head: bool) -> None:
        match = _MONITORING.fullmatch(path)
        assert match is not None
        stored = await asyncio.to_thread(self.state.latest, match.group(1))
        if stored is None:
            await _text(send, 404, "no checkpoint of this log was cosigned", head)
            return
        await _respond(send, 200, stored.cosigned, TEXT_TYPE, head=head)

    async def _add_checkpoint(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            body = await _read_body(scope, receive)
        except TooLarge:
            await _text(send, 413, f"the request body is over {MAX_BODY} bytes")
            return
        try:
            decision = await asyncio.to_thread(self.add_checkpoint, body)
        except Exception:
            log.exception("add-checkpoint failed")
            await _text(send, 500, "internal error; see the witness's log")
            return
        await _respond(send, decision.status, decision.body, decision.content_type)

    def add_checkpoint(self, body: bytes) -> Decision:
        """The answer to one add-checkpoint request, recorded (blocking: SQLite, Ed25519)."""
        try:
            submission = open_request(body, self.logs)
            timestamp = max(1, int(self.clock()))
            accepted = self.state.add(
                submission.origin,
                submission.old_size,
                lambda recorded: _accept(submission, recorded, self.cosigner, timestamp),
            )
        except Refused as refused:
            self._refused(body, refused)
            return Decision.of_refusal(refused)
        return Decision.of_acceptance(accepted)

    def _refused(self, body: bytes, refused: Refused) -> None:
        message = body.partition(b"\n\n")[2].decode("utf-8", "replace")
        origin = origin_of(message)
        log.warning(
            "refused add-checkpoint: origin %r, status %d: %s",
            origin[:200],
            refused.status,
            refused.reason,
        )
        if refused.signed:
            self.state.refuse(int(self.clock()), origin, refused.status, refused.reason, message)


def _accept(
    submission: Submission, recorded: Recorded, cosigner: Cosigner, timestamp: int
) -> Accepted:
    check(submission, recorded)
    return accept(submission, cosigner, timestamp)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _read_body(scope: Scope, receive: Receive) -> bytes:
    for name, value in scope.get("headers", ()):
        if name == b"content-length" and value.isdigit() and int(value) > MAX_BODY:
            raise TooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _text(
    send: Send, status: int, reason: str, head: bool = False, allow: str | None = None
) -> None:
    await _respond(send, status, reason + "\n", TEXT_TYPE, head=head, allow=allow)


async def _respond(
    send: Send,
    status: int,
    body: str,
    content_type: str,
    *,
    head: bool = False,
    allow: str | None = None,
) -> None:
    data = body.encode("utf-8")
    headers = [
        (b"content-type", content_type.encode("ascii")),
        (b"content-length", str(len(data)).encode("ascii")),
    ]
    if allow is not None:
        headers.append((b"allow", allow.encode("ascii")))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else data})

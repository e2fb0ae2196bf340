"""HTTP transports for the tests: each wraps the real one to a real server, recording what
the client sends and, when told, answering in the server's stead or losing its answer."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator

import httpx


def batch_sizes(requests: list[httpx.Request]) -> list[int]:
    """The number of events in each NDJSON batch sent."""
    return [len(r.content.splitlines()) for r in requests if r.url.path == "/v1/events"]


def batch_ids(request: httpx.Request) -> list[str]:
    return [json.loads(line)["id"] for line in request.content.splitlines()]


class Recording(httpx.BaseTransport):
    """Forwards every request to the real server and keeps a copy of it.

    ``fault(request, number)`` may return a response to answer instead of the server
    (``number`` counts write requests from 0), raise to fail before the server sees it, or
    return None to forward. ``lose_answer(number)`` says whether to throw away the server's
    answer to that write and raise a connection error instead, after the server stored it.
    ``gate``, when set, holds every write until it is opened.
    """

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.requests: list[httpx.Request] = []
        self.answers: list[int] = []
        self.fault: Callable[[httpx.Request, int], httpx.Response | None] | None = None
        self.lose_answer: Callable[[int], bool] | None = None
        self.gate: threading.Event | None = None
        self._lock = threading.Lock()
        self._writes = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        is_write = request.method == "POST" and request.url.path == "/v1/events"
        with self._lock:
            self.requests.append(request)
            number = self._writes
            if is_write:
                self._writes += 1
        if is_write and self.gate is not None:
            self.gate.wait(timeout=60)
        if is_write and self.fault is not None:
            answer = self.fault(request, number)
            if answer is not None:
                self.answers.append(answer.status_code)
                return answer
        response = self.inner.handle_request(request)
        if is_write and self.lose_answer is not None and self.lose_answer(number):
            response.read()
            response.close()
            raise httpx.ReadError("the answer was lost (test)", request=request)
        if is_write:
            self.answers.append(response.status_code)
        return response

    def writes(self) -> list[httpx.Request]:
        with self._lock:
            return [r for r in self.requests if r.method == "POST" and r.url.path == "/v1/events"]

    def close(self) -> None:
        self.inner.close()


def problem(status: int, retry_after: str | None = None) -> httpx.Response:
    headers = {"Content-Type": "application/problem+json"}
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    body = {"type": "urn:auditlog:problem:unavailable", "title": "x", "status": status}
    return httpx.Response(status, headers=headers, json=body)


class Pauses:
    """Stands in for the sender's backoff wait: records each delay, and waits it only when
    ``real`` (for a real server's ``Retry-After``)."""

    def __init__(self, real: bool = False) -> None:
        self.delays: list[float] = []
        self.real = real

    def __call__(self, seconds: float) -> bool:
        self.delays.append(seconds)
        if self.real:
            time.sleep(seconds)
        return True


class _CutStream(httpx.SyncByteStream):
    def __init__(self, response: httpx.Response, limit: int) -> None:
        self._response = response
        self._limit = limit

    def __iter__(self) -> Iterator[bytes]:
        sent = 0
        try:
            for chunk in self._response.iter_raw():
                if sent + len(chunk) >= self._limit:
                    yield chunk[: self._limit - sent]
                    raise httpx.ReadError("the connection broke (test)")
                sent += len(chunk)
                yield chunk
        finally:
            self._response.close()


class Cutting(httpx.BaseTransport):
    """Forwards to the real server, but cuts the first ``cuts`` answers on ``path`` after
    ``limit`` bytes of their body, as a lost connection would."""

    def __init__(self, path: str, limit: int, cuts: int = 1) -> None:
        self.inner = httpx.HTTPTransport()
        self.path = path
        self.limit = limit
        self.cuts = cuts
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.url.path != self.path:
            return response
        self.requests.append(request)
        if self.cuts <= 0 or response.status_code != 200:
            return response
        self.cuts -= 1
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_CutStream(response, self.limit),
            request=request,
        )

    def close(self) -> None:
        self.inner.close()

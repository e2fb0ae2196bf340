"""The indexer's helpers: processes that compute the index entries of stored events.

Computing the entries of an event (its tokens and words, ``terms``, and its numbers) is pure
Python, most of the indexer's CPU, and independent from event to event; writing them into
the search index is SQLite's work, which must stay in one process (one transaction per step,
with the progress). So the indexer hands chunks of stored rows to worker processes and
writes each chunk's entries while the next ones are computed, on cores the server and the
indexer leave free.

A worker is ``python -m auditlog.storage.sqlite.termworkers``, started by the indexer (and so
as nice as it is), reading requests on its standard input and answering on its standard
output: a request is the tenant and the rows' keys as JSON, then the stored bodies as they
are; an answer is the entries as JSON; each part with its length in front. It holds no
database and no state but its memo of paths (``terms``): it exits at the end of its input,
which comes when the indexer closes the pipe or dies, however it dies, so no worker outlives
its indexer.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, Any

import orjson

from auditlog.storage import numbers
from auditlog.storage.sqlite import terms

#: Events per request to a worker: small enough that writing starts soon, large enough that
#: a request's overhead does not count.
CHUNK_EVENTS = 500

Rows = Sequence[tuple[int, bytes]]
#: What a chunk of one tenant's events adds to the index: [key, document] for the full-text
#: table, [tenant id, path id, number, key] for ``numbers``, [tenant id, path id, flag] for
#: ``path_flags``.
Entries = tuple[list[list[Any]], list[list[Any]], list[list[Any]]]


def entries(tenant_id: int, name: str, events: Sequence[tuple[int, dict[str, Any]]]) -> Entries:
    """The index entries of stored events of one tenant, as (key, content)."""
    docs: list[list[Any]] = []
    found: list[list[Any]] = []
    held: list[numbers.EventNumbers] = []
    for key, content in events:
        doc, event = terms.event_terms_and_numbers(name, content)
        docs.append([key, doc])
        held.append(event)
        found += [[tenant_id, pid, n, key] for pid, n in event.numbers]
    flags = [[tenant_id, pid, flag] for pid, flag in numbers.flags_of(held)]
    return docs, found, flags


def _send(out: IO[bytes], *parts: bytes) -> None:
    for part in parts:
        out.write(len(part).to_bytes(4, "big"))
        out.write(part)
    out.flush()


def _receive(source: IO[bytes]) -> bytes | None:
    """The next part, or None at the end of the input."""
    head = source.read(4)
    if len(head) < 4:
        return None
    size = int.from_bytes(head, "big")
    part = source.read(size)
    if len(part) < size:
        return None
    return part


def _request(tenant_id: int, name: str, rows: Rows) -> tuple[bytes, bytes]:
    keys = [key for key, _ in rows]
    sizes = [len(body) for _, body in rows]
    return orjson.dumps([tenant_id, name, keys, sizes]), b"".join(body for _, body in rows)


def _answer(head: bytes, bodies: bytes) -> bytes:
    tenant_id, name, keys, sizes = orjson.loads(head)
    view = memoryview(bodies)
    events: list[tuple[int, Any]] = []
    at = 0
    for key, size in zip(keys, sizes, strict=True):
        events.append((key, orjson.loads(view[at : at + size])))
        at += size
    docs, found, flags = entries(tenant_id, name, events)
    return orjson.dumps({"docs": docs, "numbers": found, "flags": flags})


def default_workers() -> int:
    """One worker per core beyond two (the server's and the indexer's), at most 3.

    A worker costs the pipe and JSON besides the work it takes over (2-10 us an event,
    bench/RESULTS.md §13), which only pays where a core would otherwise be idle: under full
    ingest on two cores, none is."""
    return max(0, min(3, (os.cpu_count() or 1) - 2))


class _Worker:
    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", __name__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.requests: IO[bytes] = self.process.stdin
        self.answers: IO[bytes] = self.process.stdout

    def call(self, tenant_id: int, name: str, rows: Rows) -> Entries:
        _send(self.requests, *_request(tenant_id, name, rows))
        got = _receive(self.answers)
        if got is None:
            raise EOFError(f"term worker {self.process.pid} exited")
        answer = orjson.loads(got)
        if "error" in answer:
            raise ValueError(f"term worker {self.process.pid}: {answer['error']}")
        return answer["docs"], answer["numbers"], answer["flags"]

    def stop(self, timeout: float) -> None:
        with contextlib.suppress(OSError):  # it is gone already
            self.requests.close()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.answers.close()


class TermWorkers:
    """``entries`` for chunks of rows, computed by ``count`` worker processes (started on
    first use), or in this process when ``count`` is 0 or there is only one chunk."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self._all: list[_Worker] = []
        self._threads: ThreadPoolExecutor | None = None

    def _call(self, tenant_id: int, name: str, rows: Rows) -> Entries:
        worker = self._idle.get()
        try:
            return worker.call(tenant_id, name, rows)
        finally:
            self._idle.put(worker)

    def map(self, work: Sequence[tuple[int, str, Rows]]) -> Iterator[Entries]:
        """The entries of each tenant's rows in ``work``, a chunk at a time, in order."""
        chunks = [
            (tenant_id, name, rows[i : i + CHUNK_EVENTS])
            for tenant_id, name, rows in work
            for i in range(0, len(rows), CHUNK_EVENTS)
        ]
        if self.count <= 0 or len(chunks) < 2:
            for tenant_id, name, rows in chunks:
                yield entries(tenant_id, name, [(k, orjson.loads(body)) for k, body in rows])
            return
        if self._threads is None:
            self._all = [_Worker() for _ in range(self.count)]
            for worker in self._all:
                self._idle.put(worker)
            self._threads = ThreadPoolExecutor(self.count, thread_name_prefix="al-terms")
        pending: list[Future[Entries]] = [self._threads.submit(self._call, *c) for c in chunks]
        try:
            for future in pending:
                yield future.result()
        finally:
            for future in pending:
                future.cancel()

    def close(self, timeout: float = 5.0) -> None:
        if self._threads is not None:
            self._threads.shutdown(wait=True, cancel_futures=True)
            self._threads = None
        for worker in self._all:
            worker.stop(timeout)
        self._all = []
        self._idle = queue.SimpleQueue()


def main() -> int:
    # Its indexer stops it by closing its input; an interrupt meant for the server is not
    # for it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    while (head := _receive(requests)) is not None and (bodies := _receive(requests)) is not None:
        try:
            answer = _answer(head, bodies)
        except Exception as exc:  # the indexer raises it
            answer = orjson.dumps({"error": f"{type(exc).__name__}: {exc}"})
        try:
            _send(answers, answer)
        except BrokenPipeError:
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())

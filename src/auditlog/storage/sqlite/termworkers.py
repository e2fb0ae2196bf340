"""The indexer's helpers: processes that compute the index entries of stored events.

Computing the entries of an event (its tokens and words, ``terms``, and its numbers) is pure
Python, most of the indexer's CPU, and independent from event to event; writing them into
the search index is SQLite's work, which must stay in one process (one transaction per step,
with the progress). So the indexer hands chunks of stored rows to worker processes and
writes each chunk's entries while the next ones are computed, on cores the server and the
indexer leave free; it computes chunks itself from the other end whenever the next one it
needs is not back yet, and hands out none while no core goes spare (``sparecpu``).

A worker is ``python -m auditlog.storage.sqlite.termworkers``, started by the indexer (and so
as nice as it is), reading requests on its standard input and answering on its standard
output: a request is the tenant and the rows' keys as JSON, then the stored bodies as they
are; an answer is the entries as JSON; each part with its length in front. It holds no
database and no state but its memo of paths (``terms``): it exits at the end of its input,
which comes when the indexer closes the pipe or dies, however it dies, so no worker outlives
its indexer.
"""

from __future__ import annotations

import collections
import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any

import orjson

from auditlog.collector import collect_less
from auditlog.storage import numbers
from auditlog.storage.sparecpu import SpareCpu
from auditlog.storage.sqlite import terms

#: Events per request to a worker: small enough that writing starts soon, large enough that
#: a request's overhead does not count (100, 250 and 500 gave the same rate, bench/RESULTS.md
#: §18).
CHUNK_EVENTS = 500
#: Requests a worker is sent before its first answer is read.
IN_FLIGHT = 2
#: Cores that must have gone idle (or to the workers) since the last step for the workers
#: to be given the next one's chunks: most of one. At half a core, full batch ingest on two
#: cores let them in at times, for no gain (bench/RESULTS.md §18).
SPARE_CORES = 0.8

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
    """One worker per core beyond the indexer's own, at most 3.

    A worker costs the pipe and JSON besides the work it takes over (2-10 us an event,
    bench/RESULTS.md §13), which only pays where a core would otherwise be idle: under full
    ingest on two cores, none is. So the workers are given chunks only while at least
    ``SPARE_CORES`` go spare (``map``)."""
    return max(0, min(3, (os.cpu_count() or 1) - 1))


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

    def send(self, tenant_id: int, name: str, rows: Rows) -> None:
        _send(self.requests, *_request(tenant_id, name, rows))

    def receive(self) -> Entries:
        """The answer to the oldest request sent."""
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


Chunk = tuple[int, str, Rows]


def _chunks(work: Sequence[Chunk]) -> list[Chunk]:
    return [
        (tenant_id, name, rows[i : i + CHUNK_EVENTS])
        for tenant_id, name, rows in work
        for i in range(0, len(rows), CHUNK_EVENTS)
    ]


def _signature(chunk: Chunk) -> tuple[int, int, int, int]:
    """What tells one chunk from another: its tenant, first and last keys and size (stored
    events do not change, and a chunk is a run of one tenant's keys)."""
    tenant_id, _, rows = chunk
    return tenant_id, rows[0][0], rows[-1][0], len(rows)


class _Shared:
    """The chunks of one ``map``: worker threads take them from the front, the indexer's own
    thread from the back while the next result it needs is not there yet."""

    def __init__(self, chunks: list[Chunk]) -> None:
        self.left: collections.deque[tuple[int, Chunk]] = collections.deque(enumerate(chunks))
        self.signatures = [_signature(chunk) for chunk in chunks]
        self.done: dict[int, Entries | Exception] = {}
        self.changed = threading.Condition()

    def extend(self, chunks: list[Chunk]) -> None:
        """Add chunks after those it has."""
        with self.changed:
            start = len(self.signatures)
            self.left.extend(enumerate(chunks, start))
            self.signatures += [_signature(chunk) for chunk in chunks]

    def take_first(self) -> tuple[int, Chunk] | None:
        with self.changed:
            return self.left.popleft() if self.left else None

    def put(self, index: int, outcome: Entries | Exception) -> None:
        with self.changed:
            self.done[index] = outcome
            self.changed.notify_all()

    def result(self, index: int) -> Entries:
        """Chunk ``index``'s entries; meanwhile, the last chunk no one took is computed here."""
        while True:
            with self.changed:
                if index in self.done:
                    outcome = self.done.pop(index)
                    break
                if not self.left:
                    self.changed.wait()
                    continue
                mine, chunk = self.left.pop()
            self.put(mine, _outcome(*chunk))
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def drop(self) -> None:
        """No chunk is taken after this (the indexer's step ended early)."""
        with self.changed:
            self.left.clear()


def _computed(tenant_id: int, name: str, rows: Rows) -> Entries:
    return entries(tenant_id, name, [(key, orjson.loads(body)) for key, body in rows])


def _outcome(tenant_id: int, name: str, rows: Rows) -> Entries | Exception:
    try:
        return _computed(tenant_id, name, rows)
    except Exception as exc:  # raised where its chunk's turn comes
        return exc


class TermWorkers:
    """``entries`` for chunks of rows, computed by ``count`` worker processes (started on
    first use) and by the calling thread; by the calling thread alone when ``count`` is 0,
    there is only one chunk, or the machine has no core to spare."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self._all: list[_Worker] = []
        self._threads: ThreadPoolExecutor | None = None
        self._spare = SpareCpu()
        self._ahead: _Shared | None = None  # chunks given out before their ``map``
        self._use = True  # the workers, until a look at the machine says otherwise
        #: Whether the last ``map`` gave the workers chunks, and how many of its chunks had
        #: been given out by ``ahead``.
        self.helped = False
        self.reused = 0

    def _helpers(self) -> int:
        """How many workers to give chunks to now."""
        if self.count <= 0:
            return 0
        spare = self._spare.cores(w.process.pid for w in self._all)
        if spare is not None:  # else: as decided last, for want of a new reading
            self._use = spare >= SPARE_CORES
        return self.count if self._use else 0

    def _drain(self, shared: _Shared) -> None:
        """Hand one worker the chunks at the front until none is left, ``IN_FLIGHT`` at a
        time, so that it has the next one as soon as it answers one."""
        worker = self._idle.get()
        sent: collections.deque[int] = collections.deque()
        try:
            while True:
                while len(sent) < IN_FLIGHT and (item := shared.take_first()) is not None:
                    index, chunk = item
                    try:
                        worker.send(*chunk)
                    except OSError as exc:  # it is gone: raised where the chunk's turn comes
                        shared.put(index, exc)
                    else:
                        sent.append(index)
                if not sent:
                    break
                index = sent.popleft()
                try:
                    outcome: Entries | Exception = worker.receive()
                except Exception as exc:  # likewise
                    outcome = exc
                shared.put(index, outcome)
        finally:
            self._idle.put(worker)

    def _start(self, shared: _Shared, drains: int) -> None:
        if self._threads is None:
            self._all = [_Worker() for _ in range(self.count)]
            for worker in self._all:
                self._idle.put(worker)
            self._threads = ThreadPoolExecutor(self.count, thread_name_prefix="al-terms")
        for _ in range(drains):
            self._threads.submit(self._drain, shared)

    def map(self, work: Sequence[Chunk]) -> Iterator[Entries]:
        """The entries of each tenant's rows in ``work``, a chunk at a time, in order.

        The workers take the chunks from the first on; the calling thread, while the chunk
        it is to give next is still being computed, computes the last one no worker took.
        So the chunks are shared out by how fast each side goes, and the caller writes one
        chunk's entries while the workers compute the next ones. Chunks given out by
        ``ahead`` that begin ``work`` are not computed again."""
        chunks = _chunks(work)
        ahead, self._ahead = self._ahead, None
        helpers = self._helpers() if len(chunks) > 1 else 0
        self.helped = helpers > 0
        taken = len(ahead.signatures) if ahead is not None else 0
        if ahead is not None and (
            not helpers or [_signature(c) for c in chunks[:taken]] != ahead.signatures
        ):
            ahead.drop()
            ahead = None
        self.reused = taken if ahead is not None else 0
        if not helpers:
            for chunk in chunks:
                yield _computed(*chunk)
            return
        if ahead is None:
            shared = _Shared(chunks)
        else:
            shared = ahead
            shared.extend(chunks[taken:])
        self._start(shared, min(helpers, len(chunks) - 1))
        try:
            for index in range(len(chunks)):
                yield shared.result(index)
        finally:
            shared.drop()

    def ahead(self, work: Sequence[Chunk]) -> None:
        """Have the workers start on ``work``, the rows the caller expects its next ``map``
        to begin with, while it finishes this one (the indexer: while it commits a round).
        Only while the workers are in use; a ``map`` that begins otherwise drops them."""
        if self._ahead is not None:
            self._ahead.drop()
            self._ahead = None
        chunks = _chunks(work)
        if self.helped and chunks:
            self._ahead = _Shared(chunks)
            self._start(self._ahead, min(self.count, len(chunks)))

    def close(self, timeout: float = 5.0) -> None:
        if self._ahead is not None:
            self._ahead.drop()
            self._ahead = None
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
    collect_less()  # as its indexer does
    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    # The requests are read as they come, while one is computed: the indexer may send the
    # next one before it reads an answer.
    pending: queue.SimpleQueue[tuple[bytes, bytes] | None] = queue.SimpleQueue()

    def read() -> None:
        while (head := _receive(requests)) is not None and (
            bodies := _receive(requests)
        ) is not None:
            pending.put((head, bodies))
        pending.put(None)

    threading.Thread(target=read, name="al-terms-requests", daemon=True).start()
    while (request := pending.get()) is not None:
        head, bodies = request
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

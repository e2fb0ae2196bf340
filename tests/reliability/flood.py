"""A flood of write requests at a server on 127.0.0.1, far beyond what it can commit.

``flood`` opens ``connections`` keep-alive connections at once (asyncio, plain HTTP/1.1 over
sockets, so the client costs little next to the server) and on each sends one request after
another: the same prepared bytes, until ``seconds`` have passed or ``requests_per_connection``
were sent. Every answer is counted by status, with its latency and whether a refusal (429 or
503) carried ``Retry-After``. A connection that fails is counted and opened again. Bounded in
count and time, it stops by itself.

``bench/overload.py`` runs it for long and reports the figures; ``test_overload.py`` runs it
briefly and holds the answers to API.md §2.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import orjson

CONNECT_TIMEOUT = 10.0
ANSWER_TIMEOUT = 60.0


def post_request(
    port: int, token: str, body: bytes, content_type: str = "application/json"
) -> bytes:
    """The bytes of one ``POST /v1/events``, kept alive."""
    head = (
        f"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def batch_body(events: int, tag: str = "flood", pad: int = 0) -> bytes:
    """A JSON array of ``events`` ~200-byte events without ids (each stored anew), each
    ``pad`` bytes longer if asked."""
    extra = {"pad": "x" * pad} if pad else {}
    return orjson.dumps(
        [
            {
                "type": "flood.test",
                "actor": f"user-{i % 97}",
                "data": {
                    "tag": tag,
                    "n": i,
                    "note": "an event of a flood far beyond capacity",
                    **extra,
                },
            }
            for i in range(events)
        ]
    )


def single_body(tag: str = "flood") -> bytes:
    """One such event, as a JSON object."""
    return batch_body(1, tag)[1:-1]


@dataclass
class FloodResult:
    """What came back: counts by status, latencies by status (seconds), and failures."""

    statuses: Counter[int] = field(default_factory=Counter)
    latencies: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))
    refusals_without_retry_after: int = 0
    connection_errors: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    events_per_request: int = 1

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[bytes, bytes]]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        if b":" in line:
            name, value = line.split(b":", 1)
            headers[name.strip().lower()] = value.strip()
    if b"content-length" in headers:
        await reader.readexactly(int(headers[b"content-length"]))
    elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status, headers


async def _connection(
    port: int, request: bytes, deadline: float, limit: int, result: FloodResult
) -> None:
    sent = 0
    while sent < limit and time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port), CONNECT_TIMEOUT
            )
        except (OSError, TimeoutError) as exc:
            result.connection_errors[type(exc).__name__] += 1
            await asyncio.sleep(0.05)
            sent += 1
            continue
        try:
            while sent < limit and time.monotonic() < deadline:
                started = time.perf_counter()
                sent += 1
                writer.write(request)
                await writer.drain()
                status, headers = await asyncio.wait_for(_read_answer(reader), ANSWER_TIMEOUT)
                result.statuses[status] += 1
                result.latencies[status].append(time.perf_counter() - started)
                if status in (429, 503) and not headers.get(b"retry-after", b"").isdigit():
                    result.refusals_without_retry_after += 1
                if headers.get(b"connection", b"").lower() == b"close":
                    break
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            result.connection_errors[type(exc).__name__] += 1
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def flood_async(
    port: int,
    request: bytes,
    connections: int,
    seconds: float,
    requests_per_connection: int = 1_000_000,
    events_per_request: int = 1,
) -> FloodResult:
    result = FloodResult(events_per_request=events_per_request)
    started = time.monotonic()
    deadline = started + seconds
    await asyncio.gather(
        *(
            _connection(port, request, deadline, requests_per_connection, result)
            for _ in range(connections)
        )
    )
    result.seconds = time.monotonic() - started
    return result


def flood(
    port: int,
    request: bytes,
    connections: int,
    seconds: float,
    requests_per_connection: int = 1_000_000,
    events_per_request: int = 1,
) -> FloodResult:
    """Run a flood to its end (``seconds``, or every connection's request budget)."""
    return asyncio.run(
        flood_async(
            port, request, connections, seconds, requests_per_connection, events_per_request
        )
    )


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` quantile of ``values`` (nearest rank); 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]

"""Live streams across three ``auditlog serve`` processes on one PostgreSQL schema.

Writers post through two of the processes while streams are open on the third (and one on a
writing process): each stream receives what all of them committed, in seq order, without a
gap or a repeat. The process with the streams polls the durable heads only every ten minutes,
so what the others commit reaches it by their announcements (NOTIFY). A reader that hops
from process to process, reconnecting each time with ``Last-Event-ID``, also ends up with the
whole log.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import pgtest
from eventstream import WAIT, EventStream, Message
from live_server import Server, Storage, create_key

pytestmark = pytest.mark.slow

REQUEST_TIMEOUT = 30.0
WRITERS_PER_SERVER = 2
REQUESTS = 40  # per writer: about 4,000 events in all


@contextlib.contextmanager
def servers(storage: Storage, logs: Path) -> Iterator[list[Server]]:
    """Three servers on ``storage``; the first learns others' heads only from announcements."""
    common = ("--no-audit-reads", "--live-stream-keepalive-seconds", "1")
    started: list[Server] = []
    try:
        started.append(
            Server(storage, logs / "serve0.log", *common, "--notifier-poll-ms", "600000")
        )
        for number in (1, 2):
            started.append(Server(storage, logs / f"serve{number}.log", *common))
        for server in started:
            server.wait_ready()
        yield started
    finally:
        for server in started:
            server.stop()


#: Times a write answered 503 is sent again before the writer gives up.
OVERLOAD_RETRIES = 5


def write(url: str, token: str, seed: int, failures: list[str]) -> None:
    rng = random.Random(seed)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=REQUEST_TIMEOUT) as http:
            for n in range(REQUESTS):
                size = rng.choice((1, 1, 3, 20, 100, 250))
                events = [
                    {"type": f"w.{rng.randrange(3)}", "data": {"writer": seed, "n": n, "i": i}}
                    for i in range(size)
                ]
                body = events if size > 1 else events[0]
                answer = http.post("/v1/events", json=body)
                # A 503 (the database's connections all busy for postgres_connect_timeout, as
                # on a loaded CI machine) is sent again after its Retry-After, as API.md §6
                # tells a producer to: nothing of a refused request was stored.
                for _ in range(OVERLOAD_RETRIES):
                    if answer.status_code != 503:
                        break
                    time.sleep(min(2.0, float(answer.headers.get("retry-after", "1"))))
                    answer = http.post("/v1/events", json=body)
                assert answer.status_code == 201, answer.text
    except BaseException as exc:
        failures.append(f"writer {seed}: {exc!r}")
        raise


def listing(http: httpx.Client, params: list[tuple[str, str]]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    query = [*params, ("order", "asc"), ("limit", "1000")]
    for _ in range(1000):
        page = http.get("/v1/events", params=query).json()
        found += page["events"]
        if page["next_cursor"] is None:
            return found
        query = [*params, ("order", "asc"), ("limit", "1000"), ("cursor", page["next_cursor"])]
    raise AssertionError("the listing did not end")


def assert_log(received: list[Message], expected: list[dict[str, Any]]) -> None:
    got = [m.seq for m in received]
    want = [e["seq"] for e in expected]
    assert got == want, (
        f"{len(got)} received, {len(want)} expected; lost {sorted(set(want) - set(got))[:10]},"
        f" repeated {sorted(s for s, n in Counter(got).items() if n > 1)[:10]}"
    )
    assert [m.json() for m in received] == expected


def test_a_stream_on_one_process_sees_what_the_others_write(tmp_path: Path) -> None:
    storage = Storage.at(pgtest.private_url())
    with servers(storage, tmp_path) as (reading, *writing):
        token = create_key(storage)  # seq 0: the key's creation
        watch = EventStream(reading.port, token, [("after_seq", "0")])
        some = EventStream(reading.port, token, [("type", "w.1")])
        beside = EventStream(writing[0].port, token, [("after_seq", "0")])
        streams = [watch, some, beside]
        hopping: list[Message] = []
        try:
            for stream in streams:
                stream.read_until(lambda s: bool(s.messages), what="the opening")
            failures: list[str] = []
            threads = [
                threading.Thread(target=write, args=(server.url, token, seed, failures))
                for seed, server in enumerate(writing * WRITERS_PER_SERVER)
            ]
            for thread in threads:
                thread.start()
            # The hopping reader: a few events from each process in turn, then the next.
            rng = random.Random(1)
            last: str | None = None
            for hop in range(9):
                server = (reading, *writing)[hop % 3]
                params = [("after_seq", "0")] if last is None else []
                with EventStream(server.port, token, params, last) as stream:
                    need = rng.choice((1, 50, 400))
                    stream.read_until(
                        lambda s, need=need: len(s.events()) >= need,
                        what=f"{need} events (hop {hop})",
                    )
                    hopping += stream.events()
                    last = stream.last_id() or last
            for thread in threads:
                thread.join(timeout=REQUEST_TIMEOUT * REQUESTS)
            assert not any(t.is_alive() for t in threads), "a writer did not finish"
            assert not failures, failures
            with httpx.Client(
                base_url=reading.url,
                headers={"Authorization": f"Bearer {token}"},
                timeout=REQUEST_TIMEOUT,
            ) as http:
                log = listing(http, [])
                ones = listing(http, [("type", "w.1")])
            assert [e["seq"] for e in log] == list(range(len(log)))
            last_seq = log[-1]["seq"]
            for stream in (watch, beside):
                stream.read_seq(last_seq, timeout=WAIT * 2)
                assert_log(stream.events(), log[1:])
            some.read_seq(ones[-1]["seq"])
            assert_log(some.events(), ones)
            with EventStream(reading.port, token, last_event_id=last) as stream:
                stream.read_seq(last_seq)
                hopping += stream.events()
            assert_log(hopping, log[1:])
            # A replay of the whole log through a filter (the store's indexes, which the
            # indexer may not have caught up with yet).
            with EventStream(reading.port, token, [("after_seq", "0"), ("type", "w.1")]) as again:
                again.read_seq(ones[-1]["seq"])
                assert_log(again.events(), ones)
        finally:
            for stream in streams:
                stream.close()

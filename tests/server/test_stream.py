"""``GET /v1/events/stream`` (API.md §10) against a real ``auditlog serve``.

Streams are read over plain sockets (``eventstream``), so a test sees each SSE message, how the
response ended, and can stop reading as a slow reader would. Most tests share one server
(``--live-stream-keepalive-seconds 1``, reads not audited), each in a tenant of its own; the
caps, the shutdown and the slow reader have servers of their own. The tenant's log begins with
the record of its key's creation (seq 0), so streams that start at the beginning ask for
``after_seq=0``.

What is received is checked against the log itself (the listing of ``GET /v1/events``): each
event once, in seq order, with the stored bytes, and nothing else. Every wait is bounded;
nothing here measures speed.
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from eventstream import WAIT, EventStream, Message
from live_server import Server, create_key, serving

pytestmark = pytest.mark.slow

REQUEST_TIMEOUT = 30.0
SEAM = 2000  # live.REPLAY_SEAM: a replay longer than this pages before it subscribes


@dataclass
class Shared:
    server: Server
    data: Path
    tenants: Iterator[int]

    keys: dict[str, str] = field(default_factory=dict)

    def tenant(self, scopes: str = "events:write,events:read") -> tuple[str, str]:
        """A new tenant of its own and a key of it."""
        name = f"t{next(self.tenants)}"
        return name, create_key(self.data, name, scopes)

    def key(self, scopes: str) -> str:
        """A key with ``scopes`` of a tenant where nothing is written, made once."""
        if scopes not in self.keys:
            self.keys[scopes] = create_key(self.data, "quiet", scopes)
        return self.keys[scopes]


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    tmp = tmp_path_factory.mktemp("stream")
    data = tmp / "data"
    flags = ("--no-audit-reads", "--live-stream-keepalive-seconds", "1")
    with serving(data, tmp / "serve.log", *flags) as server:
        yield Shared(server, data, itertools.count())


def client(server: Server, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=REQUEST_TIMEOUT
    )


def post(http: httpx.Client, body: Any) -> list[int]:
    """Write one event or a batch; the seqs given."""
    response = http.post("/v1/events", json=body)
    assert response.status_code in (200, 201), response.text
    if isinstance(body, list):
        return [e["seq"] for e in response.json()["events"]]
    return [response.json()["seq"]]


def batch(n: int, tag: str, **fields: Any) -> list[dict[str, Any]]:
    return [{"type": f"{tag}.{i % 3}", "data": {"i": i, "tag": tag}, **fields} for i in range(n)]


def listing(http: httpx.Client, params: Sequence[tuple[str, str]] = ()) -> list[dict[str, Any]]:
    """Every event of the tenant matching ``params``, ascending, through the pages."""
    found: list[dict[str, Any]] = []
    query = [*params, ("order", "asc"), ("limit", "1000")]
    for _ in range(10_000):
        page = http.get("/v1/events", params=query)
        assert page.status_code == 200, page.text
        found += page.json()["events"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return found
        query = [*params, ("order", "asc"), ("limit", "1000"), ("cursor", cursor)]
    raise AssertionError("the listing did not end")


def check_frames(messages: Sequence[Message]) -> None:
    """Each event message as §10 has it: its seq as the id, ``audit``, the stored event."""
    for message in messages:
        assert message.event == "audit"
        event = message.json()
        assert message.id == str(event["seq"])
        # The stored event, byte for byte: canonical JSON with no line break in it.
        assert b"\n" not in (message.data or b"")


def assert_log(received: Sequence[Message], expected: Sequence[dict[str, Any]]) -> None:
    """``received`` is ``expected`` (from the listing): the same events, in the same order."""
    check_frames(received)
    got = [m.seq for m in received]
    want = [e["seq"] for e in expected]
    if got != want:
        lost = sorted(set(want) - set(got))
        extra = sorted(set(got) - set(want))
        repeated = sorted(s for s, n in Counter(got).items() if n > 1)
        raise AssertionError(
            f"{len(got)} events received, {len(want)} expected; lost {lost[:10]}, not "
            f"expected {extra[:10]}, repeated {repeated[:10]}, in order: {got == sorted(got)}"
        )
    assert [m.json() for m in received] == list(expected)


# -- what comes, in what order ----------------------------------------------------------------


def test_events_posted_after_connecting_arrive_in_order(shared: Shared) -> None:
    tenant, token = shared.tenant()
    with client(shared.server, token) as http:
        post(http, {"type": "before"})  # before the stream: not sent
        with EventStream(shared.server.port, token) as stream:
            # Where it begins is fixed once the answer's head is out: what is written after
            # that comes, even before the first message has.
            assert stream.status == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            assert stream.headers["cache-control"] == "no-store"
            answers = [
                http.post("/v1/events", json={"type": "one", "data": {"n": n}}) for n in range(5)
            ]
            seqs = [a.json()["seq"] for a in answers]
            seqs += post(http, batch(40, "many"))
            seqs += post(http, {"type": "last"})
            stream.read_seq(seqs[-1])
            assert stream.messages[0].retry == 2000
            assert stream.seqs() == seqs == list(range(2, 48))
            # A single event's data is the very bytes its 201 answered.
            assert [m.data for m in stream.events()[:5]] == [a.content for a in answers]
            assert_log(stream.events(), listing(http)[2:])
            assert stream.events()[0].json()["tenant"] == tenant


def test_the_first_block_tells_where_the_stream_begins(shared: Shared) -> None:
    _, token = shared.tenant()
    with client(shared.server, token) as http:
        old = post(http, batch(3, "old"))
        with EventStream(shared.server.port, token) as stream:
            stream.read_until(lambda s: bool(s.messages), what="the first block")
            first = stream.messages[0]
            assert (first.retry, first.id, first.data) == (2000, str(old[-1]), None)
            assert stream.events() == []
        # Cut off before any event came: the block's id is where a reconnection resumes, and
        # what was written meanwhile comes.
        seqs = post(http, batch(2, "gap"))
        with EventStream(shared.server.port, token, last_event_id=first.id) as again:
            again.read_seq(seqs[-1])
            assert again.seqs() == seqs


def test_after_seq_and_last_event_id_replay_then_go_live(shared: Shared) -> None:
    _, token = shared.tenant()
    with client(shared.server, token) as http:
        post(http, batch(30, "old"))  # seqs 1-30
        with (
            EventStream(shared.server.port, token, [("after_seq", "10")]) as by_param,
            EventStream(shared.server.port, token, last_event_id="20") as by_header,
            # The header wins over the parameter: it is what the reader last received.
            EventStream(shared.server.port, token, [("after_seq", "3")], "25") as both,
            # A position past the head: nothing until the log passes it.
            EventStream(shared.server.port, token, [("after_seq", "33")]) as ahead,
        ):
            by_param.read_seq(30)
            by_header.read_seq(30)
            both.read_seq(30)
            new = post(http, batch(5, "new"))  # seqs 31-35
            for stream in (by_param, by_header, both, ahead):
                stream.read_seq(new[-1])
            log = listing(http)
            assert_log(by_param.events(), log[11:])
            assert_log(by_header.events(), log[21:])
            assert_log(both.events(), log[26:])
            assert_log(ahead.events(), log[34:])


def test_a_long_replay_pages_then_goes_live_at_the_seam(shared: Shared) -> None:
    """More than a seam's worth of events behind the head: the replay pages through them
    (with and without a filter that skips most), subscribes, replays the rest, goes live."""
    _, token = shared.tenant()
    with client(shared.server, token) as http:
        for round_ in range(5):
            post(http, batch(SEAM // 4 + 101, f"r{round_}"))
        with (
            EventStream(shared.server.port, token, [("after_seq", "0")]) as everything,
            EventStream(shared.server.port, token, [("after_seq", "0"), ("type", "r2.1")]) as some,
        ):
            head = listing(http)[-1]["seq"]
            everything.read_seq(head, timeout=WAIT * 2)
            tail = post(http, batch(30, "r2"))
            everything.read_seq(tail[-1])
            some.read_seq(tail[-2])  # the last r2.1 of the tail
            assert_log(everything.events(), listing(http)[1:])
            assert_log(some.events(), listing(http, [("type", "r2.1")]))


def test_filters_give_exactly_the_matching_events(shared: Shared) -> None:
    _, token = shared.tenant()
    filters: list[list[tuple[str, str]]] = [
        [("type", "a.1")],
        [("type", "a.1"), ("type", "a.2")],
        [("type[in]", "a.0,a.1"), ("actor", "bob")],
        [("data.i[gte]", "150")],
        [("q", "carol")],
        [("outcome", "failure"), ("source[prefix]", "sv")],
        [("type", "nothing")],
    ]
    rng = random.Random(3)
    with client(shared.server, token) as http:
        streams = [EventStream(shared.server.port, token, f) for f in filters]
        try:
            for stream in streams:
                stream.read_until(lambda s: bool(s.messages), what="the opening")
            for round_ in range(20):
                events = [
                    {
                        "type": f"a.{rng.randrange(3)}",
                        "actor": rng.choice(("alice", "bob", "carol")),
                        "source": rng.choice(("svc", "sv-2", "web")),
                        "outcome": rng.choice(("success", "failure")),
                        "data": {"i": round_ * 10 + i},
                    }
                    for i in range(10)
                ]
                post(http, events if round_ % 2 else events[0])
            # Last, an event every filter but the last matches, to know when all is in.
            last = post(
                http,
                {
                    "type": "a.1",
                    "actor": "bob",
                    "source": "sv-9",
                    "outcome": "failure",
                    "data": {"i": 999, "who": "carol"},
                },
            )[0]
            for stream, params in zip(streams[:-1], filters[:-1], strict=True):
                stream.read_seq(last)
                assert_log(stream.events(), listing(http, params))
            # The one that matches nothing has been offered the last event too, before its
            # next keep-alive went out (and the one after is later still): none came.
            nothing = streams[-1]
            nothing.read_until(lambda s: True)
            seen = len(nothing.comments())
            nothing.read_until(lambda s: len(s.comments()) >= seen + 2, what="two keep-alives")
            assert nothing.events() == []
        finally:
            for stream in streams:
                stream.close()


def test_a_keepalive_comment_comes_when_nothing_else_does(shared: Shared) -> None:
    _, token = shared.tenant()
    with EventStream(shared.server.port, token) as stream:
        stream.read_until(lambda s: "keep-alive" in s.comments(), what="a keep-alive")
        assert stream.events() == []


# -- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "last_event_id", "named"),
    [
        ([("cursor", "abc")], None, "cursor"),
        ([("limit", "10")], None, "limit"),
        ([("order", "asc")], None, "order"),
        ([("after_seq", "x")], None, "after_seq"),
        ([("after_seq", "1"), ("after_seq", "2")], None, "after_seq"),
        ([("nope", "1")], None, "nope"),
        ([], "abc", "Last-Event-ID"),
        ([], "-1", "Last-Event-ID"),
        ([], "1.5", "Last-Event-ID"),
        ([], "99999999999999999999", "Last-Event-ID"),
        ([], "", "Last-Event-ID"),
    ],
)
def test_bad_requests_are_refused_naming_the_parameter(
    shared: Shared, params: list[tuple[str, str]], last_event_id: str | None, named: str
) -> None:
    token = shared.key("events:read")
    with EventStream(shared.server.port, token, params, last_event_id) as stream:
        assert stream.status == 400, stream.body
        assert stream.headers["content-type"] == "application/problem+json"
        assert named in stream.problem()["detail"]


def test_a_stream_needs_events_read(shared: Shared) -> None:
    writer = shared.key("events:write")
    with EventStream(shared.server.port, writer) as stream:
        assert stream.status == 403, stream.body
        assert "events:read" in stream.problem()["detail"]
    with EventStream(shared.server.port, None) as stream:
        assert stream.status == 401, stream.body


def test_caps_per_credential_and_per_process_answer_429(tmp_path: Path) -> None:
    data = tmp_path / "data"
    keys = [create_key(data, "t") for _ in range(3)]
    flags = ("--no-audit-reads", "--live-streams-per-credential", "2")
    with serving(data, tmp_path / "serve.log", *flags, "--live-streams-per-process", "3") as server:
        held = [EventStream(server.port, keys[0]) for _ in range(2)]
        try:
            assert [s.status for s in held] == [200, 200]
            with EventStream(server.port, keys[0]) as refused:
                assert refused.status == 429, refused.body
                assert int(refused.headers["retry-after"]) >= 1
                assert "credential" in refused.problem()["detail"]
            held.append(EventStream(server.port, keys[1]))
            assert held[-1].status == 200
            with EventStream(server.port, keys[2]) as refused:
                assert refused.status == 429, refused.body
                assert int(refused.headers["retry-after"]) >= 1
                assert "server" in refused.problem()["detail"]
            # A stream closed gives its place back (once the server has noticed).
            held.pop(0).close()
            again = reopen(server.port, keys[2])
            held.append(again)
            assert again.status == 200
            metrics = httpx.get(f"{server.url}/metrics", timeout=REQUEST_TIMEOUT).text
            assert 'auditlog_live_streams_refused_total{cap="credential"} 1.0' in metrics
            assert 'auditlog_live_streams_refused_total{cap="server"}' in metrics
            assert "auditlog_live_streams 3.0" in metrics
        finally:
            for stream in held:
                stream.close()


def reopen(port: int, token: str) -> EventStream:
    """A stream opened once a place is free (bounded: the server notices a close at once)."""
    for _ in range(200):
        stream = EventStream(port, token)
        if stream.status == 200:
            return stream
        assert stream.status == 429, stream.body
        stream.close()
        time.sleep(0.05)
    raise AssertionError("no place came free")


# -- reconnecting -----------------------------------------------------------------------------


class Writers:
    """Threads that post singles and batches until stopped."""

    def __init__(self, server: Server, token: str, count: int) -> None:
        self._server = server
        self._token = token
        self._stop = threading.Event()
        self.failures: list[str] = []
        self.posted = 0
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(n,), name=f"writer-{n}") for n in range(count)
        ]

    def __enter__(self) -> Writers:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=REQUEST_TIMEOUT * 2)
        assert not any(t.is_alive() for t in self._threads), "a writer did not stop"
        assert not self.failures, self.failures

    def _run(self, number: int) -> None:
        rng = random.Random(number)
        try:
            with client(self._server, self._token) as http:
                while not self._stop.is_set():
                    size = rng.choice((1, 1, 5, 40, 200))
                    events = batch(size, f"w{number}")
                    seqs = post(http, events if size > 1 else events[0])
                    with self._lock:
                        self.posted += len(seqs)
        except BaseException as exc:
            self.failures.append(f"writer {number}: {exc!r}")
            raise


def test_reconnecting_with_last_event_id_loses_and_repeats_nothing(shared: Shared) -> None:
    """A reader cut off (it closes, mid-message or not) reconnects with the last id it got,
    again and again, while writers post all the time; sometimes it stays away long enough
    for a long replay. What it received, all connections together, is the log."""
    _, token = shared.tenant()
    rng = random.Random(7)
    received: list[Message] = []
    last: str | None = None
    with Writers(shared.server, token, 3) as writers:
        for cut in range(14):
            params = [("after_seq", "0")] if last is None else []
            with EventStream(shared.server.port, token, params, last) as stream:
                need = rng.choice((1, 20, 300, 1500))
                stream.read_until(
                    lambda s, need=need: len(s.events()) >= need,
                    what=f"{need} events (connection {cut})",
                )
                received += stream.events()
                last = stream.last_id() or last
            if cut % 4 == 3:
                # Stay away until more than a seam of events is behind.
                target = writers.posted + SEAM + 500
                for _ in range(600):
                    if writers.posted >= target:
                        break
                    time.sleep(0.05)
        writers.stop()
    with client(shared.server, token) as http:
        log = listing(http)
        with EventStream(shared.server.port, token, last_event_id=last) as stream:
            stream.read_seq(log[-1]["seq"])
            received += stream.events()
    assert len(log) > 3000  # the reconnections met writes and long replays
    assert_log(received, log[1:])


# -- shutdown ---------------------------------------------------------------------------------


def test_sigterm_ends_open_streams_at_once(tmp_path: Path) -> None:
    """SIGTERM with streams open: one live, one idle, one in a long replay, and one whose
    reader has stopped reading with its buffers full. Each ends (the replay between two
    pages, not at its end), the server exits 0 long before its graceful shutdown timeout
    would have let it, and the streams that read are told why they end."""
    data = tmp_path / "data"
    token = create_key(data)
    # A buffer larger than what is posted: the reader that stops is not cut off for it.
    flags = ("--no-audit-reads", "--shutdown-timeout", "600")
    flags += ("--live-stream-buffer-bytes", "64000000")
    with serving(data, tmp_path / "serve.log", *flags) as server, client(server, token) as http:
        middle = {"type": "history", "data": {"pad": "h" * 6000}}
        for _ in range(12):  # 6,000 events, 36 MB: twelve pages to replay
            post(http, [middle] * 500)
        live = EventStream(server.port, token)
        idle = EventStream(server.port, token, [("type", "never")])
        stuck = EventStream(server.port, token, receive_buffer=4096)
        replaying = EventStream(server.port, token, [("after_seq", "0")], receive_buffer=4096)
        streams = (live, idle, stuck, replaying)
        try:
            for stream in streams:
                stream.read_until(lambda s: bool(s.messages), what="the opening")
            big = {"type": "big", "data": {"pad": "x" * 60_000}}
            seqs: list[int] = []
            for _ in range(10):  # 12 MB: more than the socket buffers hold
                seqs += post(http, [big] * 20)
                live.read_seq(seqs[-1])
            os.kill(server.process.pid, signal.SIGTERM)
            for stream in (live, idle, replaying):
                stream.read_to_end()
                assert stream.complete, stream
                assert any("shutting down" in c for c in stream.comments()), stream
            assert server.process.wait(timeout=WAIT) == 0
            assert live.seqs() == seqs
            # The replay stopped between two pages: what came is the log's beginning.
            assert replaying.seqs() == list(range(1, len(replaying.seqs()) + 1))
            assert 0 < len(replaying.seqs()) < 6000
            check_frames(replaying.events())
            stuck.read_to_end()  # what the server had sent, then the end
            assert not stuck.complete
        finally:
            for stream in streams:
                stream.close()


# -- a reader too slow ------------------------------------------------------------------------

BIG = {"type": "big", "data": {"pad": "x" * 60_000}}
BIG_BATCH = 50  # 3 MB a request
#: Requests while the slow reader does not read: about 120 MB, which a server holding it all
#: for the reader would hold on top of what it needs to take the writes.
SLOW_ROUNDS = 40
#: Growth of the server's peak memory allowed while the slow reader is cut off: well above
#: what taking the writes costs after the warm-up, far below what keeping them would.
SLOW_GROWTH_KIB = 48 * 1024


def test_a_slow_reader_is_cut_off_and_resumes_with_last_event_id(tmp_path: Path) -> None:
    """A reader that stops reading while a writer posts large events is cut off, the server's
    memory does not grow with what it was not sent, and the reader, reconnecting with the
    last id it received, gets everything after it: nothing lost, nothing twice."""
    data = tmp_path / "data"
    token = create_key(data)
    # A small SQLite page cache: the connections' caches fill as the log grows (64 MiB each
    # by default), which would be growth too.
    flags = ("--no-audit-reads", "--live-stream-buffer-bytes", "65536", "--sqlite-cache-mb", "2")
    with serving(data, tmp_path / "serve.log", *flags) as server, client(server, token) as http:
        # The warm-up: the same writes with a reader that keeps up, so that the peak so far
        # includes what taking them costs.
        with EventStream(server.port, token) as keeping_up:
            for _ in range(6):
                keeping_up.read_seq(post(http, [BIG] * BIG_BATCH)[-1])
        baseline = server.peak_rss_kib()
        with EventStream(server.port, token, receive_buffer=4096) as slow:
            slow.read_until(lambda s: bool(s.messages), what="the opening")
            posted: list[int] = []
            for _ in range(SLOW_ROUNDS):
                posted += post(http, [BIG] * BIG_BATCH)
            growth = server.peak_rss_kib() - baseline
            slow.read_to_end()  # what it had been sent, then the end
            assert not slow.complete or "too slow" in " ".join(slow.comments()), slow
        assert growth < SLOW_GROWTH_KIB, f"peak memory grew {growth} KiB"
        metrics = httpx.get(f"{server.url}/metrics", timeout=REQUEST_TIMEOUT).text
        assert "auditlog_live_streams_cut_total 1.0" in metrics
        assert "auditlog_live_streams 0.0" in metrics
        assert slow.seqs() == posted[: len(slow.seqs())]
        assert len(slow.seqs()) < len(posted)
        with EventStream(server.port, token, last_event_id=slow.last_id()) as again:
            again.read_seq(posted[-1], timeout=WAIT * 2)
            assert slow.seqs() + again.seqs() == posted
            check_frames(again.events())

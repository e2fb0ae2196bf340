"""``auditlog tail``: the real command, in a subprocess (it runs until interrupted), against a
fake stream route on 127.0.0.1 (``tests/cli/fakeapi.py``) that cuts connections mid-event,
ends streams, refuses with ``429``, and sends events again; and the event-stream parser over
every way the bytes can arrive.

What is checked: each event printed once, in order, none lost; the ``Last-Event-ID`` of every
reconnection; Ctrl-C ends it quietly with status 0. Last, the same against a real
``auditlog serve`` (replay, a cut connection, then live events).
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import httpx
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

import live_server
from auditlog.cli.main import main
from auditlog.cli.tail import EventStreamParser, ServerEvent
from cli.fakeapi import Refuse, Send, StreamRoute, awkward_events, cutting, serving

PATH = "/v1/events/stream"
TOKEN = "alk_secretsecretsecret_tokentokentokentokentokentokentokentoke"
WAIT = 30.0  # seconds for any one line of output, or for the process to exit


def environment() -> dict[str, str]:
    proxies = {"http_proxy", "https_proxy", "all_proxy"}
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AUDITLOG_") and k.lower() not in proxies
    }


class Tail:
    """``auditlog tail`` in a subprocess, its standard output read line by line."""

    def __init__(self, *argv: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "auditlog", "tail", *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environment(),
        )
        self.lines: queue.Queue[bytes] = queue.Queue()
        assert self.process.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self.process.stdout,))
        self._reader.start()

    def _read(self, stream: IO[bytes]) -> None:
        for line in stream:
            self.lines.put(line)

    def read_lines(self, count: int) -> list[bytes]:
        found = []
        for _ in range(count):
            try:
                found.append(self.lines.get(timeout=WAIT))
            except queue.Empty:
                raise AssertionError(
                    f"{len(found)} lines of {count} within {WAIT} s: {found}"
                ) from None
        return found

    def interrupt(self) -> tuple[int, bytes]:
        """Ctrl-C: the exit status and standard error."""
        self.process.send_signal(signal.SIGINT)
        return self.wait()

    def wait(self) -> tuple[int, bytes]:
        code = self.process.wait(timeout=WAIT)
        self._reader.join(timeout=WAIT)
        assert self.process.stderr is not None
        return code, self.process.stderr.read()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=WAIT)
        self._reader.join(timeout=WAIT)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@contextmanager
def tailing(url: str, *argv: str, token: str = TOKEN) -> Iterator[Tail]:
    tail = Tail("--url", url, "--token", token, *argv)
    try:
        yield tail
    finally:
        tail.stop()


def printed(events: Sequence[dict[str, Any]]) -> list[bytes]:
    return [orjson.dumps(e) + b"\n" for e in events]


# -- reconnections -------------------------------------------------------------------------


def test_every_event_once_in_order_across_cuts_ends_refusals_and_repeats() -> None:
    events = awkward_events(30)
    plan: list[Send | Refuse] = [
        Send(4, then="cut"),  # seq 5..8, then a cut inside seq 9
        Refuse(429, "too many open streams", retry_after="0"),
        Send(3, then="end"),  # seq 9..11, then the server ends the stream (a slow reader)
        Send(5, then="cut", rewind=2),  # seq 10..14 (10 and 11 again), cut inside 15
        Send(then="hold", rewind=1),  # seq 14.., then keep-alives
    ]
    route = StreamRoute(events, now=20, plan=plan)
    with serving((PATH, route)) as api, tailing(api.url, "--after-seq", "4") as tail:
        lines = tail.read_lines(25)
        code, err = tail.interrupt()
        requests = api.requests(PATH)
    assert lines == printed(events[5:])
    assert code == 0
    assert b"Traceback" not in err
    assert TOKEN.encode() not in err
    assert [(s.param("after_seq"), s.headers.get("last-event-id")) for s in requests] == [
        ("4", None),
        (None, "8"),
        (None, "8"),
        (None, "11"),
        (None, "14"),
    ]
    assert all(s.headers["accept"] == "text/event-stream" for s in requests)
    assert all(s.headers["authorization"] == f"Bearer {TOKEN}" for s in requests)


def test_without_a_position_it_begins_with_what_is_committed_from_now() -> None:
    events = awkward_events(12)
    route = StreamRoute(events, now=9, plan=[Send(then="hold")])
    with serving((PATH, route)) as api, tailing(api.url, "type=user.login") as tail:
        lines = tail.read_lines(3)
        code, err = tail.interrupt()
        [seen] = api.requests(PATH)
    assert lines == printed(events[9:])
    assert (code, err) == (0, b"")
    assert seen.params == [("type", "user.login")]
    assert "last-event-id" not in seen.headers


@pytest.mark.parametrize(("status", "detail"), [(401, "the token is revoked"), (403, "no scope")])
def test_a_refusal_ends_it_with_the_detail(status: int, detail: str) -> None:
    route = StreamRoute(awkward_events(3), now=0, plan=[Refuse(status, detail)])
    with serving((PATH, route)) as api, tailing(api.url) as tail:
        code, err = tail.wait()
    assert code == 1
    assert f"answered {status}: {detail}".encode() in err
    assert TOKEN.encode() not in err
    assert tail.lines.empty()


def test_it_gives_up_when_asked_to_after_retries() -> None:
    plan: list[Send | Refuse] = [Refuse(503, "overloaded", retry_after="0")] * 3
    route = StreamRoute(awkward_events(3), now=0, plan=plan)
    with serving((PATH, route)) as api, tailing(api.url, "--retries", "2") as tail:
        code, err = tail.wait()
        assert len(api.requests(PATH)) == 3
    assert code == 1
    assert b"gave up after 2 retries" in err


@pytest.mark.parametrize("argv", [["type"], ["=x"], ["after_seq=3"], ["--retries", "-2"]])
def test_bad_usage_is_refused(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert main(["tail", "--url", "http://127.0.0.1:9", "--token", TOKEN, *argv]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("auditlog: tail: ")
    assert TOKEN not in err


# -- the parser ----------------------------------------------------------------------------


def parse(pieces: Sequence[bytes]) -> tuple[list[ServerEvent], EventStreamParser]:
    parser = EventStreamParser()
    events = [e for piece in pieces for e in parser.feed(piece)]
    return events, parser


def test_the_parser_follows_the_event_stream_format() -> None:
    stream = (
        b"\xef\xbb\xbf: a comment\r\n"
        b"retry: 1500\r\n"
        b'id: 1\revent: audit\rdata: {"a":"\xe2\x80\xa8"}\r\r'  # CR line ends; U+2028 is data
        b"data:first\ndata: second\n\n"  # no event type: "message"; the id persists
        b"id: 2\n\n"  # an id alone dispatches nothing, but is the last id now
        b"id\n"  # an empty id resets it
        b"data: x\nunknown: field\n\n"
        b"data: never dispatched\n"
    )
    events, parser = parse([stream])
    assert events == [
        ServerEvent("audit", b'{"a":"\xe2\x80\xa8"}', "1"),
        ServerEvent("message", b"first\nsecond", "1"),
        ServerEvent("message", b"x", ""),
    ]
    assert parser.retry_ms == 1500
    assert parser.last_event_id == ""


def test_the_parser_notes_where_a_pruned_stream_continues() -> None:
    _, parser = parse([b": ping\n: pruned before seq 40\nid: 40\nevent: audit\ndata: {}\n\n"])
    assert parser.pruned_before == 40
    _, parser = parse([b": pruned before seq x\n: pruned\n"])
    assert parser.pruned_before is None


@given(
    seqs=st.lists(st.integers(min_value=0, max_value=10**6), max_size=6),
    line_end=st.sampled_from([b"\n", b"\r", b"\r\n"]),
    cuts=st.lists(st.integers(min_value=0, max_value=500), max_size=12),
)
def test_the_parser_gives_the_same_events_however_the_bytes_arrive(
    seqs: list[int], line_end: bytes, cuts: list[int]
) -> None:
    stream = b"".join(
        line_end.join([b": ping", b"id: %d" % s, b"event: audit", b'data: {"seq":%d}' % s, b""])
        + line_end
        for s in seqs
    )
    pieces, start = [], 0
    for cut in [*sorted(c % (len(stream) + 1) for c in cuts), len(stream)]:
        pieces.append(stream[start:cut])
        start = cut
    events, _ = parse(pieces)
    assert events == [ServerEvent("audit", b'{"seq":%d}' % s, str(s)) for s in seqs]


def test_an_empty_piece_between_the_halves_of_a_crlf_changes_nothing() -> None:
    # The CR ends one piece, an empty read follows, and the LF begins the next: still one
    # line end, not an empty line that would dispatch the event before its data.
    events, _ = parse([b"id: 7\r\nevent: audit\r", b"", b'\ndata: {"seq":7}\r\n\r\n'])
    assert events == [ServerEvent("audit", b'{"seq":7}', "7")]


# -- against the real service --------------------------------------------------------------


def post(url: str, token: str, notes: Sequence[str]) -> None:
    batch = [{"type": "order.placed", "data": {"note": note}} for note in notes]
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
        answer = client.post("/v1/events", json=batch)
        assert answer.status_code == 201, answer.text


@pytest.mark.slow
def test_a_real_tail_through_a_broken_connection(tmp_path: Path) -> None:
    data = tmp_path / "data"
    token = live_server.create_key(data, tenant="acme", scopes="events:write,events:read")
    notes = [e["data"]["note"] for e in awkward_events(8)] * 3
    with live_server.serving(data, tmp_path / "serve.log") as server:
        auth = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=server.url, headers=auth) as client:
            start = len(live_server.all_events(client))  # the key's creation, recorded
        post(server.url, token, notes[:12])
        # The first connection is cut in the middle of the replay of the first 12 events.
        with (
            cutting(server.url, [1500]) as proxy,
            tailing(
                proxy.url, "--after-seq", str(start - 1), "type=order.placed", token=token
            ) as tail,
        ):
            lines = tail.read_lines(12)
            post(server.url, token, notes[12:])  # live, after the reconnection
            lines += tail.read_lines(12)
            code, err = tail.interrupt()
            heads = list(proxy.requests)
        with httpx.Client(base_url=server.url, headers=auth) as client:
            stored = [e for e in live_server.all_events(client) if e["type"] == "order.placed"]
    assert [orjson.loads(line) for line in lines] == stored
    assert code == 0
    assert b"Traceback" not in err
    assert len(heads) >= 2
    assert f"after_seq={start - 1}" in heads[0]
    assert "last-event-id:" in heads[1].lower()

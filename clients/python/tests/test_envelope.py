"""The event as built by ``log``: ids, times, fields, and what is refused at once."""

from __future__ import annotations

import datetime as dt
import json
import os
import warnings

import pytest
from auditlog_client import envelope, new_id
from auditlog_client.sse import EventStreamParser

CROCKFORD = set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")


def test_ids_are_ulids_strictly_increasing() -> None:
    ids = [new_id() for _ in range(10_000)]
    assert all(len(i) == 26 and set(i) <= CROCKFORD for i in ids)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_a_ulid_carries_its_millisecond() -> None:
    before = dt.datetime.now(dt.UTC)
    value = 0
    for char in new_id():
        value = value * 32 + "0123456789ABCDEFGHJKMNPQRSTVWXYZ".index(char)
    made = dt.datetime.fromtimestamp((value >> 80) / 1000, dt.UTC)
    assert abs((made - before).total_seconds()) < 60


def test_a_forked_child_makes_ids_of_its_own() -> None:
    read_end, write_end = os.pipe()
    parent_next = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        try:
            os.write(write_end, json.dumps([new_id() for _ in range(100)]).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    parent_next = [new_id() for _ in range(100)]
    with os.fdopen(read_end, "rb") as pipe:
        child = json.loads(pipe.read())
    os.waitpid(pid, 0)
    assert not set(child) & set(parent_next)


def test_format_time() -> None:
    assert envelope.format_time(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123456Z"
    assert envelope.format_time(0) == "1970-01-01T00:00:00.000000Z"


def test_build_fills_id_and_time_and_only_what_is_given() -> None:
    event = envelope.build("user.login")
    assert set(event) == {"id", "type", "time"}
    full = envelope.build(
        "x",
        actor={"id": "a", "type": "user"},
        subject="s",
        outcome="failure",
        data={"k": [1, "é"]},
        source="svc",
        time=dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.timezone(dt.timedelta(hours=1))),
    )
    assert full["time"] == "2026-01-02T02:04:05.000006Z"
    assert json.loads(envelope.encode(full)) == full
    assert "é".encode() in envelope.encode(full)


def test_a_callers_id_gets_no_time_unless_given_so_a_repeat_is_a_replay() -> None:
    assert "time" not in envelope.build("x", id="job-7")
    assert envelope.build("x", id="job-7", time=1700000000)["time"] == 1700000000


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"type": ""}, ValueError),
        ({"type": "x" * 201}, ValueError),
        ({"type": "x", "id": "has space"}, ValueError),
        ({"type": "x", "id": "x" * 129}, ValueError),
        ({"type": "x", "outcome": "maybe"}, ValueError),
        ({"type": "x", "data": [1]}, TypeError),
        ({"type": "x", "actor": 5}, TypeError),
        ({"type": "x", "time": True}, TypeError),
    ],
)
def test_what_the_service_would_refuse_is_refused_at_once(
    kwargs: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        envelope.build(**kwargs)  # type: ignore[arg-type]


def test_values_json_cannot_hold_are_refused_at_once() -> None:
    with pytest.raises((TypeError, ValueError)):
        envelope.encode(envelope.build("x", data={"s": {1, 2}}))
    with pytest.raises(ValueError, match="JSON"):
        envelope.encode(envelope.build("x", data={"f": float("nan")}))
    itself: dict[str, object] = {}
    itself["me"] = itself
    with pytest.raises(ValueError, match="contains itself"):
        envelope.encode(envelope.build("x", data=itself))


def test_the_encoding_is_json_s_own() -> None:
    event = envelope.build("x", data={"s": 'é ✓ \u2028 " \n', "f": 1.5e-7, "i": 2**63, "l": [None]})
    assert (
        envelope.encode(event)
        == json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
    )


def test_the_event_stream_parser_splits_anywhere() -> None:
    stream = b'retry: 2000\nid: 41\n\nid: 42\nevent: audit\ndata: {"a":1}\n\n: keep-alive\n\r\n'
    for cut in range(len(stream)):
        parser = EventStreamParser()
        events = parser.feed(stream[:cut]) + parser.feed(stream[cut:])
        assert [(e.type, e.data, e.id) for e in events] == [("audit", b'{"a":1}', "42")]
        assert parser.retry_ms == 2000


def test_the_event_stream_parser_keeps_a_crlf_split_by_an_empty_read() -> None:
    stream = b'id: 42\r\nevent: audit\r\ndata: {"a":1}\r\n\r\n'
    for cut in range(len(stream)):
        parser = EventStreamParser()
        events = parser.feed(stream[:cut]) + parser.feed(b"") + parser.feed(stream[cut:])
        assert [(e.type, e.data, e.id) for e in events] == [("audit", b'{"a":1}', "42")]

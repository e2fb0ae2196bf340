"""The check behind the crash, SIGTERM, disk-full tests finds what it is there to find.

A fake server (``httpx.MockTransport``) serves a log made by hand; ``check`` must report each
broken promise: a lost acknowledged event, a batch stored in part, a duplicate, a seq gap,
bytes that differ from the answer, and a refused request that left something behind.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from reliability.ledger import Ledger, Report, Sent, check, split_listing


def stored(marker: str, index: int, seq: int, event_id: str | None = None) -> dict[str, Any]:
    return {
        "id": event_id or f"{marker}.{index}",
        "type": "t",
        "data": {"req": marker, "i": index},
        "tenant": "t",
        "seq": seq,
    }


def single(marker: str, seq: int, status: int | None = 201) -> Sent:
    event = stored(marker, 0, seq)
    sent = Sent(marker, "t", [{"id": event["id"], "type": "t", "data": event["data"]}], False)
    sent.status = status
    sent.body = orjson.dumps(event) if status == 201 else b""
    return sent


def batch(marker: str, first_seq: int, size: int, status: int | None = 201) -> Sent:
    events = [
        {"id": f"{marker}.{i}", "type": "t", "data": {"req": marker, "i": i}} for i in range(size)
    ]
    sent = Sent(marker, "t", events, True)
    sent.status = status
    if status == 201:
        answer = [{"id": e["id"], "seq": first_seq + i} for i, e in enumerate(events)]
        sent.body = orjson.dumps({"events": answer})
    return sent


def run_check(log: list[dict[str, Any]], requests: list[Sent]) -> Report:
    bodies = {e["id"]: orjson.dumps(e) for e in log}

    def serve(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/events":
            content = (
                b'{"events":[' + b",".join(orjson.dumps(e) for e in log) + b'],"next_cursor":null}'
            )
            return httpx.Response(200, content=content)
        event_id = request.url.path.removeprefix("/v1/events/")
        if event_id in bodies:
            return httpx.Response(200, content=bodies[event_id])
        return httpx.Response(404)

    ledger = Ledger()
    for sent in requests:
        ledger.add(sent)
    with httpx.Client(transport=httpx.MockTransport(serve), base_url="http://x") as client:
        return check(ledger, {"t": client})


def honest() -> tuple[list[dict[str, Any]], list[Sent]]:
    requests = [single("a", 0), batch("b", 1, 3), batch("c", 4, 2, status=None)]
    log = [stored("a", 0, 0), *(stored("b", i, 1 + i) for i in range(3))]
    return log, requests


def test_an_intact_log_passes() -> None:
    log, requests = honest()
    report = run_check(log, requests)
    assert report.problems == []
    assert report.acknowledged_events == 4
    assert report.fetched == 1
    assert report.unanswered_requests == 1


@pytest.mark.parametrize(
    ("damage", "counter"),
    [
        (lambda log, reqs: log.pop(0), "lost"),
        (lambda log, reqs: log.append(stored("c", 0, 4)), "partial"),
        (lambda log, reqs: log.append({**log[0], "seq": 4}), "duplicates"),
        (lambda log, reqs: log.append(stored("x", 0, 5)), "seq_gaps"),
        (lambda log, reqs: log[0].update(type="changed"), "changed"),
        (lambda log, reqs: reqs.append(single("d", 4, status=503)) or log.append(stored("d", 0, 4)), "refused_but_stored"),
    ],
    ids=["lost", "partial", "duplicate", "seq-gap", "changed", "refused-but-stored"],
)  # fmt: skip
def test_each_broken_promise_is_reported(damage: Any, counter: str) -> None:
    log, requests = honest()
    damage(log, requests)
    report = run_check(log, requests)
    assert getattr(report, counter) > 0, report
    assert report.problems


def test_a_listing_splits_into_the_exact_bytes_of_each_event() -> None:
    first = '{"a":"Zürich, \\"quoted\\", [x]","n":1.5}'
    second = '{"b":{"c":[1,2,{"d":"}"}]}}'
    body = ('{"events":[' + first + "," + second + '],"next_cursor":"abc"}').encode()
    assert split_listing(body) == ([first.encode(), second.encode()], "abc")
    assert split_listing(b'{"events":[],"next_cursor":null}') == ([], None)

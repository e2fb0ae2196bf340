"""Reading through the client against a real server: every page of a query, one event by
id, the export (resumed after a broken connection, each event once) and the live tail
(reconnecting with Last-Event-ID, nothing missed or repeated)."""

from __future__ import annotations

import pytest
from auditlog_client import Client, NotFoundError

from .conftest import Live
from .transports import Cutting


def test_events_iterates_every_page(live: Live, token: str) -> None:
    with Client(live.url, token) as client:
        ids = [
            client.log("page.test", actor="bob", data={"i": i, "even": i % 2 == 0})
            for i in range(23)
        ]
        client.log("other.test")
        assert client.flush(60)
        assert [e["id"] for e in client.events(type="page.test", page_size=5)] == ids
        newest_first = [e["id"] for e in client.events(type="page.test", order="desc", page_size=4)]
        assert newest_first == ids[::-1]
        even = client.events(type=["page.test", "nothing"], **{"data.even": True, "data.i[lt]": 10})
        assert [e["data"]["i"] for e in even] == [0, 2, 4, 6, 8]
        paired = client.events(filters=[("type", "page.test"), ("data.i[in]", "3,4")])
        assert [e["data"]["i"] for e in paired] == [3, 4]


def test_get_and_not_found(live: Live, token: str) -> None:
    with Client(live.url, token) as client:
        stored = client.log_sync("get.test", id="order:42.a_b-c", data={"k": "v"})
        assert client.get("order:42.a_b-c") == stored
        with pytest.raises(NotFoundError) as missing:
            client.get("no-such-event")
        assert missing.value.status == 404


def test_export_resumes_after_a_broken_connection(live: Live, token: str) -> None:
    transport = Cutting("/v1/events/export", limit=5000, cuts=2)
    with Client(live.url, token, transport=transport) as client:
        ids = [client.log("export.test", data={"i": i, "pad": "y" * 200}) for i in range(100)]
        assert client.flush(60)
        exported = list(client.export(type="export.test"))
        assert [e["id"] for e in exported] == ids  # each once, in order
        assert len(transport.requests) == 3
        resumed = dict(transport.requests[1].url.params)
        assert int(resumed["after_seq"]) < exported[-1]["seq"]
        assert int(resumed["before_seq"]) > exported[-1]["seq"]
        later = list(client.export(type="export.test", after_seq=exported[49]["seq"]))
        assert [e["id"] for e in later] == ids[50:]


def test_export_raw_csv(live: Live, token: str) -> None:
    with Client(live.url, token) as client:
        client.log_sync("csv.test", data={"amount": 5})
        body = b"".join(client.export_raw(format="csv", columns=["data.amount"], type="csv.test"))
        header, row = body.decode().splitlines()
        assert header.startswith("seq,id,time")
        assert header.endswith(",data.amount")
        assert row.endswith(",5")


def test_tail_reconnects_with_last_event_id_and_repeats_nothing(live: Live, token: str) -> None:
    transport = Cutting("/v1/events/stream", limit=900, cuts=1)
    with Client(live.url, token, transport=transport) as client:
        events = [client.log_sync("tail.test", data={"i": i, "pad": "z" * 100}) for i in range(6)]
        seen = []
        for event in client.tail(after_seq=events[0]["seq"], type="tail.test"):
            seen.append(event["id"])
            if len(seen) == 5:
                break
        assert seen == [e["id"] for e in events[1:]]
        assert len(transport.requests) == 2
        assert "last-event-id" in transport.requests[1].headers

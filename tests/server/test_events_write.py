"""``POST /v1/events`` (API.md §1, §2) through the whole application, on every backend."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import anyio
import httpx
import orjson
import pytest

from server.api import TIME, Api, problem
from server.conftest import QUIET

pytestmark = pytest.mark.anyio

STORED_FIELDS = {"id", "type", "time", "actor", "source", "data", "tenant", "seq", "received_at"}


async def test_one_event_is_stored_and_returned(api: Api) -> None:
    sent = {
        "id": "inv-1",
        "type": "invoice.billed",
        "time": "2026-11-27T02:27:53.123456Z",
        "actor": {"id": "alice", "type": "user", "name": "Alice"},
        "subject": {"id": "inv-1", "type": "invoice"},
        "source": "billing",
        "outcome": "success",
        "data": {"amount": 120, "lines": [{"sku": "A1"}], "note": None, "ok": True},
    }
    response = await api.post(sent)
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    assert response.headers["location"] == "/v1/events/inv-1"
    stored = response.json()
    received_at = stored.pop("received_at")
    assert TIME.fullmatch(received_at)
    assert stored == {**sent, "tenant": "acme", "seq": 0}
    # The stored event is what GET answers, byte for byte.
    fetched = await api.client.get(response.headers["location"], headers=api.headers)
    assert fetched.status_code == 200
    assert fetched.content == response.content


async def test_defaults_of_an_event_with_only_a_type(api: Api) -> None:
    stored = await api.create({"type": "user.login"})
    assert set(stored) == STORED_FIELDS
    assert stored["actor"] == {"id": f"key:{api.key_id}", "type": "credential"}
    assert stored["source"] == "producer"  # the key's name
    assert stored["data"] == {}
    assert stored["tenant"] == "acme"
    assert stored["seq"] == 0
    assert TIME.fullmatch(stored["time"])
    assert stored["time"] <= stored["received_at"]
    # A generated id is a ULID, and it finds the event.
    assert len(stored["id"]) == 26
    assert (await api.get(stored["id"])).json() == stored


async def test_the_default_actor_is_the_principal_whoami_names(api: Api) -> None:
    stored = await api.create({"type": "user.login"})
    whoami = await api.client.get("/v1/auth/whoami", headers=api.headers)
    assert stored["actor"]["id"] == whoami.json()["principal"]


async def test_generated_ids_are_distinct_and_seqs_gap_free(api: Api) -> None:
    singles = [await api.create({"type": "t"}) for _ in range(3)]
    batch = await api.create_batch([{"type": "t"} for _ in range(4)])
    ids = [e["id"] for e in singles] + [e["id"] for e in batch]
    assert len(set(ids)) == 7
    assert [e["seq"] for e in singles] + [e["seq"] for e in batch] == list(range(7))


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ({"actor": "alice"}, {"actor": {"id": "alice"}}),
        ({"subject": "inv-1"}, {"subject": {"id": "inv-1"}}),
        ({"time": 1767225600}, {"time": "2026-01-01T00:00:00.000000Z"}),
        ({"time": 1767225600.25}, {"time": "2026-01-01T00:00:00.250000Z"}),
        ({"time": "2026-01-01T01:00:00+01:00"}, {"time": "2026-01-01T00:00:00.000000Z"}),
        ({"time": "2026-01-01T00:00:00Z"}, {"time": "2026-01-01T00:00:00.000000Z"}),
        ({"outcome": "unknown"}, {"outcome": "unknown"}),
        ({"type": "account creation"}, {"type": "account creation"}),
        ({"data": {"city": "Zürich", "n": 1.5}}, {"data": {"city": "Zürich", "n": 1.5}}),
    ],
)
async def test_accepted_forms_are_stored_normalised(
    api: Api, given: dict[str, Any], stored: dict[str, Any]
) -> None:
    event = await api.create({"type": "t", **given})
    assert {k: event[k] for k in stored} == stored


# -- batches ------------------------------------------------------------------------------


async def test_json_array_is_a_batch_answered_in_request_order(api: Api) -> None:
    await api.create({"type": "before"})
    response = await api.post([{"id": "b1", "type": "t"}, {"type": "t"}, {"id": "b3", "type": "u"}])
    assert response.status_code == 201
    assert "location" not in response.headers
    items = response.json()["events"]
    assert [item["seq"] for item in items] == [1, 2, 3]
    assert items[0] == {"id": "b1", "seq": 1}
    assert items[2] == {"id": "b3", "seq": 3}
    assert set(items[1]) == {"id", "seq"}
    stored = await api.everything()
    assert [e["id"] for e in stored[1:]] == [item["id"] for item in items]


@pytest.mark.parametrize(
    "content_type",
    ["application/x-ndjson", "application/x-ndjson; charset=utf-8", "application/ndjson"],
)
async def test_ndjson_is_a_batch(api: Api, content_type: str) -> None:
    body = b'{"id": "n1", "type": "a"}\n\n{"id": "n2", "type": "b"}\r\n{"id": "n3", "type": "c"}'
    response = await api.post_raw(body, content_type)
    assert response.status_code == 201
    assert response.json() == {
        "events": [{"id": "n1", "seq": 0}, {"id": "n2", "seq": 1}, {"id": "n3", "seq": 2}]
    }
    assert [e["type"] for e in await api.everything()] == ["a", "b", "c"]


async def test_one_ndjson_line_is_still_a_batch(api: Api) -> None:
    response = await api.post_raw(b'{"id": "n1", "type": "a"}\n', "application/x-ndjson")
    assert response.status_code == 201
    assert response.json() == {"events": [{"id": "n1", "seq": 0}]}


@pytest.mark.parametrize(
    "content_type", [None, "application/json", "application/json; charset=utf-8"]
)
async def test_json_content_types(api: Api, content_type: str | None) -> None:
    response = await api.post_raw(b'{"type": "a"}', content_type)
    assert response.status_code == 201
    assert response.json()["type"] == "a"


async def test_an_invalid_event_refuses_the_whole_batch(api: Api) -> None:
    response = await api.post(
        [{"id": "ok1", "type": "t"}, {"id": "ok2", "type": "t"}, {"id": "bad", "data": []}]
    )
    doc = problem(response, 422)
    assert {(e["index"], e["field"]) for e in doc["errors"]} == {(2, "type"), (2, "data")}
    assert "event 2" in doc["detail"]
    assert await api.everything() == []
    assert (await api.get("ok1")).status_code == 404
    # Nothing was stored, so the next event is the first of the log.
    assert (await api.create({"type": "t"}))["seq"] == 0


async def test_every_invalid_event_of_a_batch_is_named_by_index(api: Api) -> None:
    response = await api.post([{"type": "t"}, {"type": ""}, {"type": "t"}, {"tipe": "t"}])
    doc = problem(response, 422)
    assert [(e["index"], e["field"]) for e in doc["errors"]] == [
        (1, "type"),
        (3, "tipe"),
        (3, "type"),
    ]


async def test_an_invalid_ndjson_event_is_named_by_index(api: Api) -> None:
    body = b'{"type": "a"}\n{"type": "b", "outcome": "maybe"}\n'
    doc = problem(await api.post_raw(body, "application/x-ndjson"), 422)
    assert [(e["index"], e["field"]) for e in doc["errors"]] == [(1, "outcome")]
    assert await api.everything() == []


@pytest.mark.parametrize(
    ("body", "content_type"), [(b"[]", None), (b"\n\n", "application/x-ndjson")]
)
async def test_an_empty_batch_is_refused(api: Api, body: bytes, content_type: str | None) -> None:
    problem(await api.post_raw(body, content_type), 422)


@pytest.mark.parametrize("settings", [replace(QUIET, max_batch_events=3)], ids=["max-3-events"])
async def test_a_batch_over_the_event_limit_is_refused(api: Api) -> None:
    assert (await api.post([{"type": "t"}] * 3)).status_code == 201
    # A count over the limit is an invalid batch (422); bytes over the limit are 413.
    doc = problem(await api.post([{"type": "t"}] * 4), 422)
    assert "4" in doc["detail"]
    assert len(await api.everything()) == 3


# -- idempotency --------------------------------------------------------------------------


async def test_a_retry_answers_200_with_the_original_event(api: Api) -> None:
    event = {"id": "pay-1", "type": "payment", "data": {"amount": 5, "currency": "EUR"}}
    first = await api.post(event)
    assert first.status_code == 201
    again = await api.post(event)
    assert again.status_code == 200
    assert again.content == first.content  # the original: same seq, time and received_at
    assert again.headers["location"] == "/v1/events/pay-1"
    assert len(await api.everything()) == 1


async def test_a_retry_is_compared_as_json_values(api: Api) -> None:
    await api.create(
        {"id": "pay-1", "type": "p", "time": 1767225600, "data": {"a": 1, "b": {"c": [1, 2]}}}
    )
    # Keys in another order, the time in another notation of the same instant.
    retry = (
        b'{"data": {"b": {"c": [1, 2]}, "a": 1}, "time": "2026-01-01T01:00:00+01:00",'
        b' "type": "p", "id": "pay-1"}'
    )
    response = await api.post_raw(retry, "application/json")
    assert response.status_code == 200
    assert response.json()["seq"] == 0


async def test_a_retry_without_defaulted_fields_is_a_replay(api: Api) -> None:
    first = await api.create({"id": "e1", "type": "t"})
    # time, actor and source were filled in by the server; the retry leaves them out again.
    response = await api.post({"id": "e1", "type": "t"})
    assert response.status_code == 200
    assert response.json() == first


@pytest.mark.parametrize(
    "change",
    [
        {"type": "other"},
        {"data": {"amount": 6}},
        {"data": {"amount": 5, "extra": True}},
        {"data": {}},
        {"outcome": "success"},
        {"subject": "someone"},
        {"source": "elsewhere"},
        {"actor": "mallory"},
        {"time": "2026-01-01T00:00:00Z"},
    ],
)
async def test_the_same_id_with_other_content_is_409(api: Api, change: dict[str, Any]) -> None:
    original = {"id": "pay-1", "type": "payment", "data": {"amount": 5}}
    first = await api.create(original)
    doc = problem(await api.post({**original, **change}), 409)
    assert "pay-1" in doc["detail"]
    assert [e["field"] for e in doc["errors"]] == ["id"]
    assert "index" not in doc["errors"][0]
    assert (await api.get("pay-1")).json() == first
    assert len(await api.everything()) == 1


async def test_a_batch_retry_answers_the_original_seqs(api: Api) -> None:
    await api.create({"type": "before"})
    batch = [{"id": "a", "type": "t"}, {"id": "b", "type": "t"}]
    first = await api.post(batch)
    assert first.status_code == 201
    again = await api.post(batch)
    assert again.status_code == 200
    assert (
        again.json() == first.json() == {"events": [{"id": "a", "seq": 1}, {"id": "b", "seq": 2}]}
    )
    # Partly new: 201, the known event keeps its seq, the new one is appended.
    mixed = await api.post([{"id": "c", "type": "t"}, {"id": "a", "type": "t"}])
    assert mixed.status_code == 201
    assert mixed.json() == {"events": [{"id": "c", "seq": 3}, {"id": "a", "seq": 1}]}
    assert [e["id"] for e in await api.everything()][1:] == ["a", "b", "c"]


async def test_a_batch_conflict_names_the_index_and_stores_nothing(api: Api) -> None:
    await api.create({"id": "held", "type": "t", "data": {"v": 1}})
    response = await api.post(
        [{"id": "new1", "type": "t"}, {"id": "held", "type": "t", "data": {"v": 2}}]
    )
    doc = problem(response, 409)
    assert [(e["index"], e["field"]) for e in doc["errors"]] == [(1, "id")]
    assert [e["id"] for e in await api.everything()] == ["held"]


async def test_one_id_twice_in_a_batch(api: Api) -> None:
    same = await api.post([{"id": "x", "type": "t"}, {"id": "x", "type": "t"}])
    assert same.status_code == 201
    assert same.json() == {"events": [{"id": "x", "seq": 0}, {"id": "x", "seq": 0}]}
    doc = problem(await api.post([{"id": "y", "type": "t"}, {"id": "y", "type": "u"}]), 409)
    assert [(e["index"], e["field"]) for e in doc["errors"]] == [(1, "id")]
    assert [e["id"] for e in await api.everything()] == ["x"]


async def test_concurrent_retries_store_once(api: Api) -> None:
    event = {"id": "race", "type": "t", "data": {"n": 1}}
    responses: list[httpx.Response] = []

    async def send() -> None:
        responses.append(await api.post(event))

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(send)
    assert sorted(r.status_code for r in responses) == [200, 200, 200, 200, 201]
    assert {r.json()["seq"] for r in responses} == {0}
    assert len(await api.everything()) == 1


# -- what is refused -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"type": "t", "colour": "red"}, "colour"),
        ({"type": "t", "tenant": "other"}, "tenant"),
        ({"type": "t", "seq": 7}, "seq"),
        ({"type": "t", "received_at": "2026-01-01T00:00:00Z"}, "received_at"),
        ({}, "type"),
        ({"type": ""}, "type"),
        ({"type": "x" * 201}, "type"),
        ({"type": "a\nb"}, "type"),
        ({"type": 5}, "type"),
        ({"type": "t", "id": ""}, "id"),
        ({"type": "t", "id": "has space"}, "id"),
        ({"type": "t", "id": "a/b"}, "id"),
        ({"type": "t", "id": "x" * 129}, "id"),
        ({"type": "t", "id": 5}, "id"),
        ({"type": "t", "time": "yesterday"}, "time"),
        ({"type": "t", "time": "2026-02-30T00:00:00Z"}, "time"),
        ({"type": "t", "time": True}, "time"),
        ({"type": "t", "actor": {"type": "user"}}, "actor.id"),
        ({"type": "t", "actor": {"id": "a", "role": "x"}}, "actor.role"),
        ({"type": "t", "actor": 5}, "actor"),
        ({"type": "t", "actor": ""}, "actor.id"),
        ({"type": "t", "subject": {"id": 5}}, "subject.id"),
        ({"type": "t", "source": ""}, "source"),
        ({"type": "t", "source": "s" * 201}, "source"),
        ({"type": "t", "outcome": "maybe"}, "outcome"),
        ({"type": "t", "data": [1, 2]}, "data"),
        ({"type": "t", "data": "text"}, "data"),
    ],
)
async def test_an_invalid_event_is_422_naming_the_field(
    api: Api, event: dict[str, Any], field: str
) -> None:
    doc = problem(await api.post(event), 422)
    assert field in [e["field"] for e in doc["errors"]]
    assert all("index" not in e for e in doc["errors"])
    assert field in doc["detail"]
    assert await api.everything() == []


async def test_data_nested_deeper_than_32_levels_is_422(api: Api) -> None:
    def nested(depth: int) -> dict[str, Any]:
        value: dict[str, Any] = {}
        for _ in range(depth - 1):
            value = {"k": value}
        return value

    assert (await api.post({"type": "t", "data": nested(32)})).status_code == 201
    doc = problem(await api.post({"type": "t", "data": nested(33)}), 422)
    assert [e["field"] for e in doc["errors"]] == ["data"]


@pytest.mark.parametrize("body", [b"null", b"5", b'"event"', b"true"])
async def test_a_json_value_that_is_no_event_is_422(api: Api, body: bytes) -> None:
    problem(await api.post_raw(body, "application/json"), 422)


@pytest.mark.parametrize(
    "body", [b"{", b"", b"{'type': 't'}", b'{"type": "t"} {}', b"\xff\xfe", b'{"type": "t",}']
)
async def test_a_body_that_is_not_json_is_400(api: Api, body: bytes) -> None:
    doc = problem(await api.post_raw(body, "application/json"), 400)
    assert "JSON" in doc["detail"]


async def test_a_bad_ndjson_line_is_400_naming_the_line(api: Api) -> None:
    body = b'{"type": "a"}\n{"type": \n{"type": "c"}\n'
    doc = problem(await api.post_raw(body, "application/x-ndjson"), 400)
    assert "line 2" in doc["detail"]
    assert await api.everything() == []


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/xml",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "text/json",
    ],
)
async def test_an_unsupported_content_type_is_415(api: Api, content_type: str) -> None:
    doc = problem(await api.post_raw(b'{"type": "t"}', content_type), 415)
    assert content_type.split(";")[0] in doc["detail"]
    assert await api.everything() == []


# -- sizes ---------------------------------------------------------------------------------


def padded_event(size: int) -> bytes:
    """A valid single event serialised to exactly ``size`` bytes."""
    head, tail = b'{"type":"t","data":{"pad":"', b'"}}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


@pytest.mark.parametrize("settings", [replace(QUIET, max_body_bytes=4096)], ids=["body-4KiB"])
async def test_a_body_over_max_body_bytes_is_413(api: Api) -> None:
    at_limit = padded_event(4096)
    assert len(at_limit) == 4096
    assert (await api.post_raw(at_limit, "application/json")).status_code == 201
    doc = problem(await api.post_raw(padded_event(4097), "application/json"), 413)
    assert "4096" in doc["detail"]
    batch = orjson.dumps([{"type": "t", "data": {"i": i}} for i in range(200)])
    assert len(batch) > 4096
    problem(await api.post_raw(batch, "application/json"), 413)
    problem(await api.post_raw(batch.replace(b"},{", b"}\n{"), "application/x-ndjson"), 413)
    assert len(await api.everything()) == 1


async def test_an_event_over_max_event_bytes_is_413(api: Api) -> None:
    # The default limit on one stored event is 64 KiB, far below the body limit.
    big = {"type": "t", "data": {"pad": "x" * 70_000}}
    doc = problem(await api.post(big), 413)
    assert [e["field"] for e in doc["errors"]] == ["(event)"]
    doc = problem(await api.post([{"type": "t"}, big]), 413)
    assert [(e["index"], e["field"]) for e in doc["errors"]] == [(1, "(event)")]
    assert await api.everything() == []


async def test_a_compressed_body_is_415_not_a_parse_error(api: Api) -> None:
    response = await api.client.post(
        "/v1/events",
        content=b"\x1f\x8b\x08\x00",
        headers={**api.headers, "Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert "Content-Encoding" in problem(response, 415)["detail"]

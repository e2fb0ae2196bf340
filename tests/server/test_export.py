"""``GET /v1/events/export`` through the real application on every backend (API.md §10).

Exports are parsed back with real readers (``csv``, ``orjson``) and compared with what the
query API's pages say; resumption, the fixed set, the formula guard and refusals are checked
on their own.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from typing import Any

import httpx
import orjson
import pytest

from auditlog.model.csvrows import FIXED
from auditlog.server.app import AuditlogApp
from server.api import Api, problem
from server.conftest import QUIET
from storage.test_contract import CATALOG, OPERATOR_CASES

pytestmark = pytest.mark.anyio

EXPORT = "/v1/events/export"


async def export(api: Api, params: list[tuple[str, str]]) -> httpx.Response:
    response = await api.client.get(EXPORT, params=params, headers=api.headers)
    assert response.status_code == 200, response.text
    return response


def ndjson(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.headers["content-type"] == "application/x-ndjson"
    assert response.content == b"" or response.content.endswith(b"\n")
    return [orjson.loads(line) for line in response.content.splitlines()]


def csv_rows(response: httpx.Response) -> list[dict[str, str]]:
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    text = response.content.decode("utf-8")
    assert text.endswith("\r\n")
    return list(csv.DictReader(io.StringIO(text, newline="")))


async def add_catalog(api: Api) -> None:
    await api.create_batch(CATALOG)


@pytest.mark.parametrize(
    ("pairs", "expected"),
    OPERATOR_CASES,
    ids=["&".join(f"{k}={v}" for k, v in pairs) or "everything" for pairs, _ in OPERATOR_CASES],
)
async def test_every_filter_exports_what_the_query_pages_find(
    api: Api, pairs: list[tuple[str, str]], expected: list[str]
) -> None:
    del expected
    await add_catalog(api)
    # The catalog's defaults (actor, source) come from this key here, so the query's own
    # answer is the reference; the storage contract checks it against ``expected``.
    paged = await api.walk([*pairs, ("order", "asc"), ("limit", "2")])
    lines = ndjson(await export(api, pairs))
    assert lines == paged
    rows = csv_rows(await export(api, [*pairs, ("format", "csv")]))
    assert [row["id"] for row in rows] == [e["id"] for e in paged]
    for row, event in zip(rows, paged, strict=True):
        assert int(row["seq"]) == event["seq"]
        assert orjson.loads(row["data"]) == event["data"]
        assert row["time"] == event["time"]
        assert row["received_at"] == event["received_at"]
        assert row["actor.id"] == event["actor"]["id"]
        assert row["subject.id"] == (event.get("subject") or {}).get("id", "")
        assert row["outcome"] == event.get("outcome", "")


async def test_the_ndjson_lines_are_the_stored_bytes(api: Api) -> None:
    await add_catalog(api)
    response = await export(api, [])
    stored = [(await api.get(f"e{i}")).content for i in range(len(CATALOG))]
    assert response.content == b"".join(body + b"\n" for body in stored)
    assert response.headers["auditlog-log-size"] == str(len(CATALOG))
    assert response.headers["content-disposition"] == 'attachment; filename="acme-events.ndjson"'


async def test_csv_header_columns_and_cells(api: Api) -> None:
    await api.create(
        {
            "id": "x",
            "type": "t",
            "actor": {"id": "a", "type": "user", "name": 'Ann, "the" admin'},
            "subject": {"id": "s", "type": "doc", "name": "Doc"},
            "outcome": "success",
            "data": {
                "a": {"b": 5},
                "c": 'line\nbreak, "quoted"',
                "arr": [1, "x"],
                "objs": [{"k": 1}, {"k": 2}],
            },
        }
    )
    columns = "data.a.b,data.c,data.missing,data.arr,data.objs.k,data.a"
    response = await export(api, [("format", "csv"), ("columns", columns)])
    header = response.content.split(b"\r\n", 1)[0].decode()
    assert header == ",".join([*FIXED, *columns.split(",")])
    (row,) = csv_rows(response)
    assert row["actor.name"] == 'Ann, "the" admin'
    assert row["subject.name"] == "Doc"
    assert row["data.a.b"] == "5"
    assert row["data.c"] == 'line\nbreak, "quoted"'
    assert row["data.missing"] == ""
    assert row["data.arr"] == '[1,"x"]'
    assert row["data.objs.k"] == "[1,2]"
    assert row["data.a"] == '{"b":5}'
    assert orjson.loads(row["data"])["objs"] == [{"k": 1}, {"k": 2}]


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
async def test_cells_a_spreadsheet_would_run_get_a_leading_quote(api: Api, start: str) -> None:
    formula = f'{start}HYPERLINK("http://evil","x")'
    # Envelope strings hold no control characters: a tab or CR can only lead a data value.
    text = formula if start not in "\t\r" else "x"
    await api.create(
        {
            "id": "f",
            "type": text,
            "actor": {"id": text, "name": text},
            "source": text,
            "data": {"cell": formula, "n": -5, "safe": "a=b"},
        }
    )
    response = await export(api, [("format", "csv"), ("columns", "data.cell,data.n,data.safe")])
    (row,) = csv_rows(response)
    assert row["data.cell"] == "'" + formula
    for column in ("type", "actor.id", "actor.name", "source"):
        assert row[column] == ("'" + text if text == formula else text), column
    assert row["data.n"] == "'-5"
    assert row["data.safe"] == "a=b"
    for cell in row.values():
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))


async def test_a_resumed_export_gives_each_event_exactly_once(api: Api) -> None:
    await api.create_batch([{"id": f"r{i}", "type": "t", "data": {"i": i}} for i in range(40)])
    whole = await export(api, [])
    size = whole.headers["auditlog-log-size"]
    expected = whole.content.splitlines(keepends=True)
    # A connection cut after some bytes, mid-line: the client keeps the whole lines it has.
    cut = whole.content[: len(whole.content) // 3 + 7]
    kept = cut[: cut.rfind(b"\n") + 1].splitlines(keepends=True)
    await api.create_batch([{"id": f"late{i}", "type": "t"} for i in range(5)])
    last = orjson.loads(kept[-1])["seq"]
    rest = await export(api, [("after_seq", str(last)), ("before_seq", size)])
    assert kept + rest.content.splitlines(keepends=True) == expected
    # Without before_seq the resumed export is fixed at its own start: the late ones too.
    tail = ndjson(await export(api, [("after_seq", str(last))]))
    assert [e["id"] for e in tail][-5:] == [f"late{i}" for i in range(5)]


async def test_csv_resumed_with_after_seq(api: Api) -> None:
    await api.create_batch([{"id": f"c{i}", "type": "t"} for i in range(10)])
    rows = csv_rows(await export(api, [("format", "csv")]))
    later = csv_rows(await export(api, [("format", "csv"), ("after_seq", rows[3]["seq"])]))
    assert rows[4:] == later


async def test_events_committed_during_an_export_are_not_in_it(
    app: AuditlogApp, api: Api, make_api: Any
) -> None:
    await api.create_batch([{"id": f"d{i}", "type": "t"} for i in range(30)])
    reader = await make_api("acme", ("events:read",), "reader")
    credential = await app.services.auth.authenticate(reader.token)
    started = await app.services.exporter.start(credential, [])
    assert started.log_size == 30
    chunks = started.chunks
    try:
        first = await chunks.__anext__()
        await api.create_batch([{"id": f"during{i}", "type": "t"} for i in range(30)])
        body = first + b"".join([chunk async for chunk in chunks])
    finally:
        await chunks.aclose()
    assert [orjson.loads(line)["id"] for line in body.splitlines()] == [f"d{i}" for i in range(30)]
    assert app.services.exporter.running == 0


async def test_an_export_of_an_empty_log(api: Api) -> None:
    response = await export(api, [])
    assert response.content == b""
    assert response.headers["auditlog-log-size"] == "0"
    rows = await export(api, [("format", "csv")])
    assert rows.content.decode() == ",".join(FIXED) + "\r\n"


async def test_a_big_export_is_read_in_many_pages(api: Api, app: AuditlogApp) -> None:
    events = [{"id": f"b{i}", "type": "t", "data": {"i": i}} for i in range(1300)]
    for start in range(0, len(events), 500):
        await api.create_batch(events[start : start + 500])
    lines = ndjson(await export(api, [("data.i[gte]", "7")]))
    assert [e["data"]["i"] for e in lines] == list(range(7, 1300))
    assert app.services.exporter.running == 0


async def test_head_answers_the_headers_and_releases_its_place(api: Api, app: AuditlogApp) -> None:
    await add_catalog(api)
    response = await api.client.head(EXPORT, headers=api.headers)
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["auditlog-log-size"] == str(len(CATALOG))
    assert app.services.exporter.running == 0


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ([("cursor", "abc")], "cursor"),
        ([("limit", "5")], "limit"),
        ([("order", "desc")], "order"),
        ([("format", "xml")], "format"),
        ([("columns", "data.a")], "columns"),
        ([("format", "csv"), ("columns", "data.a b")], "columns"),
        ([("format", "csv"), ("columns", "nope.a")], "columns"),
        ([("after_seq", "-1")], "after_seq"),
        ([("after_seq", "1.5")], "after_seq"),
        ([("after_seq", "99999999999999999999999")], "after_seq"),
        ([("before_seq", "x")], "before_seq"),
        ([("after_seq", "1"), ("after_seq", "2")], "after_seq"),
        ([("format", "csv"), ("format", "csv")], "format"),
        ([("data.a[bogus]", "1")], "data.a[bogus]"),
        ([("since", "yesterday")], "since"),
    ],
)
async def test_bad_parameters_are_400_naming_them(
    api: Api, params: list[tuple[str, str]], names: str
) -> None:
    response = await api.client.get(EXPORT, params=params, headers=api.headers)
    assert names in problem(response, 400)["detail"]


async def test_an_export_needs_events_read_and_sees_only_its_tenant(
    api: Api, make_api: Any
) -> None:
    await add_catalog(api)
    writer = await make_api("acme", ("events:write",), "writer")
    problem(await writer.client.get(EXPORT, headers=writer.headers), 403)
    problem(await api.client.get(EXPORT), 401)
    other = await make_api("globex", ("events:read", "events:write"), "other")
    await other.create({"id": "g", "type": "t"})
    lines = ndjson(await export(other, [("tenant", "acme")]))
    assert lines == []
    assert [e["id"] for e in ndjson(await export(other, []))] == ["g"]


@pytest.mark.parametrize(
    "settings", [dataclasses.replace(QUIET, export_max_running=1)], ids=["one-export"]
)
async def test_exports_past_the_cap_are_429(app: AuditlogApp, api: Api) -> None:
    await add_catalog(api)
    credential = await app.services.auth.authenticate(api.token)
    held = await app.services.exporter.start(credential, [])
    try:
        response = await api.client.get(EXPORT, headers=api.headers)
        doc = problem(response, 429)
        assert "exports" in doc["detail"]
        assert response.headers["retry-after"] == "1"
    finally:
        await held.chunks.aclose()
    assert (await api.client.get(EXPORT, headers=api.headers)).status_code == 200

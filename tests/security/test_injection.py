"""Injection attempts in every query parameter name and value, field path and id: SQL, JSON
path syntax, full-text syntax, Unicode lookalikes, NUL bytes.

Each request goes to the same log on every backend: the in-memory store (no SQL anywhere, the
oracle), SQLite, and SQLite with its search index up to date. Every answer must be a 200 or a
problem document, never a 5xx (``AnswerGuard``), and the backends must answer alike: the same
status, the same events (``received_at`` aside), the same error message. Nothing a request
says may change a log.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from auditlog.server.app import AuditlogApp, build_app
from server.api import AnswerGuard, Api, bearer, problem
from server.conftest import COMPARED_BACKENDS, QUIET, new_store

pytestmark = pytest.mark.anyio

DROP = "'; DROP TABLE events; --"
CYRILLIC_A = "\u0430"  # looks like a Latin a
FULLWIDTH_TYPE = "\uff54\uff59\uff50\uff45"  # "type" in fullwidth letters

INJECTIONS = [
    # SQL
    DROP,
    "' OR '1'='1",
    '" OR ""="',
    "1; SELECT * FROM api_keys",
    "%' OR 1=1 --",
    "1) UNION SELECT body FROM events --",
    "\\",
    "'",
    '"',
    ")",
    "?",
    "%",
    "_",
    # JSON path syntax
    "$",
    "$.data",
    "data[0]",
    "data.$.x",
    "data..note",
    "data.*",
    "data.note[?(@.x)]",
    "data.'note'",
    '$."data"',
    "->>'note'",
    "#>>'{data,note}'",
    # full-text syntax
    '" OR "',
    "NEAR(",
    "NEAR(a b)",
    "*",
    "^",
    "^x",
    "a NOT b",
    "a AND b OR c",
    "type:x",
    "{type}: x",
    "-x",
    "+x",
    '"unterminated',
    "x* *",
    "*x",
    # Unicode lookalikes and invisible characters
    FULLWIDTH_TYPE,
    f"d{CYRILLIC_A}ta.note",
    f"d{CYRILLIC_A}ta",
    "data.\uff4e\uff4f\uff54\uff45",
    "Kelvin \u212a",
    "stra\u00dfe",
    "\u017f",  # long s, folds to s
    "x\u200by",  # zero-width space
    "\u202egnp.exe",  # right-to-left override
    "e\u0301",  # e and a combining accent
    # NUL and control bytes
    "\x00",
    "a\x00b",
    "data.note\x00",
    "\x01\x1f\x7f",
    "\ud7ff\ue000\uffff",
    "",
]

#: The parameters whose values every injection is tried in.
VALUE_PARAMS = [
    "type", "source", "outcome", "actor", "actor.type", "subject", "subject.type", "id",
    "q", "since", "until", "order", "limit", "cursor",
    "data.note", "data.note[eq]", "data.note[ne]", "data.note[gt]", "data.note[lte]",
    "data.note[prefix]", "data.note[in]", "data.note[exists]", "data.amount[lt]",
    "time[gte]", "seq[gt]", "data.list",
]  # fmt: skip
#: The first version's query parameters.
LEGACY_PARAMS = ["_id", "event_type", "user_id", "timeStart", "timeEnd", "keyword"]

#: What a parameter name may hold at all (API.md §3): segments of A-Z a-z 0-9 _ - and an
#: operator in brackets. Anything else is 400 whatever it says.
IN_THE_GRAMMAR = re.compile(r"[A-Za-z0-9_.\-]*(\[[a-z]*\])?", re.ASCII)

T0 = 1_700_000_000
EVENTS: list[dict[str, Any]] = [
    {"id": "e1", "type": "user.login", "actor": "alice", "source": "web", "outcome": "success",
     "data": {"note": "' OR '1'='1", "city": "Seattle", "amount": 100}},
    {"id": "e2", "type": FULLWIDTH_TYPE, "actor": {"id": "bob", "type": "user"}, "source": "web",
     "data": {f"d{CYRILLIC_A}ta": "cyrillic key", "note": "Kelvin \u212a"}},
    {"id": "e3", "type": "invoice", "source": "billing", "subject": "inv-1",
     "data": {"note": "a\x00b", "q": "NEAR(a b)", "amount": 1000}},
    {"id": "e4", "type": "invoice", "source": "billing",
     "data": {"note": '" OR "', "star": "*", "caret": "^x", "amount": 99.5}},
    {"id": "e5", "type": "config", "source": "ops",
     "data": {"$": {"x": 1}, "a.b": 2, "note": "stra\u00dfe", "list": ["or", "near", "and"]}},
    {"id": "e6", "type": DROP, "source": "ops", "data": {"note": DROP, "list": ["x", "y"]}},
    {"id": "e7", "type": "x\u200by", "source": "ops", "data": {"note": "\u202egnp.exe"}},
]  # fmt: skip


@dataclass
class Backend:
    name: str
    app: AuditlogApp
    api: Api


@pytest.fixture
async def backends(tmp_path: Path) -> AsyncIterator[list[Backend]]:
    """The same log (the events of ``EVENTS``, at fixed times) on every backend."""
    async with contextlib.AsyncExitStack() as stack:
        out = []
        for name in COMPARED_BACKENDS:
            folder = tmp_path / name
            folder.mkdir()
            app = build_app(QUIET, new_store(name, folder))
            await app.startup()
            stack.push_async_callback(app.shutdown)
            client = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app),
                    base_url="http://auditlog.test",
                    event_hooks={"response": [AnswerGuard()]},
                )
            )
            _, token = await app.services.api_keys.create("acme", ("admin",), "probe")
            api = Api(client, token)
            # Every field given, so that no key's id or name makes the backends differ.
            timed = [{"actor": "system", **e, "time": T0 + i} for i, e in enumerate(EVENTS)]
            await api.create_batch(timed)
            out.append(Backend(name, app, api))
        yield out


def comparable(response: httpx.Response) -> Any:
    """What must be the same on every backend: status and body, times of receipt aside."""
    status = response.status_code
    if status >= 400:
        return status, problem(response, status)["detail"]
    body = response.json()
    if isinstance(body, dict) and "events" in body:
        events = [{k: v for k, v in e.items() if k != "received_at"} for e in body["events"]]
        return status, events, body["next_cursor"] is None
    if isinstance(body, dict):
        return status, {k: v for k, v in body.items() if k != "received_at"}
    return status, body


async def same_everywhere(
    backends: list[Backend], path: str, params: list[tuple[str, str]] | None = None
) -> Any:
    """Send one GET to every backend; the answers must agree. The oracle's answer."""
    answers = []
    for backend in backends:
        response = await backend.api.client.get(
            path, params=params or [], headers=bearer(backend.api.token)
        )
        assert response.status_code in (200, 400, 404), (backend.name, path, params)
        answers.append((backend.name, comparable(response)))
    oracle = answers[0][1]
    for name, answer in answers[1:]:
        assert answer == oracle, (name, path, params)
    return oracle


def ids_of(answer: Any) -> list[str]:
    assert answer[0] == 200, answer
    return sorted(e["id"] for e in answer[1])


async def test_injections_in_every_parameter_value(backends: list[Backend]) -> None:
    for value in INJECTIONS:
        for name in VALUE_PARAMS:
            await same_everywhere(backends, "/v1/events", [(name, value)])
        await same_everywhere(backends, "/v1/events", [("q", value), ("type", value)])


async def test_injections_in_every_parameter_name_and_field_path(backends: list[Backend]) -> None:
    for text in INJECTIONS:
        for name in (text, f"data.{text}", f"{text}[eq]", f"data.note[{text}]", f"{text}.x"):
            answer = await same_everywhere(backends, "/v1/events", [(name, "1")])
            if not IN_THE_GRAMMAR.fullmatch(name):
                assert answer[0] == 400, (name, answer)


async def test_injections_in_the_event_id_of_the_path(backends: list[Backend]) -> None:
    for text in INJECTIONS:
        if not text:
            continue
        answer = await same_everywhere(backends, "/v1/events/" + quote(text, safe=""))
        assert answer[0] == 404, (text, answer)


async def test_injections_in_the_first_versions_parameters(backends: list[Backend]) -> None:
    for value in INJECTIONS:
        for name in LEGACY_PARAMS:
            await same_everywhere(backends, "/event", [(name, value)])
        await same_everywhere(backends, "/event", [(value, "x")])


async def test_what_the_injections_mean(backends: list[Backend]) -> None:
    # Values are values: matched literally, never read as SQL, JSON path or search syntax.
    async def ids(*params: tuple[str, str]) -> list[str]:
        return ids_of(await same_everywhere(backends, "/v1/events", list(params)))

    assert await ids(("type", DROP)) == ["e6"]
    assert await ids(("data.note", "' OR '1'='1")) == ["e1"]
    assert await ids(("data.note", "%' OR 1=1 --")) == []
    assert await ids(("data.note[prefix]", "%")) == []
    assert await ids(("data.note[prefix]", "_")) == []
    assert await ids(("data.note", '" OR "')) == ["e4"]
    assert await ids(("data.note", "a\x00b")) == ["e3"]
    assert await ids(("data.note", "a")) == []
    assert await ids(("type", FULLWIDTH_TYPE)) == ["e2"]
    assert await ids(("type", "type")) == []  # no folding of lookalikes in equality
    assert await ids(("type", "xy")) == []  # nor of invisible characters
    assert await ids(("data.a.b", "2")) == []  # a path, not the key "a.b"
    # Words are words: search syntax is text to split into words.
    assert await ids(("q", '" OR "')) == ["e1", "e4", "e5"]
    assert await ids(("q", "NEAR(")) == ["e3", "e5"]
    assert (await same_everywhere(backends, "/v1/events", [("q", "*")]))[0] == 400  # no word
    assert await ids(("q", "x* *")) == ["e4", "e6", "e7"]  # x*: a prefix; a lone * no word
    # The log is whole after all of that.
    for backend in backends:
        assert len(await backend.api.everything()) == len(EVENTS)


async def test_paths_outside_the_grammar_are_400_naming_the_parameter(
    backends: list[Backend],
) -> None:
    for name in (
        "$.data", "data[0]", "data.$.x", "data..note", "data.*", "data.'note'",
        f"d{CYRILLIC_A}ta.note", "data.\uff4e\uff4f\uff54\uff45", FULLWIDTH_TYPE,
        "data.note\x00", "data.note[eq][eq]", "data.note[EQ]", "data.note[ eq]",
    ):  # fmt: skip
        status, detail = await same_everywhere(backends, "/v1/events", [(name, "1")])
        assert status == 400, name
        assert detail.startswith(f"parameter {name!r}: "), (name, detail)


async def test_nothing_changed_any_log(backends: list[Backend]) -> None:
    for value in INJECTIONS:
        for backend in backends:
            client, headers = backend.api.client, bearer(backend.api.token)
            await client.get(
                "/v1/events", params=[("type", value), (value, value)], headers=headers
            )
            await client.get("/event", params=[("keyword", value)], headers=headers)
    for backend in backends:
        stored = await backend.api.everything()
        assert [e["id"] for e in stored] == [e["id"] for e in EVENTS], backend.name
        assert [e["seq"] for e in stored] == list(range(len(EVENTS)))

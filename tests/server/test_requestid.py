"""Every answer carries an ``X-Request-ID`` (``auditlog.server.requestid``): the client's when
it is sane, else one made; and the service's own records of a request carry it too."""

from __future__ import annotations

import re
from dataclasses import replace

import httpx
import pytest

from auditlog.config import Settings
from auditlog.server.app import AuditlogApp
from auditlog.server.requestid import MAX_REQUEST_ID, request_id
from server.api import Api, bearer, problem
from server.conftest import QUIET
from server.test_selfaudit import log_of

pytestmark = pytest.mark.anyio

MADE = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def backend() -> str:
    """Request ids are HTTP's business: one backend is enough."""
    return "memory"


@pytest.fixture
def settings() -> Settings:
    return replace(QUIET, audit_reads=True, max_body_bytes=1024)


@pytest.mark.parametrize(
    "sent",
    [
        "abc-123",
        "0f8fad5b-d9cb-469f-a165-70867728950e",
        "x" * MAX_REQUEST_ID,
        "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
    ],
)
def test_a_sane_id_is_kept(sent: str) -> None:
    assert request_id(sent) == sent


@pytest.mark.parametrize(
    "sent",
    [None, "", "x" * (MAX_REQUEST_ID + 1), "has space", "tab\there", "nl\nx", "é", "a, b", "\x7f"],
)
def test_anything_else_gets_a_new_id(sent: str | None) -> None:
    made = request_id(sent)
    assert MADE.fullmatch(made)
    assert made != request_id(sent)


async def test_every_answer_carries_an_id_made_or_sent(client: httpx.AsyncClient, api: Api) -> None:
    answers = {
        200: await client.get("/healthz"),
        201: await client.post("/v1/events", json={"type": "t"}, headers=api.headers),
        401: await client.get("/v1/events"),
        403: await client.get("/v1/streams", headers=api.headers),
        404: await client.get("/nowhere"),
        405: await client.delete("/v1/events"),
        413: await client.post(
            "/v1/events", json={"type": "t", "data": {"pad": "x" * 2000}}, headers=api.headers
        ),
    }
    for status, response in answers.items():
        assert response.status_code == status, response.text
        assert MADE.fullmatch(response.headers["x-request-id"]), status
    assert len({r.headers["x-request-id"] for r in answers.values()}) == len(answers)
    for status, response in answers.items():
        method = response.request.method
        again = await client.request(
            method,
            response.request.url,
            content=response.request.content,
            headers={**response.request.headers, "X-Request-ID": f"mine-{status}"},
        )
        assert again.headers["x-request-id"] == f"mine-{status}"
    # An id that is not sane is replaced, not echoed.
    response = await client.get("/healthz", headers={"X-Request-ID": "two words"})
    assert MADE.fullmatch(response.headers["x-request-id"])


async def test_the_services_records_carry_the_request_id(
    app: AuditlogApp, client: httpx.AsyncClient, api: Api
) -> None:
    await api.create({"id": "e1", "type": "t"})
    read = await client.get("/v1/events/e1", headers={**bearer(api.token), "X-Request-ID": "r-1"})
    assert read.status_code == 200
    listed = await client.get("/v1/events", headers=bearer(api.token))
    assert listed.status_code == 200
    records = [e for e in await log_of(app, "acme") if e["type"] == "auditlog.log.read"]
    assert [r["data"]["request_id"] for r in records] == [
        "r-1",
        listed.headers["x-request-id"],
    ]
    problem(await client.get("/v1/events/e1", headers={"X-Request-ID": "r-2"}), 401)
    assert len([e for e in await log_of(app, "acme") if e["type"] == "auditlog.log.read"]) == 2

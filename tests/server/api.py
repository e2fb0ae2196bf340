"""A small typed client of the HTTP API for tests, and the checks every answer must pass."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

PROBLEM_JSON = "application/problem+json"
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")

Params = Sequence[tuple[str, str]]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The problem document of an error answer, checked against API.md §6."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"] == PROBLEM_JSON
    doc: dict[str, Any] = orjson.loads(response.content)
    assert doc["status"] == status
    assert isinstance(doc["type"], str)
    assert doc["type"].startswith("urn:auditlog:problem:")
    assert isinstance(doc["title"], str)
    assert doc["title"]
    assert isinstance(doc["detail"], str)
    assert doc["detail"]
    assert set(doc) <= {"type", "title", "status", "detail", "errors"}
    for error in doc.get("errors", []):
        assert set(error) <= {"index", "field", "message"}
        assert isinstance(error["field"], str)
        assert isinstance(error["message"], str)
        assert isinstance(error.get("index", 0), int)
    return doc


class AnswerGuard:
    """An httpx response hook: no answer may be a 5xx, except 503s a test provokes on
    purpose (``allow_unavailable``), which must carry ``Retry-After``; every error answer must
    be a problem document."""

    def __init__(self) -> None:
        self.allow_unavailable = False

    async def __call__(self, response: httpx.Response) -> None:
        await response.aread()
        status = response.status_code
        if status >= 500:
            where = f"{response.request.method} {response.request.url} answered {status}"
            assert status == 503, f"{where}: {response.text}"
            assert self.allow_unavailable, f"{where} in a test that expects no 503"
            assert response.headers["retry-after"].isdigit()
        if status >= 400 and response.request.method != "HEAD":
            problem(response, status)


class Api:
    """Requests of one credential."""

    def __init__(self, client: httpx.AsyncClient, token: str, key_id: str = "") -> None:
        self.client = client
        self.token = token
        self.key_id = key_id

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)

    async def post(self, body: Any) -> httpx.Response:
        """POST a JSON value to /v1/events."""
        return await self.client.post("/v1/events", json=body, headers=self.headers)

    async def post_raw(
        self, content: bytes | AsyncIterator[bytes], content_type: str | None
    ) -> httpx.Response:
        headers = self.headers
        if content_type is not None:
            headers["Content-Type"] = content_type
        return await self.client.post("/v1/events", content=content, headers=headers)

    async def create(self, event: dict[str, Any]) -> dict[str, Any]:
        """POST one event that must be stored anew; the stored event."""
        response = await self.post(event)
        assert response.status_code == 201, response.text
        stored: dict[str, Any] = response.json()
        return stored

    async def create_batch(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        response = await self.post(events)
        assert response.status_code == 201, response.text
        items: list[dict[str, Any]] = response.json()["events"]
        return items

    async def get(self, event_id: str) -> httpx.Response:
        return await self.client.get(f"/v1/events/{event_id}", headers=self.headers)

    async def query(self, params: Params = ()) -> httpx.Response:
        return await self.client.get("/v1/events", params=list(params), headers=self.headers)

    async def page(self, params: Params = ()) -> dict[str, Any]:
        response = await self.query(params)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        body: dict[str, Any] = response.json()
        assert set(body) == {"events", "next_cursor"}
        return body

    async def ids(self, params: Params = ()) -> list[str]:
        """The ids of every event the query finds, following cursors."""
        return [e["id"] for e in await self.walk(params)]

    async def walk(
        self,
        params: Params = (),
        between_pages: Callable[[], Awaitable[None]] | None = None,
        max_pages: int = 1000,
    ) -> list[dict[str, Any]]:
        """Every event of a query, page after page, as a client follows ``next_cursor``."""
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(max_pages):
            page = await self.page([*params, *([("cursor", cursor)] if cursor else [])])
            found.extend(page["events"])
            cursor = page["next_cursor"]
            if cursor is None:
                return found
            assert page["events"], "a page with a next cursor must hold events"
            if between_pages is not None:
                await between_pages()
        raise AssertionError("the query did not end")

    async def everything(self) -> list[dict[str, Any]]:
        """Every event of the tenant, oldest first."""
        return await self.walk([("order", "asc"), ("limit", "1000")])


async def metric_samples(client: httpx.AsyncClient) -> list[Sample]:
    """Every sample /metrics exposes, parsed as Prometheus does."""
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "version=0.0.4" in response.headers["content-type"]
    return [
        sample
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    ]


def value(samples: list[Sample], name: str, **labels: str) -> float:
    """The value of the one sample with this name and (at least) these labels."""
    found = [
        s.value
        for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(found) == 1, (name, labels, found)
    return found[0]

"""Around the API (API.md §7): liveness, readiness and metrics, with no credential."""

from __future__ import annotations

import httpx
import pytest

from auditlog.errors import StorageError
from auditlog.server.app import AuditlogApp
from auditlog.storage.sqlite.store import SQLiteStore
from server.api import Api, metric_samples, problem, value
from server.conftest import ControlledStore

pytestmark = pytest.mark.anyio


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


@pytest.mark.usefixtures("expect_unavailable")
async def test_readyz_is_503_while_storage_does_not_answer(
    client: httpx.AsyncClient, store: ControlledStore
) -> None:
    store.ping_error = StorageError("connection refused", 3)
    response = await client.get("/readyz")
    doc = problem(response, 503)
    assert "connection refused" in doc["detail"]
    assert response.headers["retry-after"] == "3"
    # Liveness does not depend on storage.
    assert (await client.get("/healthz")).status_code == 200
    store.ping_error = None
    assert (await client.get("/readyz")).status_code == 200


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.usefixtures("expect_unavailable")
async def test_readyz_is_503_once_the_store_is_closed(
    app: AuditlogApp, client: httpx.AsyncClient, api: Api
) -> None:
    await app.services.store.close()
    response = await client.get("/readyz")
    problem(response, 503)
    assert response.headers["retry-after"].isdigit()
    # Every route that needs storage says so with a 503 too, never a 500.
    for answer in (await api.post({"type": "t"}), await api.query(), await api.get("x")):
        problem(answer, 503)


# -- metrics --------------------------------------------------------------------------------


async def test_metrics_count_requests_by_route_and_status(
    client: httpx.AsyncClient, api: Api
) -> None:
    await api.create({"id": "e1", "type": "t"})
    await api.create({"id": "e2", "type": "t"})
    await api.get("e1")
    await api.get("nope")
    await api.get("nope2")
    await client.get("/no/such/path")
    await client.get("/v1/events")  # no credential
    samples = await metric_samples(client)
    requests = "auditlog_http_requests_total"
    assert value(samples, requests, route="/v1/events", method="POST", status="201") == 2
    assert value(samples, requests, route="/v1/events/{id}", method="GET", status="200") == 1
    assert value(samples, requests, route="/v1/events/{id}", method="GET", status="404") == 2
    assert value(samples, requests, route="/v1/events", method="GET", status="401") == 1
    assert value(samples, requests, route="unmatched", method="GET", status="404") == 1
    # One series per route pattern, whatever the id.
    assert not any(s.labels.get("route") == "/v1/events/e1" for s in samples)
    latency = "auditlog_http_request_duration_seconds"
    assert value(samples, latency + "_count", route="/v1/events") == 3
    assert value(samples, latency + "_count", route="/v1/events/{id}") == 3
    assert value(samples, latency + "_bucket", route="/v1/events", le="+Inf") == 3


async def test_metrics_of_ingest(client: httpx.AsyncClient, api: Api) -> None:
    await api.create({"id": "e1", "type": "t"})
    await api.create_batch([{"id": f"b{i}", "type": "t"} for i in range(4)])
    await api.post({"id": "e1", "type": "t"})  # a replay is not ingested again
    samples = await metric_samples(client)
    assert value(samples, "auditlog_events_ingested_total") == 5
    # Each request committed on its own here: groups of 1, 4 and 1 events.
    assert value(samples, "auditlog_commit_batch_events_count") == 3
    assert value(samples, "auditlog_commit_batch_events_sum") == 6
    assert value(samples, "auditlog_commit_batch_events_bucket", le="1.0") == 2
    assert value(samples, "auditlog_commit_duration_seconds_count") == 3
    assert value(samples, "auditlog_ingest_queue_events") == 0


async def test_metrics_before_any_request(client: httpx.AsyncClient) -> None:
    samples = await metric_samples(client)
    assert value(samples, "auditlog_events_ingested_total") == 0
    assert value(samples, "auditlog_ingest_queue_events") == 0
    assert value(samples, "auditlog_commit_batch_events_count") == 0


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_metrics_tell_how_far_the_search_index_lags(
    client: httpx.AsyncClient, api: Api, store: ControlledStore
) -> None:
    await api.create_batch([{"type": "t"} for _ in range(3)])
    assert value(await metric_samples(client), "auditlog_search_index_lag_events") == 3
    assert isinstance(store.inner, SQLiteStore)
    store.inner.index_pending()
    assert value(await metric_samples(client), "auditlog_search_index_lag_events") == 0

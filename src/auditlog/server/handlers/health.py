"""Around the API: liveness, readiness, metrics and the OpenAPI document (no credential)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from auditlog.errors import AuditlogError, Unavailable
from auditlog.metrics import Metrics
from auditlog.model.credentials import Credential
from auditlog.server.asgi import Request, Response
from auditlog.server.openapi import Operation, json_content, schema_ref
from auditlog.server.routing import Route
from auditlog.storage.base import Store

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


# -- the documentation of the routes (OpenAPI) ------------------------------------------------

_LIVENESS = Operation(
    operation_id="liveness",
    summary="Liveness",
    description="200 while the process serves requests. Needs no credential.",
    tag="operations",
    responses={
        "200": {
            "description": 'Alive: `{"status": "ok"}`.',
            "content": json_content(schema_ref("Status")),
        }
    },
)

_READINESS = Operation(
    operation_id="readiness",
    summary="Readiness",
    description="200 when storage answers, 503 when it does not. Needs no credential.",
    tag="operations",
    responses={
        "200": {
            "description": 'Ready: `{"status": "ready"}`.',
            "content": json_content(schema_ref("Status")),
        }
    },
    errors=(503,),
)

_METRICS = Operation(
    operation_id="metrics",
    summary="Prometheus metrics",
    description="Requests by route pattern, method and status; request latency; events "
    "ingested; commit batch sizes and durations; ingest queue depth; writes refused. "
    "Needs no credential.",
    tag="operations",
    responses={
        "200": {
            "description": "The Prometheus text exposition format.",
            "content": {PROMETHEUS_TEXT: {"schema": {"type": "string"}}},
        }
    },
)

_OPENAPI = Operation(
    operation_id="openapi",
    summary="This document",
    description="The OpenAPI 3.1 document of every route. Needs no credential.",
    tag="operations",
    responses={
        "200": {
            "description": "The OpenAPI document.",
            "content": json_content({"type": "object"}),
        }
    },
)


def routes(store: Store, metrics: Metrics, openapi: Callable[[], bytes]) -> list[Route]:
    async def healthz(request: Request, credential: Credential | None) -> Response:
        return Response(200, b'{"status":"ok"}')

    async def readyz(request: Request, credential: Credential | None) -> Response:
        try:
            await store.ping()
        except Unavailable as exc:
            raise Unavailable(f"storage is not reachable: {exc.detail}", exc.retry_after) from exc
        except AuditlogError as exc:
            raise Unavailable(f"storage is not reachable: {exc}") from exc
        return Response(200, b'{"status":"ready"}')

    async def prometheus(request: Request, credential: Credential | None) -> Response:
        # Storage being down must not hide the other metrics; /readyz reports it.
        with contextlib.suppress(AuditlogError):
            metrics.set_store_stats(await store.stats())
        return Response(200, metrics.render(), PROMETHEUS_TEXT)

    async def openapi_json(request: Request, credential: Credential | None) -> Response:
        return Response(200, openapi())

    return [
        Route("GET", "/healthz", healthz, None, "health.live", doc=_LIVENESS),
        Route("GET", "/readyz", readyz, None, "health.ready", doc=_READINESS),
        Route("GET", "/metrics", prometheus, None, "metrics", doc=_METRICS),
        Route("GET", "/openapi.json", openapi_json, None, "openapi", doc=_OPENAPI),
    ]

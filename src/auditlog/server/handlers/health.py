"""Around the API: liveness, readiness, metrics and the OpenAPI document (no credential)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from auditlog.errors import AuditlogError, Unavailable
from auditlog.metrics import Metrics
from auditlog.model.credentials import Credential
from auditlog.server.asgi import Request, Response
from auditlog.server.routing import Route
from auditlog.storage.base import Store

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


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
        Route("GET", "/healthz", healthz, None, "health.live"),
        Route("GET", "/readyz", readyz, None, "health.ready"),
        Route("GET", "/metrics", prometheus, None, "metrics"),
        Route("GET", "/openapi.json", openapi_json, None, "openapi"),
    ]

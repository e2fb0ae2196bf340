"""Plain ASGI middleware: request metrics."""

from __future__ import annotations

import time

from auditlog.metrics import Metrics
from auditlog.server.asgi import ASGIApp, Message, Receive, Scope, Send

ROUTE_KEY = "auditlog.route"


class MetricsMiddleware:
    """Counts every HTTP request by route pattern, method and status, and times it.

    The route pattern is what the router put in the scope (``auditlog.route``), so that
    ``/v1/events/{id}`` is one series however many ids are asked for; unmatched paths share
    the series ``unmatched``.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get(ROUTE_KEY, "unmatched")
            self.metrics.requests.labels(route, scope["method"], str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - started)

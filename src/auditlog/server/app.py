"""The whole application assembled in one function: ``build_app``."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from auditlog.config import Settings
from auditlog.metrics import Metrics
from auditlog.model.credentials import EVENTS_WRITE, Credential
from auditlog.model.event import Limits
from auditlog.requestcontext import CURRENT, RequestContext
from auditlog.server import problems
from auditlog.server.accesslog import access_line
from auditlog.server.asgi import (
    BodyBudget,
    ClientDisconnected,
    Receive,
    Request,
    Response,
    Scope,
    Send,
    StreamingResponse,
)
from auditlog.server.forwarded import TrustedProxies
from auditlog.server.handlers import auth as auth_handlers
from auditlog.server.handlers import events as event_handlers
from auditlog.server.handlers import export as export_handlers
from auditlog.server.handlers import health as health_handlers
from auditlog.server.handlers import legacy as legacy_handlers
from auditlog.server.handlers import log as log_handlers
from auditlog.server.handlers import retention as retention_handlers
from auditlog.server.handlers import stream as stream_handlers
from auditlog.server.handlers import streams as streams_handlers
from auditlog.server.handlers import ui as ui_handlers
from auditlog.server.handlers import viewer as viewer_handlers
from auditlog.server.handlers import witness as witness_handlers
from auditlog.server.openapi import openapi_document
from auditlog.server.requestid import HEADER as REQUEST_ID
from auditlog.server.requestid import request_id
from auditlog.server.routing import Router
from auditlog.service import selfaudit
from auditlog.service.auth import ApiKeys, Authenticator, bearer_token, require
from auditlog.service.delivery.deliveries import Deliveries
from auditlog.service.events import Events
from auditlog.service.export import Exporter
from auditlog.service.ingest import Ingestor
from auditlog.service.integrator import Integrator
from auditlog.service.live import LiveStreams
from auditlog.service.login import Logins
from auditlog.service.logkey import LogKey
from auditlog.service.notifier import Notifier
from auditlog.service.passwords import Passwords
from auditlog.service.proofs import LogProofs
from auditlog.service.pruning import Pruner, PruneSchedule
from auditlog.service.ratelimit import LoginLimiter, RequestLimiter, TokenBuckets
from auditlog.service.retention import RetentionAdmin
from auditlog.service.selfaudit import SelfAudit
from auditlog.service.streams import StreamAdmin
from auditlog.service.tokens import Tokens
from auditlog.service.viewer import ViewerTokens
from auditlog.service.witnessed import Witnessed
from auditlog.service.witnessing import Witnessing, read_policy
from auditlog.storage.base import Store

log = logging.getLogger("auditlog.server")


@dataclass
class Services:
    """What the handlers run on; exposed for tests and the command line."""

    store: Store
    ingestor: Ingestor
    api_keys: ApiKeys
    events: Events
    metrics: Metrics
    passwords: Passwords
    tokens: Tokens
    auth: Authenticator
    logins: Logins
    audit: SelfAudit
    requests: RequestLimiter
    log_key: LogKey
    integrator: Integrator
    log: LogProofs
    notifier: Notifier
    exporter: Exporter
    live: LiveStreams
    streams: StreamAdmin
    deliveries: Deliveries | None
    viewer: ViewerTokens
    retention: RetentionAdmin
    pruning: PruneSchedule
    witnessing: Witnessing | None
    witnessed: Witnessed


class AuditlogApp:
    """The ASGI application: lifespan, routing, authentication, and errors to problems."""

    def __init__(self, settings: Settings, services: Services) -> None:
        self.settings = settings
        self.services = services
        routes = [
            *event_handlers.routes(services.events, settings.max_body_bytes, services.log),
            *export_handlers.routes(services.exporter),
            *stream_handlers.routes(services.live),
            *streams_handlers.routes(services.streams),
            *viewer_handlers.routes(services.viewer),
            *retention_handlers.routes(services.retention),
            *log_handlers.routes(services.log),
            *witness_handlers.routes(services.witnessed),
            *auth_handlers.routes(services.logins),
            *health_handlers.routes(services.store, services.metrics, self._openapi),
            *ui_handlers.routes(settings.ui_frame_ancestors),
            *legacy_handlers.routes(
                services.events,
                services.logins,
                services.audit,
                settings.max_body_bytes,
                settings.legacy_max_events,
            ),
        ]
        self.router = Router(routes)
        # Built now, so that a route without documentation stops the start, not a request.
        self._openapi_bytes = openapi_document(self.router.routes)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._metric_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        networks = settings.trusted_networks
        self._proxies = TrustedProxies(networks, settings.forwarded_header) if networks else None
        self._access_log = settings.access_log
        self._bodies = BodyBudget(
            settings.max_bodies_bytes,
            settings.retry_after,
            services.metrics.rejected.labels("bodies_full").inc,
        )

    def _openapi(self) -> bytes:
        return self._openapi_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        else:  # websockets are not spoken here
            await send({"type": "websocket.close", "code": 1000})

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request = Request(scope, receive, self._bodies)
        method = request.method
        headers = request.headers
        if self._proxies is not None:
            request.client, scheme = self._proxies.resolve(request.client, headers)
            if scheme is not None:
                scope["scheme"] = scheme
        # The request's id and what becomes known of it, for its log lines and records.
        context = RequestContext(request_id(headers.get(REQUEST_ID)), request.client, method)
        current = CURRENT.set(context)
        try:
            response = await self._answer(request, context)
            if response is None:
                return
            await response.send(send, head_only=method == "HEAD")
            seconds = time.perf_counter() - started
            # Metrics are labelled by route pattern, so /v1/events/{id} is one series
            # whatever the id; paths that match no route share the series "unmatched".
            self._observe(context.route, method, response.status, seconds)
            if self._access_log:
                access_line(context, response.status, seconds)
        finally:
            request.release()  # answered, the client gone, or cancelled
            CURRENT.reset(current)

    async def _answer(
        self, request: Request, context: RequestContext
    ) -> Response | StreamingResponse | None:
        """The answer to ``request`` (errors as problems), with its ``X-Request-ID``;
        ``None`` when the client went away first."""
        try:
            route, params = self.router.match(request.method, request.path)
            context.route = route.pattern
            request.path_params = params
            credential: Credential | None = None
            if route.scope is not None:
                token = bearer_token(request.headers.get("authorization"))
                credential = await self.services.auth.authenticate(token)
                context.credential_id = credential.credential_id
                if route.scope:
                    require(credential, route.scope)
                # A person's limit follows the person, not each token a new login gives.
                who = credential.principal if credential.kind == "jwt" else credential.credential_id
                self.services.requests.check(
                    who, "write" if route.scope == EVENTS_WRITE else "read"
                )
            response = await route.handler(request, credential)
        except ClientDisconnected:
            return None
        except Exception as exc:
            response = problems.from_exception(exc)
        response.headers.append((b"x-request-id", context.request_id.encode("ascii")))
        return response

    def _observe(self, pattern: str, method: str, status: int, seconds: float) -> None:
        # labels() looks its child up by a tuple of strings; keep the children at hand.
        children = self._metric_children.get((pattern, method, status))
        if children is None:
            metrics = self.services.metrics
            children = (
                metrics.requests.labels(pattern, method, str(status)),
                metrics.latency.labels(pattern),
            )
            self._metric_children[(pattern, method, status)] = children
        children[0].inc()
        children[1].observe(seconds)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await self.shutdown()
                except Exception as exc:
                    log.exception("shutdown failed")
                    await send({"type": "lifespan.shutdown.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def startup(self) -> None:
        """Open storage, load (or make) the token signing key, and start the writer."""
        await self.services.store.open()
        await self.services.tokens.load_key()
        await self.services.log_key.load()
        self._loop = asyncio.get_running_loop()
        await self.services.notifier.start()
        notifier, recent = self.services.notifier, self.services.integrator.recent

        def committed(tenant: str, events: Sequence[tuple[int, bytes]]) -> None:
            notifier.committed(tenant, events)
            recent.add(tenant, events)

        self.services.ingestor.on_commit = committed
        self.services.ingestor.start()
        self.services.integrator.start()
        if self.services.deliveries is not None:
            self.services.deliveries.start()
        self.services.pruning.start()
        if self.services.witnessing is not None:
            self.services.witnessing.start()
        log.info("auditlog ready")

    def drain(self) -> None:
        """The server is stopping: end the live streams, whose readers would otherwise hold
        it up until its graceful shutdown times out (they reconnect elsewhere).

        Safe to call from a signal handler: the work is handed to the event loop.
        """
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.services.live.drain)

    async def shutdown(self) -> None:
        """Stop delivering streams, commit everything queued, answer its waiters, then close
        storage."""
        self.services.live.drain()
        await self.services.pruning.close()
        if self.services.deliveries is not None:
            await self.services.deliveries.close()
        await self.services.ingestor.close()
        await self.services.integrator.close()  # a last round: every answered write covered
        if self.services.witnessing is not None:
            await self.services.witnessing.close()
        await self.services.notifier.close()
        await self.services.store.close()
        log.info("auditlog stopped")


def build_services(settings: Settings, store: Store) -> Services:
    """The services for one instance, on ``store``."""
    metrics = Metrics()
    ingestor = Ingestor(
        store,
        metrics,
        queue_max_events=settings.queue_max_events,
        commit_max_events=settings.commit_max_events,
        retry_after=settings.retry_after,
    )
    limits = Limits(
        max_event_bytes=settings.max_event_bytes,
        max_batch_events=settings.max_batch_events,
        max_data_depth=settings.max_data_depth,
    )
    api_keys = ApiKeys(store)
    passwords = Passwords()
    tokens = Tokens(store, settings.token_lifetime)
    limiter = LoginLimiter(
        TokenBuckets(settings.login_failures_per_user, settings.login_user_refill_seconds),
        TokenBuckets(settings.login_failures_per_address, settings.login_address_refill_seconds),
    )
    audit = SelfAudit(ingestor, settings.audit_reads)
    log_key = LogKey(store, settings.log_origin, settings.log_signing_key_file)
    integrator = Integrator(store, log_key, interval_ms=settings.checkpoint_interval_ms)
    witnessing = (
        Witnessing(
            store,
            read_policy(settings.witness_policy),
            metrics,
            timeout=settings.witness_timeout_ms / 1000,
        )
        if settings.witness_policy
        else None
    )
    if witnessing is not None:
        integrator.on_tenants_checkpoint(witnessing.checkpoint_signed)
    events = Events(store, ingestor, limits, audit)
    notifier = Notifier(store, settings.notifier_poll_ms / 1000)
    deliveries = (
        Deliveries(
            store,
            notifier,
            metrics,
            lease_seconds=settings.stream_lease_seconds,
            timeout=settings.stream_timeout_seconds,
            batch_events=settings.stream_batch_events,
            batch_bytes=settings.stream_batch_bytes,
            linger=settings.stream_linger_ms / 1000,
            backoff_max=settings.stream_backoff_max_seconds,
        )
        if settings.stream_delivery
        else None
    )
    return Services(
        store=store,
        ingestor=ingestor,
        api_keys=api_keys,
        events=events,
        audit=audit,
        requests=RequestLimiter.from_rates(
            settings.write_rate, settings.write_burst, settings.read_rate, settings.read_burst
        ),
        metrics=metrics,
        passwords=passwords,
        tokens=tokens,
        auth=Authenticator(api_keys, tokens),
        logins=Logins(store, passwords, tokens, limiter, audit),
        log_key=log_key,
        integrator=integrator,
        log=LogProofs(store, log_key, integrator, settings.checkpoint_wait_ms),
        notifier=notifier,
        exporter=Exporter(
            store,
            audit,
            page_events=settings.export_page_events,
            max_running=settings.export_max_running,
            retry_after=settings.retry_after,
        ),
        live=LiveStreams(
            store,
            notifier,
            audit,
            metrics,
            per_credential=settings.live_streams_per_credential,
            per_process=settings.live_streams_per_process,
            buffer_bytes=settings.live_stream_buffer_bytes,
            keepalive=settings.live_stream_keepalive_seconds,
            retry_after=settings.retry_after,
        ),
        streams=StreamAdmin(
            store,
            notifier,
            audit,
            settings.host,
            settings.port,
            on_change=deliveries.changed if deliveries is not None else None,
        ),
        deliveries=deliveries,
        viewer=ViewerTokens(store, api_keys, audit),
        retention=RetentionAdmin(store, audit),
        pruning=PruneSchedule(
            Pruner(store, functools.partial(_record_as_service, audit), metrics=metrics),
            store,
            settings.prune_interval_seconds,
            metrics,
        ),
        witnessing=witnessing,
        witnessed=Witnessed(store, log_key, events, witnessing),
    )


async def _record_as_service(
    audit: SelfAudit, tenant: str, type_: str, data: dict[str, Any]
) -> None:
    """A record of the service's own scheduled work (pruning) in a tenant's log."""
    await audit.record(tenant, type_, selfaudit.SERVICE_ACTOR, "success", data)


def build_app(settings: Settings, store: Store) -> AuditlogApp:
    """The complete ASGI application for ``settings`` on ``store`` (not yet opened)."""
    return AuditlogApp(settings, build_services(settings, store))


__all__ = ["AuditlogApp", "Response", "Services", "build_app", "build_services"]

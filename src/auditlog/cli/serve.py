"""``auditlog serve``: the service on uvicorn (uvloop + httptools, with a bounded request head).

With ``tls_cert`` it speaks HTTPS, and SIGHUP (or a change of the files) reloads the
certificate for new connections (``auditlog.server.tls``).

uvicorn owns the signals: on SIGTERM or SIGINT it stops accepting connections, lets in-flight
requests finish (they wait on their group commit, which the writer keeps serving), then runs
the lifespan shutdown, which commits anything still queued before the store closes.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import sys
from collections.abc import Callable
from types import FrameType

import uvicorn

from auditlog import logformat
from auditlog.collector import collect_less
from auditlog.config import Settings
from auditlog.server.app import build_app
from auditlog.server.headlimit import BoundedHttpToolsProtocol
from auditlog.server.tls import ReloadingTls, TlsFiles
from auditlog.storage.factory import open_store

#: uvicorn's exit status when the server could not start.
STARTUP_FAILURE = 3


def serve(settings: Settings) -> int:
    logformat.configure(settings.log_level, settings.log_format)
    # In JSON, uvicorn's loggers reach the root's handler; in text, they keep their own.
    log_config = None if settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG
    # A shorter switch interval lets the event loop take the GIL back from reader threads
    # quickly, which keeps write latency low while queries run.
    sys.setswitchinterval(0.001)
    tls = (
        ReloadingTls(
            TlsFiles(settings.tls_cert, settings.tls_key, settings.tls_client_ca),
            settings.tls_reload_seconds,
        )
        if settings.tls_cert
        else None
    )
    app = build_app(settings, open_store(settings, serving=True))
    collect_less()
    # uvicorn handles SIGTERM and SIGINT while it serves, drains, and then raises the signal
    # again under whatever handler was there before it. With ours in place, a drained
    # shutdown ends with exit status 0 instead of death by the signal.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _drained)
    loop = "uvloop" if sys.platform != "win32" else "asyncio"
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop=loop,
        http=BoundedHttpToolsProtocol,
        lifespan="on",
        log_config=log_config,
        # The application writes the access log itself (auditlog.server.accesslog), with
        # the route, the request id and the client's address behind trusted proxies.
        access_log=False,
        # Forwarding headers are believed by the application, from trusted_proxies only;
        # uvicorn's own handling would believe X-Forwarded-For from any local peer.
        proxy_headers=False,
        log_level=settings.log_level,
        timeout_graceful_shutdown=settings.shutdown_timeout,
        server_header=False,
        date_header=True,
        # The listening socket's context; it hands each handshake the newest certificate.
        ssl_context_factory=(lambda _config, _default: tls.context) if tls else None,
    )
    server = _DrainingServer(config, app.drain, tls)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    return 0 if server.started else STARTUP_FAILURE


class _DrainingServer(uvicorn.Server):
    """uvicorn's server, telling the application as soon as a signal asks it to stop.

    uvicorn then waits for open requests to finish before the lifespan shutdown; live
    streams never finish by themselves, so the application ends them at once.
    """

    def __init__(
        self, config: uvicorn.Config, on_exit: Callable[[], None], tls: ReloadingTls | None
    ) -> None:
        super().__init__(config)
        self._on_exit = on_exit
        self._tls = tls

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        if self._tls is not None:
            # Before the socket listens: a SIGHUP from then on reloads, never kills.
            self._tls.start()
        await super().startup(sockets)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self._tls is not None:
            await self._tls.stop()
        await super().shutdown(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._on_exit()
        super().handle_exit(sig, frame)


def _drained(signum: int, frame: FrameType | None) -> None:
    """The signal uvicorn raises again after its graceful shutdown: nothing is left to do."""

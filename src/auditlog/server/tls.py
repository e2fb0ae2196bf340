"""TLS for ``auditlog serve``: the server's certificate, mutual TLS, and reloading both.

``ReloadingTls.context`` is the ``ssl.SSLContext`` the listening socket is made with, and it
stays that one for the server's life. Each new connection's handshake asks it for the newest
context through its SNI callback (which OpenSSL calls for every ClientHello, with a server
name or without) and switches the connection to it; so a reload builds a whole new context
from the files and swaps it in for new connections, while connections already open keep the
one they began with. A reload happens on SIGHUP and when the files change (their size,
modification time or inode, looked at every ``tls_reload_seconds``). A new certificate that
does not load (unreadable, not PEM, a key that does not match, a CA file that holds no
certificate) is logged as an error and the one in use is kept.

With a client CA (``tls_client_ca``), every client must present a certificate that it signed:
one without, or with another, is refused during the handshake, before any HTTP is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import ssl
from dataclasses import dataclass

from cryptography import x509

from auditlog.errors import ConfigError

log = logging.getLogger("auditlog.tls")


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """Where the server's certificate chain, its key and the client CAs are read from."""

    cert: str
    key: str = ""
    client_ca: str = ""

    def paths(self) -> tuple[str, ...]:
        return tuple(p for p in (self.cert, self.key, self.client_ca) if p)


def build_context(files: TlsFiles) -> ssl.SSLContext:
    """A server context from ``files`` (TLS 1.2 or newer); ``OSError``/``ssl.SSLError``/
    ``ValueError`` if any of them does not load."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(files.cert, files.key or None)
    if files.client_ca:
        context.load_verify_locations(cafile=files.client_ca)
        if not context.get_ca_certs():
            raise ValueError(f"{files.client_ca} holds no CA certificate")
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def describe(path: str) -> str:
    """The first certificate of a PEM file, for the log: subject, serial, end of validity."""
    try:
        with open(path, "rb") as fh:
            cert = x509.load_pem_x509_certificate(fh.read())
    except (OSError, ValueError) as exc:
        return f"{path} ({exc})"
    return (
        f"{cert.subject.rfc4514_string()}, serial {cert.serial_number:x}, "
        f"valid until {cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}"
    )


def _signature(paths: tuple[str, ...]) -> tuple[tuple[int, int, int] | None, ...]:
    """What tells that a file changed: inode, size and modification time of each."""
    found: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            found.append(None)
        else:
            found.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(found)


class ReloadingTls:
    """The listening socket's TLS context, which hands each new connection the newest one."""

    def __init__(self, files: TlsFiles, poll_seconds: float) -> None:
        self.files = files
        self.poll_seconds = poll_seconds
        self._seen = _signature(files.paths())
        try:
            self.context = build_context(files)
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise ConfigError(f"TLS: cannot load {', '.join(files.paths())}: {exc}") from None
        self._current = self.context
        self.context.sni_callback = self._choose
        self._watching: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reloading = asyncio.Lock()
        log.info("TLS certificate: %s", describe(files.cert))

    def _choose(self, connection: ssl.SSLObject, server_name: str | None, _: object) -> None:
        """The SNI callback of every handshake: move the connection to the newest context."""
        newest = self._current
        if connection.context is not newest:
            connection.context = newest

    async def reload(self) -> bool:
        """Build a context from the files now and use it for new connections; on failure
        log why and keep the one in use. Whether the new one is in use."""
        async with self._reloading:
            self._seen = _signature(self.files.paths())
            try:
                context = await asyncio.to_thread(build_context, self.files)
            except (OSError, ssl.SSLError, ValueError) as exc:
                log.error(
                    "TLS: the certificate files (%s) do not load: %s; keeping the certificate in use",
                    ", ".join(self.files.paths()),
                    exc,
                )
                return False
            self._current = context
            log.info("TLS certificate reloaded: %s", describe(self.files.cert))
            return True

    def start(self) -> None:
        """On the running loop: reload on SIGHUP, and when the files change."""
        self._loop = asyncio.get_running_loop()
        self._loop.add_signal_handler(signal.SIGHUP, self._hangup)
        if self.poll_seconds > 0:
            self._watching = self._loop.create_task(self._watch())

    async def stop(self) -> None:
        if self._loop is not None:
            self._loop.remove_signal_handler(signal.SIGHUP)
        if self._watching is not None:
            self._watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watching

    def _hangup(self) -> None:
        log.info("SIGHUP: reloading the TLS certificate")
        assert self._loop is not None
        task = self._loop.create_task(self.reload())
        _pending.add(task)
        task.add_done_callback(_pending.discard)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            try:
                if _signature(self.files.paths()) != self._seen:
                    await self.reload()
            except Exception:
                log.exception("TLS: checking the certificate files failed")


#: Reloads started by a signal, held until they are done.
_pending: set[asyncio.Task[bool]] = set()

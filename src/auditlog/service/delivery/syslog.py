"""The syslog sink: RFC 5424 messages over TCP (RFC 6587 octet counting), optionally TLS
(RFC 5425).

Each event is one message, framed as ``<length> <message>``::

    <PRI>1 TIMESTAMP HOSTNAME APP-NAME - MSGID - MSG

* PRI is ``facility * 8 + severity``: severity 6 (informational), or 4 (warning) for an
  event whose ``outcome`` is ``failure``; facility 13 (log audit) unless set.
* TIMESTAMP is the event's ``time`` as stored (RFC 3339, UTC, microseconds), so the
  collector files the event under when it happened.
* HOSTNAME is the destination's ``hostname``, else this machine's name; APP-NAME its
  ``app_name``, else ``auditlog``. PROCID and STRUCTURED-DATA are nil (``-``).
* MSGID is the event's ``type`` cut to 32 characters, each one that is not printable
  US-ASCII replaced by ``_`` (RFC 5424's MSGID is 1*32 PRINTUSASCII).
* MSG is the stored event JSON, as stored, without the UTF-8 BOM RFC 5424 §6.4 uses to mark
  MSG-UTF8: the MSG is JSON text, which RFC 8259 §8.1 says is UTF-8 and must not begin with
  a BOM, and collectors that keep the BOM (rsyslog, syslog-ng) would hand every JSON parser
  downstream a message it must refuse. Without the BOM the MSG is MSG-ANY, which a receiver
  takes as it is. RFC 6587 octet counting frames by length, so neither the JSON nor any
  event content can break framing, and events up to the collector's maximum message size
  pass (rsyslog's default is 8 KiB; events are up to 64 KiB, so raise its
  ``maxMessageSize``).

One connection is kept open across batches. ``send`` writes the whole batch and waits
until the kernel has taken every byte (``drain``); on any error it closes the connection
and raises ``DeliveryFailed``, and the next ``send`` connects again. TLS verifies the
collector's certificate and name against ``ca_pem`` (else the system's CAs), unless
``verify_tls`` is false.

What "delivered" means here: syslog over TCP or TLS has no application-level
acknowledgement. A successful ``send`` means every byte was accepted by this machine's
kernel for sending; the collector may not have received them yet. If the collector or its
machine dies, or the connection breaks, before the bytes are read and written to its store,
the tail of a batch (or a whole batch) can be lost although ``send`` succeeded, and the
stream's progress has already moved past it. Bytes written in the moment a collector stops
reading and closes are lost the same way. A collector's close that has already arrived is
noticed before the next write (the connection is then replaced), and a reset makes the
write fail, which narrows the gap but does not close it. Closing it takes a protocol with acknowledgements, such as RELP
(rsyslog's omrelp/imrelp); where no event may go missing, use the webhook or Splunk HEC
destination, whose 2xx answers acknowledge each batch, or reconcile the collector against
the log's ``seq`` numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
from typing import Any

import orjson

from auditlog.service.delivery.destinations import (
    DEFAULT_APP_NAME,
    DEFAULT_FACILITY,
    MAX_SYSLOG_HOSTNAME,
    Destination,
)
from auditlog.service.delivery.sink import Batch, DeliveryFailed

SEVERITY_INFORMATIONAL = 6
SEVERITY_WARNING = 4
MAX_MSGID = 32
NIL = "-"

_NOT_PRINTABLE = re.compile(r"[^\x21-\x7e]")
# RFC 5424 §6.2.3 TIMESTAMP: FULL-DATE "T" FULL-TIME, at most six digits of fraction.
_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})", re.ASCII
)


def header_text(text: str, max_len: int) -> str:
    """``text`` fit for a header field: printable US-ASCII, at most ``max_len``, or nil."""
    return _NOT_PRINTABLE.sub("_", text[:max_len]) or NIL


def encode_message(stored: bytes, *, facility: int, hostname: str, app_name: str) -> bytes:
    """One event as a framed RFC 5424 message: ``<length> <PRI>1 ... MSG``."""
    try:
        event: Any = orjson.loads(stored)
    except orjson.JSONDecodeError:
        event = None
    if not isinstance(event, dict):
        event = {}
    severity = SEVERITY_WARNING if event.get("outcome") == "failure" else SEVERITY_INFORMATIONAL
    time = event.get("time")
    timestamp = time if isinstance(time, str) and _TIMESTAMP.fullmatch(time) else NIL
    kind = event.get("type")
    msgid = header_text(kind, MAX_MSGID) if isinstance(kind, str) else NIL
    header = f"<{facility * 8 + severity}>1 {timestamp} {hostname} {app_name} - {msgid} - "
    message = header.encode("ascii") + stored
    return b"%d %s" % (len(message), message)


def tls_context(ca_pem: str | None, verify: bool) -> ssl.SSLContext:
    """A client context for RFC 5425: ``ca_pem`` (or the system's CAs), names checked."""
    context = ssl.create_default_context(cadata=ca_pem) if ca_pem else ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class SyslogSink:
    """Writes batches to one collector over a connection kept open between them."""

    def __init__(
        self,
        host: str,
        port: int,
        timeout: float,
        *,
        hostname: str,
        tls: ssl.SSLContext | None = None,
        facility: int = DEFAULT_FACILITY,
        app_name: str = DEFAULT_APP_NAME,
    ) -> None:
        self._host = host
        self._port = port
        self._timeout = timeout
        self._tls = tls
        self._facility = facility
        self._hostname = header_text(hostname, MAX_SYSLOG_HOSTNAME)
        self._app_name = app_name
        shown_host = f"[{host}]" if ":" in host else host
        self._where = f"{'tls' if tls is not None else 'tcp'}://{shown_host}:{port}"
        self._stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    @classmethod
    def from_destination(
        cls, dest: Destination, timeout: float, *, default_hostname: str
    ) -> SyslogSink:
        if dest.kind != "syslog":
            raise ValueError("a syslog destination is needed")
        options = dest.options
        facility = options.get("facility", DEFAULT_FACILITY)
        hostname = options.get("hostname", default_hostname)
        app_name = options.get("app_name", DEFAULT_APP_NAME)
        ca_pem = options.get("ca_pem")
        tls = None
        if dest.scheme == "tls":
            tls = tls_context(
                ca_pem if isinstance(ca_pem, str) else None,
                options.get("verify_tls", True) is not False,
            )
        return cls(
            dest.host,
            dest.port,
            timeout,
            hostname=str(hostname),
            tls=tls,
            facility=facility if type(facility) is int else DEFAULT_FACILITY,
            app_name=str(app_name),
        )

    def encode(self, batch: Batch) -> bytes:
        """The batch as the bytes written: its framed messages, one per event, in order."""
        return b"".join(
            encode_message(
                stored, facility=self._facility, hostname=self._hostname, app_name=self._app_name
            )
            for _, stored in batch.events
        )

    async def send(self, batch: Batch) -> None:
        frames = self.encode(batch)
        connecting = True
        try:
            async with asyncio.timeout(self._timeout):
                writer = await self._connected()
                connecting = False
                writer.write(frames)
                await writer.drain()
        except TimeoutError:
            await self._drop()
            raise DeliveryFailed(
                f"{self._where} did not take the batch within {self._timeout:g} s",
                reason="timeout",
            ) from None
        except ssl.SSLError as exc:
            await self._drop()
            raise DeliveryFailed(
                f"TLS with {self._where} failed: {_text(exc)}", reason="tls"
            ) from None
        except OSError as exc:
            await self._drop()
            if connecting:
                raise DeliveryFailed(
                    f"cannot connect to {self._where}: {_text(exc)}", reason="connect"
                ) from None
            raise DeliveryFailed(
                f"the connection to {self._where} broke: {_text(exc)}", reason="closed"
            ) from None
        except BaseException:
            # Cancelled mid-write: what the collector got is unknown, so start afresh.
            await self._drop()
            raise

    async def close(self) -> None:
        await self._drop()

    async def _connected(self) -> asyncio.StreamWriter:
        if self._stream is not None:
            reader, writer = self._stream
            # A collector that closed its end would let the kernel take our bytes and then
            # drop them: notice it now and connect again instead.
            if reader.at_eof() or writer.is_closing():
                await self._drop()
        if self._stream is None:
            reader, writer = await asyncio.open_connection(
                self._host,
                self._port,
                ssl=self._tls,
                server_hostname=self._host if self._tls is not None else None,
            )
            sock = writer.get_extra_info("socket")
            if sock is not None:
                # A collector that vanished without a word is found out between batches.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            self._stream = (reader, writer)
        return self._stream[1]

    async def _drop(self) -> None:
        if self._stream is None:
            return
        _, writer = self._stream
        self._stream = None
        writer.close()
        # A TLS close waits for the peer; it must not hold the worker.
        with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
            async with asyncio.timeout(min(self._timeout, 5.0)):
                await writer.wait_closed()


def _text(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."

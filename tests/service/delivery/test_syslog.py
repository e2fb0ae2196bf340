"""The syslog sink (``auditlog.service.delivery.syslog``): the messages it makes, read back by
a real rsyslogd (plain TCP and TLS with rsyslog's OpenSSL driver), and its connection
handling against collectors written here (a reset, a collector that stops reading).

rsyslogd runs in the foreground (``-n``) with a configuration each test writes: imtcp on a
port of 127.0.0.1 it picks itself (written to a file), octet-counted framing, a 256 KiB
maximum message size, and an omfile action that writes each message's parsed RFC 5424
fields as one JSON line, so the test reads back what rsyslog understood. It is stopped by
its pid when the test ends. Where rsyslogd (or its TLS driver) is not installed the tests
skip, except in CI (``CI`` set), where they fail: ``.ci/run`` installs them.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import json
import os
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from auditlog.service.delivery.destinations import parse_destination
from auditlog.service.delivery.sink import Batch, DeliveryFailed, open_sink
from auditlog.service.delivery.syslog import SyslogSink, encode_message
from service.delivery.certs import Certificates, make_certificates
from service.delivery.events import batch, stored_event

pytestmark = pytest.mark.anyio

TIMEOUT = 10.0
START_TIMEOUT = 20.0  # seconds for rsyslogd to listen
ARRIVAL_TIMEOUT = 20.0  # seconds for messages to reach its output file
STOP_TIMEOUT = 10.0
FACILITY_AUDIT = 13


def missing(what: str) -> None:
    """Fail in CI, where every test must run; skip with the reason elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is not installed; CI must run the syslog tests (.ci/run installs it)")
    pytest.skip(f"{what} is not installed (apt-get install rsyslog rsyslog-openssl)")


def find_rsyslogd() -> str:
    found = shutil.which("rsyslogd") or next(
        (p for p in ("/usr/sbin/rsyslogd", "/sbin/rsyslogd") if os.access(p, os.X_OK)), None
    )
    if found is None:
        missing("rsyslogd")
    assert found is not None
    return found


def require_tls_driver() -> None:
    patterns = ("/usr/lib/*/rsyslog/lmnsd_ossl.so", "/usr/lib/rsyslog/lmnsd_ossl.so")
    patterns += ("/usr/lib64/rsyslog/lmnsd_ossl.so",)
    if not any(glob.glob(p) for p in patterns):
        missing("rsyslog's OpenSSL driver (rsyslog-openssl)")


# --- rsyslogd, run by the test ------------------------------------------------------------

# One JSON line per message: the fields rsyslog parsed out of the RFC 5424 header, and MSG.
TEMPLATE = """
template(name="fields" type="list" option.jsonf="on") {
  property(outname="pri" name="pri" format="jsonf")
  property(outname="version" name="protocol-version" format="jsonf")
  property(outname="timestamp" name="timereported" dateFormat="rfc3339" format="jsonf")
  property(outname="hostname" name="hostname" format="jsonf")
  property(outname="app_name" name="app-name" format="jsonf")
  property(outname="procid" name="procid" format="jsonf")
  property(outname="msgid" name="msgid" format="jsonf")
  property(outname="sd" name="structured-data" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
}
"""


@dataclass
class Rsyslog:
    port: int
    output: Path
    log: Path

    def messages(self, count: int) -> list[dict[str, Any]]:
        """The first ``count`` messages rsyslogd wrote out, waiting for them (bounded)."""
        deadline = time.monotonic() + ARRIVAL_TIMEOUT
        lines: list[bytes] = []
        while time.monotonic() < deadline:
            if self.output.exists():
                lines = self.output.read_bytes().splitlines()
                if len(lines) >= count:
                    return [json.loads(line) for line in lines[:count]]
            time.sleep(0.05)
        pytest.fail(
            f"rsyslogd wrote {len(lines)} of {count} messages in {ARRIVAL_TIMEOUT} s; "
            f"its log: {self.log.read_text(errors='replace')[-2000:]}"
        )


@contextlib.contextmanager
def rsyslogd(work: Path, tls: Certificates | None = None) -> Iterator[Rsyslog]:
    """rsyslogd listening on 127.0.0.1 (TLS with ``tls``), stopped by its pid at the end."""
    program = find_rsyslogd()
    if tls is not None:
        require_tls_driver()
    work.mkdir(parents=True, exist_ok=True)
    port_file, output, log = work / "port", work / "messages.jsonl", work / "rsyslogd.log"
    driver = ""
    tls_files = ""
    if tls is not None:
        for name, pem in (("ca", tls.ca_pem), ("cert", tls.cert_pem), ("key", tls.key_pem)):
            (work / f"{name}.pem").write_text(pem)
        tls_files = (
            f' defaultNetstreamDriverCAFile="{work}/ca.pem"'
            f' defaultNetstreamDriverCertFile="{work}/cert.pem"'
            f' defaultNetstreamDriverKeyFile="{work}/key.pem"'
        )
        driver = ' streamDriver.name="ossl" streamDriver.mode="1" streamDriver.authMode="anon"'
    config = work / "rsyslog.conf"
    config.write_text(
        f'global(workDirectory="{work}" maxMessageSize="256k"{tls_files})\n'
        f'module(load="imtcp" maxFrameSize="300000"{driver})\n'
        f"{TEMPLATE}\n"
        f'ruleset(name="received") {{ action(type="omfile" file="{output}" template="fields") }}\n'
        f'input(type="imtcp" address="127.0.0.1" port="0" listenPortFileName="{port_file}"'
        ' ruleset="received" supportOctetCountedFraming="on")\n'
    )
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [program, "-n", "-f", str(config), "-i", str(work / "rsyslogd.pid")],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while not (port_file.exists() and port_file.read_text().strip()):
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"rsyslogd did not start: {log.read_text(errors='replace')}")
                time.sleep(0.05)
            yield Rsyslog(int(port_file.read_text()), output, log)
        finally:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_TIMEOUT)


def syslog_sink(url: str, **options: Any) -> SyslogSink:
    sink = open_sink(parse_destination({"kind": "syslog", "url": url, **options}), TIMEOUT)
    assert isinstance(sink, SyslogSink)
    return sink


async def send(sink: SyslogSink, *batches: Batch) -> None:
    try:
        for each in batches:
            await sink.send(each)
    finally:
        await sink.close()


def same_instant(a: str, b: str) -> bool:
    return datetime.fromisoformat(a.replace("Z", "+00:00")) == datetime.fromisoformat(
        b.replace("Z", "+00:00")
    )


def check_message(
    message: dict[str, Any],
    stored: bytes,
    *,
    hostname: str,
    app_name: str = "auditlog",
    facility: int = FACILITY_AUDIT,
) -> None:
    event = orjson.loads(stored)
    severity = 4 if event.get("outcome") == "failure" else 6
    assert int(message["pri"]) == facility * 8 + severity
    assert message["version"] == "1"
    assert same_instant(message["timestamp"], event["time"])
    assert message["hostname"] == hostname
    assert message["app_name"] == app_name
    assert message["procid"] == "-"
    assert message["sd"] == "-"
    expected_msgid = "".join(c if "!" <= c <= "~" else "_" for c in event["type"][:32])
    assert message["msgid"] == expected_msgid
    assert message["msg"].encode("utf-8") == stored  # the stored bytes, as stored
    assert json.loads(message["msg"]) == event


EVENTS = [
    stored_event(0),
    stored_event(1, outcome="failure", type="user.login.failed"),
    stored_event(2, type="compte créé ✓", data={"nom": "Zoë", "ville": "Zürich", "emoji": "🔐"}),
    stored_event(3, type="a" * 40, time="2025-12-31T23:59:59.999999Z"),
    stored_event(4, outcome="success", data={"blob": "x" * 60 * 1024}),  # 60 KiB
    stored_event(5, type="has spaces\tand tabs", outcome="unknown"),
]


def test_events_are_as_large_as_the_test_says() -> None:
    assert len(EVENTS[4]) > 60 * 1024
    assert not EVENTS[2].isascii()


async def test_batches_reach_rsyslog_as_rfc5424_messages(tmp_path: Path) -> None:
    with rsyslogd(tmp_path / "rsyslog") as collector:
        sink = syslog_sink(f"tcp://127.0.0.1:{collector.port}", hostname="audit-1.example")
        first = Batch("s", [(seq, EVENTS[seq]) for seq in (0, 1, 2)])
        second = Batch("s", [(seq, EVENTS[seq]) for seq in (3, 4, 5)])
        await send(sink, first, second)
        messages = collector.messages(len(EVENTS))
    by_seq = {json.loads(m["msg"])["seq"]: m for m in messages}
    assert sorted(by_seq) == list(range(len(EVENTS)))
    for seq, stored in enumerate(EVENTS):
        check_message(by_seq[seq], stored, hostname="audit-1.example")
    assert by_seq[1]["pri"] == str(13 * 8 + 4)
    assert by_seq[2]["msgid"] == "compte_cr____"
    assert by_seq[3]["msgid"] == "a" * 32


async def test_facility_app_name_and_the_default_hostname(tmp_path: Path) -> None:
    with rsyslogd(tmp_path / "rsyslog") as collector:
        sink = syslog_sink(f"tcp://127.0.0.1:{collector.port}", facility=10, app_name="acme-audit")
        await send(sink, batch("s", 7, 8), batch("s", 9, outcome="failure"))
        messages = collector.messages(3)
    own_name = "".join(c if "!" <= c <= "~" else "_" for c in socket.gethostname()[:255]) or "-"
    for message in messages:
        seq = json.loads(message["msg"])["seq"]
        stored = stored_event(seq, outcome="failure") if seq == 9 else stored_event(seq)
        check_message(message, stored, hostname=own_name, app_name="acme-audit", facility=10)


async def test_tls_to_rsyslog(tmp_path: Path) -> None:
    certs = make_certificates()
    other_ca = make_certificates("another CA").ca_pem
    with rsyslogd(tmp_path / "rsyslog", tls=certs) as collector:
        url = f"tls://127.0.0.1:{collector.port}"
        for options in ({}, {"ca_pem": other_ca}):  # the system's CAs; a CA that did not sign
            with pytest.raises(DeliveryFailed) as caught:
                await send(syslog_sink(url, **options), batch("s", 1))
            assert caught.value.reason == "tls"
            assert "certificate" in caught.value.message
        await send(
            syslog_sink(url, ca_pem=certs.ca_pem, hostname="h"), batch("s", 1, 2), batch("s", 3)
        )
        await send(
            syslog_sink(f"tls://localhost:{collector.port}", ca_pem=certs.ca_pem, hostname="h"),
            batch("s", 4),
        )
        await send(syslog_sink(url, verify_tls=False, hostname="h"), batch("s", 5, 6))
        messages = collector.messages(6)
    assert sorted(json.loads(m["msg"])["seq"] for m in messages) == [1, 2, 3, 4, 5, 6]
    for message in messages:
        check_message(message, stored_event(json.loads(message["msg"])["seq"]), hostname="h")


# --- the connection, against collectors written here --------------------------------------


class Collector:
    """A syslog collector on 127.0.0.1 in the test's own event loop: it keeps what each
    connection sent and can reset every connection or stop reading."""

    def __init__(self) -> None:
        self.received: list[bytearray] = []
        self._transports: list[asyncio.Transport] = []
        self._closed: list[asyncio.Event] = []
        self._server: asyncio.Server | None = None
        self.reading = True

    async def __aenter__(self) -> Collector:
        collector = self

        class Protocol(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                assert isinstance(transport, asyncio.Transport)
                self.data = bytearray()
                self.closed = asyncio.Event()
                collector.received.append(self.data)
                collector._transports.append(transport)
                collector._closed.append(self.closed)
                if not collector.reading:
                    transport.pause_reading()

            def data_received(self, data: bytes) -> None:
                self.data += data

            def connection_lost(self, exc: Exception | None) -> None:
                self.closed.set()

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(Protocol, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for transport in self._transports:
            transport.abort()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def reset_all(self) -> None:
        """Drop every connection with a TCP reset, as a collector that crashed would, and
        return once the sockets are closed (asyncio closes them a loop iteration later)."""
        for transport in self._transports:
            sock = transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        async with asyncio.timeout(TIMEOUT):
            for closed in self._closed:
                await closed.wait()
        self._transports.clear()
        self._closed.clear()


def frames(data: bytes) -> list[bytes]:
    """The messages of an octet-counted stream (RFC 6587 §3.4.1)."""
    found, at = [], 0
    while at < len(data):
        space = data.index(b" ", at)
        length = int(data[at:space])
        found.append(data[space + 1 : space + 1 + length])
        at = space + 1 + length
    assert at == len(data)
    return found


async def wait_for(predicate: Any) -> None:
    for _ in range(400):  # bounded: 20 s
        if predicate():
            return
        await asyncio.sleep(0.05)
    pytest.fail("the collector did not receive what was sent")


async def test_after_a_reset_the_next_send_connects_again() -> None:
    async with Collector() as collector:
        sink = syslog_sink(f"tcp://127.0.0.1:{collector.port}", hostname="h")
        try:
            await sink.send(batch("s", 1, 2))
            await sink.send(batch("s", 3))
            await wait_for(lambda: len(frames(bytes(collector.received[0]))) == 3)
            await collector.reset_all()
            # Either the reset is seen before writing and the sink connects again at once,
            # or the write fails and the sink says so; it never claims a lost batch.
            reasons = []
            try:
                await sink.send(batch("s", 4, 5))
            except DeliveryFailed as failure:
                reasons.append(failure.reason)
                await sink.send(batch("s", 4, 5))
            assert reasons in ([], ["closed"])
        finally:
            await sink.close()
        await wait_for(lambda: len(collector.received) == 2 and len(collector.received[1]) > 0)
        await wait_for(lambda: len(frames(bytes(collector.received[1]))) == 2)
    assert len(collector.received) == 2
    seqs = [orjson.loads(m[m.index(b"{") :])["seq"] for m in frames(bytes(collector.received[1]))]
    assert seqs == [4, 5]


async def test_a_collector_that_stops_reading_is_a_timeout() -> None:
    async with Collector() as collector:
        collector.reading = False
        sink = SyslogSink("127.0.0.1", collector.port, 0.5, hostname="h")
        big = Batch("s", [(seq, stored_event(seq, data={"b": "x" * 60_000})) for seq in range(600)])
        try:
            with pytest.raises(DeliveryFailed) as caught:
                await sink.send(big)  # 36 MB: more than the kernel's buffers hold
            assert caught.value.reason == "timeout"
            collector.reading = True
            await sink.send(batch("s", 600))  # on a new connection
        finally:
            await sink.close()
        await wait_for(lambda: len(collector.received) == 2 and len(collector.received[1]) > 0)
        await wait_for(lambda: len(frames(bytes(collector.received[1]))) == 1)


async def test_nobody_listening_is_a_connect_failure() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    sink = SyslogSink("127.0.0.1", port, TIMEOUT, hostname="h")
    with pytest.raises(DeliveryFailed) as caught:
        await send(sink, batch("s", 1))
    assert caught.value.reason == "connect"
    assert f"tcp://127.0.0.1:{port}" in caught.value.message


# --- the message itself -------------------------------------------------------------------


def test_a_message_is_framed_rfc5424_with_the_stored_event_as_msg() -> None:
    stored = stored_event(3, type="user.login", time="2026-01-02T03:04:05.123456Z")
    framed = encode_message(stored, facility=13, hostname="audit-1", app_name="auditlog")
    header = b"<110>1 2026-01-02T03:04:05.123456Z audit-1 auditlog - user.login - "
    message = header + stored
    assert framed == str(len(message)).encode() + b" " + message
    assert b"\xef\xbb\xbf" not in framed  # no BOM: the MSG is JSON text


@pytest.mark.parametrize(
    ("fields", "pri", "msgid"),
    [
        ({"outcome": "failure"}, 13 * 8 + 4, "user.login"),
        ({"outcome": "unknown"}, 13 * 8 + 6, "user.login"),
        ({"type": "x" * 33}, 13 * 8 + 6, "x" * 32),
        ({"type": "é" * 40}, 13 * 8 + 6, "_" * 32),
        ({"type": "a b\x00c"}, 13 * 8 + 6, "a_b_c"),
    ],
)
def test_severity_and_msgid(fields: dict[str, Any], pri: int, msgid: str) -> None:
    framed = encode_message(stored_event(1, **fields), facility=13, hostname="h", app_name="a")
    message = framed.split(b" ", 1)[1]
    parts = message.split(b" ", 6)
    assert parts[0] == f"<{pri}>1".encode()
    assert parts[5] == msgid.encode()


def test_a_time_that_is_not_an_rfc5424_timestamp_is_nil() -> None:
    for stored in (b'{"type":"t","time":"yesterday"}', b'{"type":"t"}', b"[1]", b"not json"):
        framed = encode_message(stored, facility=0, hostname="h", app_name="a")
        assert framed.split(b" ")[2] == b"-"
        assert framed.endswith(stored)


async def test_the_scheme_is_read_whatever_its_case(tmp_path: Path) -> None:
    certs = make_certificates()
    with rsyslogd(tmp_path / "rsyslog", tls=certs) as collector:
        sink = syslog_sink(f"TLS://127.0.0.1:{collector.port}", ca_pem=certs.ca_pem, hostname="h")
        await send(sink, batch("s", 1))
        (message,) = collector.messages(1)
    check_message(message, stored_event(1), hostname="h")

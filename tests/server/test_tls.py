"""``auditlog serve`` over TLS (``auditlog.server.tls``), with certificates made here: HTTPS
requests, mutual TLS refusing a client without a certificate or with one of another CA, and the
certificate reloaded for new connections on SIGHUP and when its files change, a bad new one
logged and the one in use kept. Each against a real server on 127.0.0.1."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import signal
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from auditlog.errors import ConfigError
from auditlog.server.tls import ReloadingTls, TlsFiles
from live_server import START_TIMEOUT, Server, auditlog

#: Longest wait for a reload to show, in seconds (a bound, not an expectation).
RELOAD_TIMEOUT = 30.0


# -- certificates -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(name: str) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return Issued(cert, key)


def issue(ca: Issued, name: str, serial: int, server: bool) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    usage = x509.ExtendedKeyUsageOID.SERVER_AUTH if server else x509.ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if server:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return Issued(builder.sign(ca.key, hashes.SHA256()), key)


@dataclass(frozen=True)
class Pki:
    dir: Path
    ca: Issued
    other_ca: Issued

    def path(self, name: str) -> Path:
        return self.dir / name

    def client_context(self, client: Issued | None = None) -> ssl.SSLContext:
        """A client's context that trusts ``ca``, presenting ``client`` if given."""
        context = ssl.create_default_context(cafile=str(self.path("ca.pem")))
        if client is not None:
            cert, key = self.dir / "client-cert.tmp", self.dir / "client-key.tmp"
            cert.write_bytes(client.cert_pem())
            key.write_bytes(client.key_pem())
            context.load_cert_chain(cert, key)
        return context


def put(path: Path, content: bytes) -> None:
    """Replace a file at once, as deployment tools do (write aside, then rename)."""
    aside = path.with_name(path.name + ".new")
    aside.write_bytes(content)
    os.replace(aside, path)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca, other = make_ca("test CA"), make_ca("another CA")
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem())
    server = issue(ca, "localhost", 100, server=True)
    put(tmp_path / "cert.pem", server.cert_pem())
    put(tmp_path / "key.pem", server.key_pem())
    put(tmp_path / "both.pem", server.cert_pem() + server.key_pem())
    return Pki(tmp_path, ca, other)


# -- a server over TLS --------------------------------------------------------------------------


class TlsServer(Server):
    """``auditlog serve`` with TLS flags; ready once ``/healthz`` answers over HTTPS."""

    def __init__(self, data: Path, log: Path, context: ssl.SSLContext, *flags: str) -> None:
        super().__init__(data, log, *flags)
        self.url = f"https://127.0.0.1:{self.port}"
        self.context = context

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        with httpx.Client(base_url=self.url, verify=self.context, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise AssertionError(f"the server exited at start:\n{self.log()}")
                with contextlib.suppress(httpx.TransportError):
                    if client.get("/healthz").status_code == 200:
                        return
                time.sleep(0.05)
        raise AssertionError(f"the server did not answer within {START_TIMEOUT} s:\n{self.log()}")

    def serial(self, context: ssl.SSLContext | None = None) -> int:
        """The serial number of the certificate a new connection is shown."""
        wrapping = context or self.context
        with (
            socket.create_connection(("127.0.0.1", self.port), timeout=10) as raw,
            wrapping.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            der = tls.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der).serial_number

    def await_serial(self, serial: int) -> None:
        deadline = time.monotonic() + RELOAD_TIMEOUT
        while time.monotonic() < deadline:
            if self.serial() == serial:
                return
            time.sleep(0.05)
        raise AssertionError(f"serial {serial} not served within {RELOAD_TIMEOUT} s:\n{self.log()}")

    def await_log(self, text: str) -> None:
        deadline = time.monotonic() + RELOAD_TIMEOUT
        while text not in self.log():
            assert time.monotonic() < deadline, f"{text!r} not logged:\n{self.log()}"
            time.sleep(0.05)


@contextlib.contextmanager
def serving_tls(pki: Pki, context: ssl.SSLContext, *flags: str) -> Iterator[TlsServer]:
    server = TlsServer(pki.dir / "data", pki.dir / "serve.log", context, *flags)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def files(pki: Pki) -> tuple[str, ...]:
    return ("--tls-cert", str(pki.path("cert.pem")), "--tls-key", str(pki.path("key.pem")))


# -- the tests ----------------------------------------------------------------------------------


def test_https_requests_are_answered(pki: Pki) -> None:
    with serving_tls(pki, pki.client_context(), *files(pki)) as server:
        assert server.serial() == 100
        with httpx.Client(base_url=server.url, verify=server.context, timeout=10) as http:
            response = http.get("/healthz")
            assert response.status_code == 200
            assert response.headers["x-request-id"]
            problem = http.get("/v1/events")
            assert problem.status_code == 401
        # Plain HTTP to the TLS port is no request at all.
        plain_url = f"http://127.0.0.1:{server.port}"
        with (
            httpx.Client(base_url=plain_url, timeout=10) as plain,
            pytest.raises(httpx.TransportError),
        ):
            plain.get("/healthz")
        assert server.terminate() == 0


def test_mutual_tls_refuses_clients_without_a_certificate_of_the_ca(pki: Pki) -> None:
    good = issue(pki.ca, "producer", 7, server=False)
    foreign = issue(pki.other_ca, "producer", 8, server=False)
    flags = (*files(pki), "--tls-client-ca", str(pki.path("ca.pem")))
    with serving_tls(pki, pki.client_context(good), *flags) as server:
        with httpx.Client(base_url=server.url, verify=server.context, timeout=10) as http:
            assert http.get("/healthz").status_code == 200
        for context in (pki.client_context(), pki.client_context(foreign)):
            with (
                httpx.Client(base_url=server.url, verify=context, timeout=10) as http,
                pytest.raises(httpx.TransportError),
            ):
                http.get("/healthz")
        # The refusals cost the server nothing: it still answers the right client.
        with httpx.Client(base_url=server.url, verify=server.context, timeout=10) as http:
            assert http.get("/healthz").status_code == 200


def test_sighup_reloads_the_certificate_for_new_connections(pki: Pki) -> None:
    with serving_tls(pki, pki.client_context(), *files(pki), "--tls-reload-seconds", "0") as server:
        with httpx.Client(base_url=server.url, verify=server.context, timeout=10) as kept:
            assert kept.get("/healthz").status_code == 200  # a connection opened before
            renewed = issue(pki.ca, "localhost", 200, server=True)
            put(pki.path("cert.pem"), renewed.cert_pem())
            put(pki.path("key.pem"), renewed.key_pem())
            # No polling: only the signal can make it seen.
            assert server.serial() == 100
            os.kill(server.process.pid, signal.SIGHUP)
            server.await_serial(200)
            assert kept.get("/healthz").status_code == 200  # still open, still served
        # A bad certificate is logged and the one in use kept; the server lives on.
        put(pki.path("cert.pem"), b"-----BEGIN CERTIFICATE-----\nnot base64\n")
        os.kill(server.process.pid, signal.SIGHUP)
        server.await_log("do not load")
        assert server.serial() == 200
        # A key that does not match its certificate neither.
        put(pki.path("cert.pem"), issue(pki.ca, "localhost", 300, server=True).cert_pem())
        os.kill(server.process.pid, signal.SIGHUP)
        deadline = time.monotonic() + RELOAD_TIMEOUT
        while server.log().count("do not load") < 2:
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.05)
        assert server.serial() == 200
        assert server.terminate() == 0


def test_a_changed_file_is_reloaded_without_a_signal(pki: Pki) -> None:
    flags = ("--tls-cert", str(pki.path("both.pem")), "--tls-reload-seconds", "1")
    with serving_tls(pki, pki.client_context(), *flags) as server:
        assert server.serial() == 100
        renewed = issue(pki.ca, "localhost", 201, server=True)
        put(pki.path("both.pem"), renewed.cert_pem() + renewed.key_pem())
        server.await_serial(201)
        assert server.terminate() == 0


def test_files_that_do_not_load_stop_the_start(pki: Pki) -> None:
    put(pki.path("garbage.pem"), b"nothing here")
    with pytest.raises(ConfigError, match="TLS: cannot load"):
        ReloadingTls(TlsFiles(str(pki.path("garbage.pem"))), 0)
    with pytest.raises(ConfigError, match="no certificate"):
        ReloadingTls(TlsFiles(str(pki.path("both.pem")), "", str(pki.path("garbage.pem"))), 0)
    done = auditlog("serve", "--data", str(pki.dir / "data"), "--tls-key", str(pki.path("key.pem")))
    assert done.returncode == 2
    assert "tls_key and tls_client_ca need tls_cert" in done.stderr
    done = auditlog(
        "serve", "--data", str(pki.dir / "data"), "--tls-cert", str(pki.path("nope.pem"))
    )
    assert done.returncode == 2
    assert "TLS: cannot load" in done.stderr

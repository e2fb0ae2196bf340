"""The client's address behind trusted proxies (``auditlog.server.forwarded``): forwarding
headers believed from trusted peers only, the rightmost untrusted hop taken, and that address
used by the login limits and the self-audit records; through the application and a real
``auditlog serve`` (whose uvicorn must not believe the headers on its own)."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from auditlog.config import Settings
from auditlog.server.app import AuditlogApp
from auditlog.server.forwarded import FORWARDED, TrustedProxies, forwarded_elements
from live_server import auditlog, create_key, serving
from server.api import AnswerGuard, problem
from server.conftest import QUIET
from server.logins import PASSWORD, add_user, login
from server.test_selfaudit import log_of

TRUSTED = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8:1::/48"))


def resolve(peer: str, header: str = "x-forwarded-for", **headers: str) -> tuple[str, str | None]:
    named = {name.replace("_", "-"): value for name, value in headers.items()}
    return TrustedProxies(TRUSTED, header).resolve(peer, named)


# -- the rule ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peer", "xff", "client"),
    [
        # An untrusted peer's headers are not read at all.
        ("203.0.113.5", "198.51.100.1", "203.0.113.5"),
        ("127.0.0.1", "198.51.100.1", "127.0.0.1"),
        # A trusted peer without the header: the peer is the client.
        ("10.0.0.2", None, "10.0.0.2"),
        ("10.0.0.2", "198.51.100.1", "198.51.100.1"),
        # What the client wrote left of its real address is passed over.
        ("10.0.0.2", "6.6.6.6, 198.51.100.1", "198.51.100.1"),
        ("10.0.0.2", "6.6.6.6,198.51.100.1, 10.1.1.1", "198.51.100.1"),
        # Every hop trusted: the leftmost.
        ("10.0.0.2", "10.9.9.9, 10.1.1.1", "10.9.9.9"),
        # Ports and brackets as proxies write them; IPv6.
        ("10.0.0.2", "198.51.100.1:5123", "198.51.100.1"),
        ("10.0.0.2", "[2001:db8:2::7]:443", "2001:db8:2::7"),
        ("2001:db8:1::1", "2001:db8:2::7", "2001:db8:2::7"),
        # An IPv4-mapped peer is its IPv4 address.
        ("::ffff:10.0.0.2", "198.51.100.1", "198.51.100.1"),
        # Not an address: the proxy that wrote it stands for the client.
        ("10.0.0.2", "198.51.100.1, unknown", "10.0.0.2"),
        ("10.0.0.2", "198.51.100.1, garbage, 10.1.1.1", "10.1.1.1"),
        ("10.0.0.2", "garbage, 198.51.100.1", "198.51.100.1"),
        ("10.0.0.2", "", "10.0.0.2"),
    ],
)
def test_x_forwarded_for_is_read_from_the_right_over_trusted_hops(
    peer: str, xff: str | None, client: str
) -> None:
    headers = {"x_forwarded_for": xff} if xff is not None else {}
    assert resolve(peer, **headers)[0] == client


def test_x_forwarded_proto_is_the_scheme_of_the_chosen_hop() -> None:
    assert resolve("10.0.0.2", x_forwarded_for="198.51.100.1", x_forwarded_proto="https") == (
        "198.51.100.1",
        "https",
    )
    # One value per hop: the chosen hop's.
    assert resolve(
        "10.0.0.2", x_forwarded_for="198.51.100.1, 10.1.1.1", x_forwarded_proto="https, http"
    ) == ("198.51.100.1", "https")
    # Anything but http or https, and anything from an untrusted peer, is not a scheme.
    assert resolve("10.0.0.2", x_forwarded_proto="gopher")[1] is None
    assert resolve("203.0.113.5", x_forwarded_proto="https")[1] is None


def test_forwarded_elements_are_parsed_as_rfc_7239_writes_them() -> None:
    value = 'for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8:cafe::17]:4711"'
    assert forwarded_elements(value) == [
        {"for": "192.0.2.60", "proto": "http", "by": "203.0.113.43"},
        {"for": "[2001:db8:cafe::17]:4711"},
    ]
    assert forwarded_elements('for="_hidden", for="\\"q\\""') == [
        {"for": "_hidden"},
        {"for": '"q"'},
    ]
    for bad in ("for", "for=1.2.3.4 x", 'for="unterminated', "=1.2.3.4"):
        assert forwarded_elements(bad) is None, bad


@pytest.mark.parametrize(
    ("value", "client", "scheme"),
    [
        ("for=198.51.100.1;proto=https", "198.51.100.1", "https"),
        ("for=6.6.6.6, for=198.51.100.1;proto=https, for=10.1.1.1", "198.51.100.1", "https"),
        ('for="[2001:db8:2::7]:4711"', "2001:db8:2::7", None),
        ("for=198.51.100.1, for=_hidden", "10.0.0.2", None),
        ("for=198.51.100.1, for=unknown", "10.0.0.2", None),
        ("for=198.51.100.1;;", "10.0.0.2", None),  # does not parse: the peer
    ],
)
def test_forwarded_is_read_likewise_when_it_is_the_header_named(
    value: str, client: str, scheme: str | None
) -> None:
    assert resolve("10.0.0.2", FORWARDED, forwarded=value) == (client, scheme)


def test_only_the_header_named_is_believed() -> None:
    # A proxy that appends to X-Forwarded-For passes a client's Forwarded through untouched,
    # and the other way round: the header it does not write is the client's to invent.
    both = {"x_forwarded_for": "198.51.100.1", "forwarded": "for=6.6.6.6"}
    assert resolve("10.0.0.2", **both)[0] == "198.51.100.1"
    assert resolve("10.0.0.2", FORWARDED, **both)[0] == "6.6.6.6"
    assert resolve("10.0.0.2", FORWARDED, x_forwarded_for="6.6.6.6")[0] == "10.0.0.2"


def test_no_trusted_proxies_believes_nothing() -> None:
    assert TrustedProxies(()).resolve("10.0.0.2", {"x-forwarded-for": "6.6.6.6"}) == (
        "10.0.0.2",
        None,
    )


# -- through the application --------------------------------------------------------------------


@pytest.fixture
def backend() -> str:
    """The address comes from HTTP alone: one backend is enough."""
    return "memory"


@pytest.fixture
def settings() -> Settings:
    return replace(QUIET, trusted_proxies="10.0.0.0/8", login_failures_per_address=2)


def client_from(app: AuditlogApp, peer: str) -> httpx.AsyncClient:
    """A client whose connections come from ``peer``."""
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    return httpx.AsyncClient(
        transport=transport,
        base_url="http://auditlog.test",
        event_hooks={"response": [AnswerGuard()]},
    )


@pytest.fixture
async def through_proxy(app: AuditlogApp) -> AsyncIterator[httpx.AsyncClient]:
    async with client_from(app, "10.0.0.9") as client:
        yield client


async def failed_addresses(app: AuditlogApp) -> list[str]:
    return [
        e["data"]["address"]
        for e in await log_of(app, "acme")
        if e["type"] == "auditlog.login.failed"
    ]


SPOOFS: list[dict[str, Any]] = [
    {"X-Forwarded-For": "198.51.100.1"},
    {"X-Forwarded-For": "10.0.0.1"},
    {"Forwarded": "for=198.51.100.2"},
    {"X-Forwarded-For": "198.51.100.3", "Forwarded": "for=198.51.100.3", "X-Real-IP": "1.1.1.1"},
]


@pytest.mark.anyio
async def test_an_untrusted_peer_cannot_choose_its_address(
    app: AuditlogApp, client: httpx.AsyncClient
) -> None:
    await add_user(app, "alice", "acme")
    await add_user(app, "bob", "acme")
    await add_user(app, "carol", "acme")
    # Two failures under two usernames and invented addresses: one peer, whose limit of two
    # is reached all the same, whatever the next request claims.
    for username, headers in zip(("alice", "bob"), SPOOFS, strict=False):
        response = await client.post(
            "/v1/auth/token", json={"username": username, "password": "wrong"}, headers=headers
        )
        problem(response, 401)
    problem(await login(client, "carol", "wrong"), 429)
    refused = await client.post(
        "/v1/auth/token", json={"username": "carol", "password": PASSWORD}, headers=SPOOFS[3]
    )
    problem(refused, 429)
    assert await failed_addresses(app) == ["127.0.0.1", "127.0.0.1"]


@pytest.mark.anyio
async def test_a_trusted_proxys_forwarded_address_is_limited_and_recorded(
    app: AuditlogApp, through_proxy: httpx.AsyncClient
) -> None:
    await add_user(app, "alice", "acme")
    await add_user(app, "bob", "acme")
    one = {"X-Forwarded-For": "6.6.6.6, 198.51.100.1"}  # what the client wrote, then the proxy
    other = {"X-Forwarded-For": "198.51.100.2"}
    for _ in range(2):
        problem(
            await through_proxy.post(
                "/v1/auth/token", json={"username": "alice", "password": "wrong"}, headers=one
            ),
            401,
        )
    # That client is past its limit, even with the right password and another username...
    for username in ("alice", "bob"):
        response = await through_proxy.post(
            "/v1/auth/token", json={"username": username, "password": PASSWORD}, headers=one
        )
        problem(response, 429)
    # ... while another client behind the same proxy is not.
    response = await through_proxy.post(
        "/v1/auth/token", json={"username": "bob", "password": PASSWORD}, headers=other
    )
    assert response.status_code == 200, response.text
    assert await failed_addresses(app) == ["198.51.100.1", "198.51.100.1"]
    [succeeded] = [e for e in await log_of(app, "acme") if e["type"] == "auditlog.login.succeeded"]
    assert succeeded["data"]["address"] == "198.51.100.2"


@pytest.mark.anyio
async def test_a_peer_outside_the_trusted_networks_is_not_a_proxy(app: AuditlogApp) -> None:
    await add_user(app, "alice", "acme")
    async with client_from(app, "192.168.1.1") as outside:
        response = await outside.post(
            "/v1/auth/token",
            json={"username": "alice", "password": "wrong"},
            headers={"X-Forwarded-For": "198.51.100.1"},
        )
        problem(response, 401)
    assert await failed_addresses(app) == ["192.168.1.1"]


# -- a real server ------------------------------------------------------------------------------


def test_a_real_server_believes_forwarding_headers_only_from_its_trusted_proxies(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    added = auditlog(
        "users", "add", "alice", "--tenant", "acme", "--scopes", "events:read", "--data", str(data),
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    reader = create_key(data, "acme", "events:read")
    spoof = {"X-Forwarded-For": "198.51.100.1", "Forwarded": "for=198.51.100.1"}

    def failed_login_addresses(url: str) -> list[str]:
        with httpx.Client(base_url=url, timeout=30) as http:
            response = http.post(
                "/v1/auth/token", json={"username": "alice", "password": "wrong"}, headers=spoof
            )
            assert response.status_code == 401
            found = http.get(
                "/v1/events",
                params={"type": "auditlog.login.failed", "order": "asc"},
                headers={"Authorization": f"Bearer {reader}"},
            )
            assert found.status_code == 200, found.text
            return [e["data"]["address"] for e in found.json()["events"]]

    # Without trusted proxies, not even a local peer is believed (uvicorn would believe it).
    with serving(data, tmp_path / "plain.log") as server:
        assert failed_login_addresses(server.url) == ["127.0.0.1"]
    with serving(data, tmp_path / "proxied.log", "--trusted-proxies", "127.0.0.1/32") as server:
        assert failed_login_addresses(server.url) == ["127.0.0.1", "198.51.100.1"]

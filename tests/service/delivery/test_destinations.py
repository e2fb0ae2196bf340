"""A stream's destination (``auditlog.service.delivery.destinations``): what is accepted, what
is refused and with which field named, what the API shows, PATCH, and whether a destination
points at the service itself."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import socket
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditlog.errors import InvalidBody
from auditlog.service.delivery.destinations import (
    KINDS,
    MAX_URL,
    Destination,
    IPAddress,
    Resolver,
    merge_destination,
    new_webhook_secret,
    parse_destination,
    points_at,
    public,
    settings,
    webhook_key,
)
from service.delivery.certs import make_certificates

# The wildcard addresses below are listen addresses the service is told it has; nothing binds.
# ruff: noqa: S104

TOKEN = "0b1d6f4e-8c2a-4b7e-9d3f-5a6c7e8f9a0b"


def refused(value: object, secret: str | None = None) -> dict[str, str]:
    """The field errors ``parse_destination`` raises for ``value``, by field."""
    with pytest.raises(InvalidBody) as caught:
        parse_destination(value, secret)
    errors = caught.value.errors
    assert errors, "a refusal names at least one field"
    assert caught.value.status == 422
    assert caught.value.detail.startswith(f"{errors[0].field}: ")
    return {error.field: error.message for error in errors}


# --- accepted shapes ----------------------------------------------------------------------


def test_a_webhook_gets_a_new_signing_secret() -> None:
    dest = parse_destination({"kind": "webhook", "url": "https://hooks.example/audit?x=1"})
    assert dest.kind == "webhook"
    assert dest.url == "https://hooks.example/audit?x=1"
    assert dest.options == {}
    assert dest.secret is not None
    assert dest.secret.startswith("whsec_")
    assert len(webhook_key(dest.secret)) == 24
    other = parse_destination({"kind": "webhook", "url": "https://hooks.example/audit"})
    assert other.secret != dest.secret


def test_a_webhook_keeps_a_secret_it_is_given() -> None:
    secret = new_webhook_secret()
    dest = parse_destination({"kind": "webhook", "url": "http://10.0.0.7:8080/in"}, secret)
    assert dest.secret == secret
    assert (dest.host, dest.port) == ("10.0.0.7", 8080)


def test_new_webhook_secrets_are_whsec_and_standard_base64_of_24_bytes() -> None:
    secrets = {new_webhook_secret() for _ in range(50)}
    assert len(secrets) == 50
    for secret in secrets:
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 24


def test_a_splunk_destination_with_every_field() -> None:
    value = {
        "kind": "splunk_hec",
        "url": "https://splunk.example:8088/",
        "token": TOKEN,
        "index": "audit",
        "sourcetype": "acme:audit",
        "source": "auditlog-prod",
        "host": "audit-1",
        "verify_tls": False,
    }
    dest = parse_destination(value)
    assert dest.secret == TOKEN
    assert dest.options == {k: v for k, v in value.items() if k not in ("kind", "url", "token")}
    assert (dest.host, dest.port) == ("splunk.example", 8088)


def test_a_syslog_destination_with_every_field() -> None:
    ca_pem = make_certificates().ca_pem
    value = {
        "kind": "syslog",
        "url": "tls://[2001:db8::5]:6514",
        "facility": 4,
        "hostname": "audit-1.example",
        "app_name": "acme-audit",
        "ca_pem": ca_pem,
        "verify_tls": True,
    }
    dest = parse_destination(value, secret="ignored")
    assert dest.secret is None
    assert dest.options["ca_pem"] == ca_pem
    assert (dest.host, dest.port) == ("2001:db8::5", 6514)


def test_null_optional_fields_are_not_set() -> None:
    dest = parse_destination(
        {"kind": "syslog", "url": "tcp://collector:514", "facility": None, "hostname": None}
    )
    assert dest.options == {}


# --- refusals, each with its field named --------------------------------------------------

WEBHOOK = {"kind": "webhook"}
SPLUNK = {"kind": "splunk_hec", "token": TOKEN}
SYSLOG = {"kind": "syslog"}


@pytest.mark.parametrize(
    ("value", "field", "expected"),
    [
        ("https://x.example", "destination", "expected an object"),
        ([], "destination", "expected an object"),
        ({"url": "https://x.example"}, "destination.kind", "is required"),
        ({"kind": "email", "url": "https://x.example"}, "destination.kind", "one of webhook"),
        ({"kind": 1}, "destination.kind", "one of webhook"),
        (WEBHOOK, "destination.url", "is required"),
        ({**WEBHOOK, "url": 42}, "destination.url", "expected a URL"),
        ({**WEBHOOK, "url": ""}, "destination.url", "expected a URL"),
        ({**WEBHOOK, "url": "file:///etc/passwd"}, "destination.url", "'file' is not allowed"),
        ({**WEBHOOK, "url": "ftp://x.example/"}, "destination.url", "'ftp' is not allowed"),
        ({**WEBHOOK, "url": "gopher://x.example/"}, "destination.url", "'gopher' is not allowed"),
        ({**WEBHOOK, "url": "tcp://x.example:1"}, "destination.url", "'tcp' is not allowed"),
        ({**WEBHOOK, "url": "x.example/hook"}, "destination.url", "starting with https://"),
        ({**WEBHOOK, "url": "https:x.example"}, "destination.url", "starting with https://"),
        ({**WEBHOOK, "url": "https:///hook"}, "destination.url", "has no host"),
        ({**WEBHOOK, "url": "https://:443/hook"}, "destination.url", "has no host"),
        ({**WEBHOOK, "url": "https://x.example:0/"}, "destination.url", "port '0'"),
        ({**WEBHOOK, "url": "https://x.example:65536/"}, "destination.url", "port '65536'"),
        ({**WEBHOOK, "url": "https://x.example:http/"}, "destination.url", "port 'http'"),
        ({**WEBHOOK, "url": "https://x.example/#top"}, "destination.url", "fragment"),
        ({**WEBHOOK, "url": "https://x.example/#"}, "destination.url", "fragment"),
        ({**WEBHOOK, "url": "https://u:p@x.example/"}, "destination.url", "user name or password"),
        ({**WEBHOOK, "url": "https://x.example/a b"}, "destination.url", "spaces or control"),
        ({**WEBHOOK, "url": "https://x.example/\x00"}, "destination.url", "spaces or control"),
        ({**WEBHOOK, "url": "https://x.example/\n"}, "destination.url", "spaces or control"),
        ({**WEBHOOK, "url": "https://bücher.example/"}, "destination.url", "ASCII"),
        ({**WEBHOOK, "url": "https://[::1/"}, "destination.url", "is not a URL"),
        ({**WEBHOOK, "url": "https://[nope]/"}, "destination.url", "IPv6"),
        ({**WEBHOOK, "url": "https://a..b/"}, "destination.url", "not a host name"),
        ({**WEBHOOK, "url": "https://-a.example/"}, "destination.url", "not a host name"),
        ({**WEBHOOK, "url": "https://a%2eb/"}, "destination.url", "not a host name"),
        (
            {**WEBHOOK, "url": "https://x.example/" + "a" * MAX_URL},
            "destination.url",
            f"more than {MAX_URL}",
        ),
        ({**WEBHOOK, "url": "https://x.example", "secret": "whsec_x"}, "destination.secret", "unknown field"),
        ({**WEBHOOK, "url": "https://x.example", "token": TOKEN}, "destination.token", "unknown field"),
        ({**SPLUNK, "url": "ftp://splunk:8088"}, "destination.url", "'ftp' is not allowed"),
        ({**SPLUNK, "url": "https://splunk:8088/?x=1"}, "destination.url", "must not have a query"),
        ({"kind": "splunk_hec", "url": "https://splunk:8088"}, "destination.token", "is required"),
        ({**SPLUNK, "url": "https://splunk:8088", "token": ""}, "destination.token", "1-256"),
        ({**SPLUNK, "url": "https://splunk:8088", "token": "a b"}, "destination.token", "without spaces"),
        ({**SPLUNK, "url": "https://splunk:8088", "token": "a\nb"}, "destination.token", "without spaces"),
        ({**SPLUNK, "url": "https://splunk:8088", "token": "t" * 257}, "destination.token", "out of range"),
        ({**SPLUNK, "url": "https://splunk:8088", "index": 3}, "destination.index", "expected a string"),
        ({**SPLUNK, "url": "https://splunk:8088", "index": ""}, "destination.index", "expected a string"),
        ({**SPLUNK, "url": "https://splunk:8088", "index": "x" * 257}, "destination.index", "out of range"),
        ({**SPLUNK, "url": "https://splunk:8088", "source": "a\tb"}, "destination.source", "control"),
        ({**SPLUNK, "url": "https://splunk:8088", "host": "\ud800"}, "destination.host", "Unicode"),
        ({**SPLUNK, "url": "https://splunk:8088", "verify_tls": "no"}, "destination.verify_tls", "true or false"),
        ({**SPLUNK, "url": "http://splunk:8088", "verify_tls": False}, "destination.verify_tls", "https://"),
        ({**SPLUNK, "url": "https://splunk:8088", "ack": True}, "destination.ack", "unknown field"),
        ({**SYSLOG, "url": "tcp://collector"}, "destination.url", "needs a port"),
        ({**SYSLOG, "url": "udp://collector:514"}, "destination.url", "'udp' is not allowed"),
        ({**SYSLOG, "url": "https://collector:514"}, "destination.url", "'https' is not allowed"),
        ({**SYSLOG, "url": "tcp://collector:514/logs"}, "destination.url", "path or query"),
        ({**SYSLOG, "url": "tcp://collector:514?x"}, "destination.url", "path or query"),
        ({**SYSLOG, "url": "tcp://collector:514", "facility": 24}, "destination.facility", "0-23"),
        ({**SYSLOG, "url": "tcp://collector:514", "facility": -1}, "destination.facility", "0-23"),
        ({**SYSLOG, "url": "tcp://collector:514", "facility": True}, "destination.facility", "0-23"),
        ({**SYSLOG, "url": "tcp://collector:514", "facility": 13.0}, "destination.facility", "0-23"),
        ({**SYSLOG, "url": "tcp://collector:514", "facility": "13"}, "destination.facility", "0-23"),
        ({**SYSLOG, "url": "tcp://collector:514", "hostname": "a b"}, "destination.hostname", "printable ASCII"),
        ({**SYSLOG, "url": "tcp://collector:514", "hostname": "hôte"}, "destination.hostname", "printable ASCII"),
        ({**SYSLOG, "url": "tcp://collector:514", "hostname": "h" * 256}, "destination.hostname", "1-255"),
        ({**SYSLOG, "url": "tcp://collector:514", "app_name": "a" * 49}, "destination.app_name", "1-48"),
        ({**SYSLOG, "url": "tls://collector:6514", "ca_pem": "not a certificate"}, "destination.ca_pem", "PEM CA"),
        ({**SYSLOG, "url": "tls://collector:6514", "ca_pem": 7}, "destination.ca_pem", "expected a string"),
        ({**SYSLOG, "url": "tcp://collector:514", "verify_tls": False}, "destination.verify_tls", "tls://"),
        ({**SYSLOG, "url": "tcp://collector:514", "token": TOKEN}, "destination.token", "unknown field"),
    ],
)  # fmt: skip
def test_refusals_name_the_field_and_what_was_expected(
    value: object, field: str, expected: str
) -> None:
    errors = refused(value)
    assert field in errors, errors
    assert expected in errors[field]


def test_every_fault_is_reported_at_once() -> None:
    errors = refused(
        {
            "kind": "syslog",
            "url": "udp://collector:514",
            "facility": 99,
            "app_name": "",
            "colour": "blue",
            "\x1b[31mred": 1,
        }
    )
    assert set(errors) == {
        "destination.url",
        "destination.facility",
        "destination.app_name",
        "destination.colour",
        "destination.?[31mred",  # a field name is shown without its control characters
    }
    assert (
        "kind, url, facility, hostname, app_name, ca_pem, verify_tls"
        in errors["destination.colour"]
    )


def test_an_unknown_field_with_a_huge_name_is_shown_cut() -> None:
    errors = refused({"kind": "webhook", "url": "https://x.example", "k" * 10_000: 1})
    (field,) = errors
    assert len(field) < 100


def test_a_ca_bundle_for_a_plain_tcp_url_is_refused() -> None:
    errors = refused(
        {"kind": "syslog", "url": "tcp://collector:514", "ca_pem": make_certificates().ca_pem}
    )
    assert errors == {"destination.ca_pem": "applies only to tls:// URLs"}


# --- what the API shows -------------------------------------------------------------------


def test_the_public_view_never_shows_a_secret() -> None:
    webhook = parse_destination({"kind": "webhook", "url": "https://x.example/h"})
    splunk = parse_destination({"kind": "splunk_hec", "url": "https://s:8088", "token": TOKEN})
    assert public(webhook) == {"kind": "webhook", "url": "https://x.example/h"}
    assert public(splunk) == {"kind": "splunk_hec", "url": "https://s:8088", "token_set": True}
    for dest in (webhook, splunk):
        assert dest.secret is not None
        assert dest.secret not in repr(public(dest))
        assert dest.secret not in repr(settings(dest))
        assert dest.secret not in repr(dest)
        assert dest.secret not in str(dest)


def test_settings_and_the_secret_make_the_destination_again() -> None:
    for value in (
        {"kind": "webhook", "url": "https://x.example/h"},
        {"kind": "splunk_hec", "url": "https://s:8088", "token": TOKEN, "index": "a"},
        {"kind": "syslog", "url": "tcp://c:514", "facility": 10, "app_name": "x"},
    ):
        dest = parse_destination(value)
        assert parse_destination(settings(dest), dest.secret) == dest


# --- PATCH --------------------------------------------------------------------------------


def test_a_patch_replaces_the_fields_it_gives_and_keeps_the_webhook_secret() -> None:
    dest = parse_destination({"kind": "webhook", "url": "https://old.example/h"})
    merged = merge_destination(dest, {"url": "https://new.example/h"})
    assert merged.url == "https://new.example/h"
    assert merged.secret == dest.secret
    assert merge_destination(dest, {}) == dest
    assert merge_destination(dest, {"kind": "webhook"}) == dest


def test_a_patch_keeps_the_splunk_token_unless_it_gives_one() -> None:
    dest = parse_destination(
        {"kind": "splunk_hec", "url": "https://s:8088", "token": TOKEN, "index": "a"}
    )
    moved = merge_destination(dest, {"url": "https://s2:8088", "sourcetype": "x"})
    assert (moved.url, moved.secret) == ("https://s2:8088", TOKEN)
    assert moved.options == {"index": "a", "sourcetype": "x"}
    assert merge_destination(dest, {"token": "new-token"}).secret == "new-token"


def test_null_in_a_patch_puts_a_field_back_to_its_default() -> None:
    dest = parse_destination(
        {"kind": "syslog", "url": "tcp://c:514", "facility": 10, "app_name": "x"}
    )
    assert merge_destination(dest, {"facility": None}).options == {"app_name": "x"}


def test_a_patch_is_checked_like_a_new_destination() -> None:
    dest = parse_destination({"kind": "syslog", "url": "tls://c:6514", "verify_tls": False})
    with pytest.raises(InvalidBody) as caught:
        merge_destination(dest, {"url": "tcp://c:514"})  # verify_tls is tls only
    assert [e.field for e in caught.value.errors] == ["destination.verify_tls"]
    with pytest.raises(InvalidBody) as caught:
        merge_destination(dest, {"url": None})
    assert [e.field for e in caught.value.errors] == ["destination.url"]
    with pytest.raises(InvalidBody) as caught:
        merge_destination(dest, ["url"])
    assert [e.field for e in caught.value.errors] == ["destination"]
    with pytest.raises(InvalidBody) as caught:
        merge_destination(dest, {"colour": "blue"})
    assert [e.field for e in caught.value.errors] == ["destination.colour"]


def test_a_patch_with_another_kind_is_a_whole_new_destination() -> None:
    webhook = parse_destination({"kind": "webhook", "url": "https://x.example/h"})
    splunk = merge_destination(
        webhook, {"kind": "splunk_hec", "url": "https://s:8088", "token": TOKEN}
    )
    assert (splunk.kind, splunk.secret, splunk.options) == ("splunk_hec", TOKEN, {})
    with pytest.raises(InvalidBody) as caught:  # nothing is carried over, not even the url
        merge_destination(webhook, {"kind": "syslog"})
    assert [e.field for e in caught.value.errors] == ["destination.url"]
    back = merge_destination(splunk, {"kind": "webhook", "url": "https://x.example/h"})
    assert back.secret is not None
    assert back.secret != webhook.secret  # a new webhook, with a new secret
    assert back.secret != TOKEN


# --- properties ---------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
urls = st.one_of(
    st.text(max_size=80),
    st.builds(
        "{}://{}{}{}".format,
        st.sampled_from(["http", "https", "tcp", "tls", "file", "ftp", "HTTPS", ""]),
        st.sampled_from(["x.example", "127.0.0.1", "[::1]", "", "a..b", "u@x", "[zz]"]),
        st.sampled_from(["", ":514", ":0", ":99999", ":x", ":"]),
        st.sampled_from(["", "/", "/p?q=1", "#f", "/\x00", "/é"]),
    ),
)
destination_like = st.fixed_dictionaries(
    {"kind": st.sampled_from(KINDS) | json_values},
    optional={
        "url": urls | json_values,
        "token": st.text(max_size=20) | json_values,
        "index": st.text(max_size=20) | json_values,
        "facility": st.integers(-5, 30) | json_values,
        "hostname": st.text(max_size=20) | json_values,
        "verify_tls": st.booleans() | json_values,
        "ca_pem": st.text(max_size=50) | json_values,
        "other": json_values,
    },
)


@given(destination_like | json_values)
def test_any_value_is_a_destination_or_an_invalid_body(value: Any) -> None:
    try:
        dest = parse_destination(value)
    except InvalidBody as exc:
        fields = [e.field for e in exc.errors]
    else:
        fields = []
        assert dest.kind in KINDS
        assert parse_destination(settings(dest), dest.secret) == dest
        assert dest.secret is None or dest.secret not in repr(public(dest))
        return
    assert fields
    assert all(f == "destination" or f.startswith("destination.") for f in fields)


@given(st.text(max_size=300), st.sampled_from(KINDS))
def test_any_string_url_is_accepted_or_refused_by_field(url: str, kind: str) -> None:
    try:
        dest = parse_destination({"kind": kind, "url": url}, secret=TOKEN)
    except InvalidBody as exc:
        fields = {e.field for e in exc.errors}
    else:
        assert 1 <= dest.port <= 65535
        assert dest.host
        return
    assert fields == {"destination.url"}


@given(destination_like | json_values)
def test_any_patch_is_a_destination_or_an_invalid_body(patch: Any) -> None:
    current = parse_destination({"kind": "splunk_hec", "url": "https://s:8088", "token": TOKEN})
    try:
        merged = merge_destination(current, patch)
    except InvalidBody:
        return
    if merged.kind == "splunk_hec" and not (isinstance(patch, dict) and "token" in patch):
        assert merged.secret == TOKEN


# --- does it point at the service itself? -------------------------------------------------


def resolver(table: dict[str, Sequence[str]]) -> Resolver:
    """A resolver answering from ``table``, and like getaddrinfo for names not in it."""

    async def resolve(host: str, port: int) -> Sequence[str]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return table[host]

    return resolve


def webhook_to(url: str) -> Destination:
    return parse_destination({"kind": "webhook", "url": url})


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("url", "own_host", "expected"),
    [
        ("http://127.0.0.1:8000/h", "127.0.0.1", True),
        ("http://127.0.0.1:8001/h", "127.0.0.1", False),  # another port
        ("http://127.9.8.7:8000/h", "10.1.2.3", True),  # loopback, whatever the listener
        ("http://[::1]:8000/h", "0.0.0.0", True),
        ("http://[::ffff:127.0.0.1]:8000/h", "192.0.2.1", True),
        ("http://0.0.0.0:8000/h", "192.0.2.1", True),  # connecting to 0.0.0.0 reaches us
        ("http://localhost:8000/h", "192.0.2.1", True),
        ("http://LOCALHOST.:8000/h", "192.0.2.1", True),
        ("http://api.localhost:8000/h", "192.0.2.1", True),
        ("http://192.0.2.1:8000/h", "192.0.2.1", True),  # the listen address itself
        ("http://192.0.2.2:8000/h", "192.0.2.1", False),
        ("http://192.0.2.2:8000/h", "0.0.0.0", False),  # not an address of this machine
        ("http://192.0.2.2:8000/h", "::", False),
        ("http://[2001:db8::1]:8000/h", "2001:db8::1", True),
        ("https://192.0.2.1/h", "192.0.2.1", False),  # 443, the service is on 8000
    ],
)
async def test_points_at_literal_addresses(url: str, own_host: str, expected: bool) -> None:
    dest = webhook_to(url)
    found = await points_at(dest, own_host, 8000, resolve=resolver({}), is_local=nowhere_local)
    assert found is expected


def nowhere_local(address: IPAddress) -> bool:
    """No address is this machine's (beyond what points_at knows itself): the table above
    must not depend on the addresses of the machine the tests run on."""
    return False


@pytest.mark.anyio
async def test_default_ports_count() -> None:
    dest = webhook_to("https://127.0.0.1/h")
    assert await points_at(dest, "0.0.0.0", 443)
    syslog = parse_destination({"kind": "syslog", "url": "tcp://127.0.0.1:6514"})
    assert await points_at(syslog, "127.0.0.1", 6514)


@pytest.mark.anyio
async def test_a_name_is_checked_by_every_address_it_resolves_to() -> None:
    table = {
        "collector.internal": ["192.0.2.50", "127.0.0.1"],
        "elsewhere.internal": ["192.0.2.50", "2001:db8::50"],
        "me.internal": ["192.0.2.1"],
        "mapped.internal": ["::ffff:127.0.0.2"],
    }
    resolve = resolver(table)
    assert await points_at(
        webhook_to("http://collector.internal:8000/"), "::", 8000, resolve=resolve
    )
    assert not await points_at(
        webhook_to("http://elsewhere.internal:8000/"), "::", 8000, resolve=resolve
    )
    assert await points_at(
        webhook_to("http://me.internal:8000/"), "192.0.2.1", 8000, resolve=resolve
    )
    # The listen address may be a name too.
    assert await points_at(
        webhook_to("http://192.0.2.1:8000/"), "me.internal", 8000, resolve=resolve
    )
    assert await points_at(
        webhook_to("http://mapped.internal:8000/"), "192.0.2.9", 8000, resolve=resolve
    )


@pytest.mark.anyio
async def test_a_wildcard_listener_is_every_local_address() -> None:
    local = ipaddress.ip_address("198.51.100.7")

    def is_local(address: IPAddress) -> bool:
        return address == local

    dest = webhook_to("http://198.51.100.7:8000/")
    assert await points_at(dest, "0.0.0.0", 8000, is_local=is_local)
    assert await points_at(dest, "[::]", 8000, is_local=is_local)
    assert not await points_at(dest, "192.0.2.1", 8000, is_local=is_local)


def this_machines_addresses() -> list[str]:
    """The IPv4 addresses of this machine's interfaces other than loopback (Linux)."""
    found = []
    try:
        import fcntl
        import struct

        siocgifaddr = 0x8915
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            for _, name in socket.if_nameindex():
                try:
                    packed = fcntl.ioctl(
                        probe.fileno(), siocgifaddr, struct.pack("256s", name.encode()[:15])
                    )
                except OSError:
                    continue  # no IPv4 address on this interface
                address = socket.inet_ntoa(packed[20:24])
                if not ipaddress.ip_address(address).is_loopback:
                    found.append(address)
    except (ImportError, OSError):
        return []
    return found


@pytest.mark.anyio
async def test_a_wildcard_listener_and_a_real_address_of_this_machine() -> None:
    addresses = this_machines_addresses()
    if not addresses:
        pytest.skip("no interface address but loopback found here")
    dest = webhook_to(f"http://{addresses[0]}:8000/")
    assert await points_at(dest, "0.0.0.0", 8000)  # the real check: it can be bound to
    assert not await points_at(dest, "0.0.0.0", 8001)
    assert not await points_at(dest, "127.0.0.1", 8000)  # a listener on loopback only


@pytest.mark.anyio
async def test_a_wildcard_listener_and_an_address_that_is_not_this_machines() -> None:
    own = set(this_machines_addresses())
    candidate = next(a for a in ("203.0.113.77", "198.51.100.77", "198.18.0.77") if a not in own)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((candidate, 0))
        except OSError:
            pass
        else:
            pytest.skip(f"{candidate} can be bound to here (ip_nonlocal_bind?)")
    assert not await points_at(webhook_to(f"http://{candidate}:8000/"), "0.0.0.0", 8000)


@pytest.mark.anyio
async def test_this_machines_name_through_the_real_resolver() -> None:
    name = socket.gethostname().lower()
    try:
        dest = webhook_to(f"http://{name}:8000/")
        socket.getaddrinfo(name, None)
    except (InvalidBody, OSError):
        pytest.skip(f"this machine's host name {name!r} is not a resolvable URL host")
    # It resolves to loopback (127.0.1.1 on Debian) or to an address of this machine.
    assert await points_at(dest, "0.0.0.0", 8000)


@pytest.mark.anyio
async def test_a_name_that_does_not_resolve_in_time_points_nowhere() -> None:
    async def unknown(host: str, port: int) -> Sequence[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    async def hanging(host: str, port: int) -> Sequence[str]:
        await asyncio.Event().wait()
        return []

    dest = webhook_to("http://nowhere.invalid:8000/")
    assert not await points_at(dest, "0.0.0.0", 8000, resolve=unknown)
    assert not await points_at(dest, "0.0.0.0", 8000, resolve=hanging, timeout=0.05)

"""A log stream's destination (API.md §11): parsed from a request body, checked, shown.

``parse_destination`` turns the JSON value of a stream's ``destination`` into a
``Destination`` or raises ``InvalidBody`` (422) whose errors name every bad field
(``destination.url``, ``destination.facility``...) and say what was expected. The shapes:

=============  ==========================================================================
``kind``       fields
=============  ==========================================================================
webhook        ``url`` (http/https). The signing secret is made here (``whsec_`` + base64
               of 24 random bytes), never sent by the client.
splunk_hec     ``url`` (http/https), ``token``, and optionally ``index``, ``sourcetype``
               (default ``auditlog``), ``source``, ``host``, ``verify_tls`` (default true,
               https only)
syslog         ``url`` (``tcp://host:port`` or ``tls://host:port``), and optionally
               ``facility`` (0-23, default 13 "log audit"), ``hostname`` (default: the
               machine's name, taken where the sink is made), ``app_name`` (default
               ``auditlog``), ``ca_pem`` and ``verify_tls`` (default true), both tls only
=============  ==========================================================================

Any other field is refused by name; ``null`` for an optional field means "not set" (in a
PATCH: back to its default). URLs are ASCII, at most 2048 characters, with a host, without
user information or a fragment; syslog URLs also without a path or query, Splunk ones
without a query (the collector's path is appended).

``Destination.options`` (read-only) holds the optional fields given, as given; the sinks apply
the defaults (the constants below). ``Destination.secret`` is the webhook's signing secret
or the Splunk token and appears in neither ``repr`` nor ``public``: ``public(dest)`` is what
the API shows (``"token_set": true`` for Splunk), ``settings(dest)`` is everything but the
secret, which ``parse_destination(settings(dest), dest.secret)`` turns back into ``dest``
(so a store can keep the secret apart). ``merge_destination`` applies a PATCH.

Everything here is pure but ``points_at``, which resolves host names (asynchronously) to
tell whether a destination would deliver to the service itself.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import re
import secrets
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, NoReturn, TypeAlias
from urllib.parse import SplitResult, urlsplit

from auditlog.errors import FieldError, InvalidBody

Kind: TypeAlias = Literal["webhook", "splunk_hec", "syslog"]
KINDS: tuple[Kind, ...] = ("webhook", "splunk_hec", "syslog")
OptionValue: TypeAlias = str | int | bool
IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL = 2048
#: Splunk's index, sourcetype, source and host.
MAX_SPLUNK_TEXT = 256
MAX_TOKEN = 256
#: RFC 5424 §6: HOSTNAME is 1*255 and APP-NAME 1*48 printable US-ASCII characters.
MAX_SYSLOG_HOSTNAME = 255
MAX_SYSLOG_APP_NAME = 48
#: A CA bundle; the whole public web's is about 220 KiB.
MAX_CA_PEM = 1024 * 1024

DEFAULT_SOURCETYPE = "auditlog"
DEFAULT_FACILITY = 13  # RFC 5424 "log audit"
DEFAULT_APP_NAME = "auditlog"
WEBHOOK_SECRET_PREFIX = "whsec_"  # noqa: S105 (the format's prefix, not a secret)
WEBHOOK_SECRET_BYTES = 24

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # Unicode category Cc
_PRINTABLE_ASCII = re.compile(r"[\x21-\x7e]+")
_HOST_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?", re.ASCII)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_SCHEMES: dict[Kind, tuple[str, ...]] = {
    "webhook": ("https", "http"),
    "splunk_hec": ("https", "http"),
    "syslog": ("tcp", "tls"),
}
#: Names that are the local machine whatever DNS says (RFC 6761 §6.3).
_LOOPBACK_NAMES = ("localhost", "localhost.")
#: What a service listening on every address is configured with.
_WILDCARD_HOSTS = ("", "*", "0.0.0.0", "::", "[::]")  # noqa: S104 (compared, never bound)


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a stream delivers: a kind, a URL, the optional fields given, and its secret.

    ``secret`` (the webhook's signing secret or the Splunk token) is left out of ``repr`` so
    that logging a destination cannot leak it.
    """

    kind: Kind
    url: str
    options: Mapping[str, OptionValue] = field(default_factory=lambda: MappingProxyType({}))
    secret: str | None = field(default=None, repr=False)

    @property
    def scheme(self) -> str:
        """The URL's scheme, lower-case: http, https, tcp or tls."""
        return urlsplit(self.url).scheme

    @property
    def host(self) -> str:
        """The URL's host, lower-case, an IPv6 address without its brackets."""
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        """The URL's port, or its scheme's (80, 443) where it has none."""
        parts = urlsplit(self.url)
        return parts.port or _DEFAULT_PORTS.get(parts.scheme, 0)


class _Bad(Exception):
    """One field's problem, raised by a check and collected as a ``FieldError``."""


def new_webhook_secret() -> str:
    """A new signing secret: ``whsec_`` and standard base64 of 24 random bytes."""
    return WEBHOOK_SECRET_PREFIX + base64.b64encode(
        secrets.token_bytes(WEBHOOK_SECRET_BYTES)
    ).decode("ascii")


def webhook_key(secret: str) -> bytes:
    """The HMAC key of a webhook signing secret: its base64 part after ``whsec_``, decoded.

    Raises ``ValueError`` for anything but a secret of the form ``new_webhook_secret`` makes
    (secrets come from the service, never from a request).
    """
    if not secret.startswith(WEBHOOK_SECRET_PREFIX):
        raise ValueError("a webhook secret starts with whsec_")
    try:
        key = base64.b64decode(secret[len(WEBHOOK_SECRET_PREFIX) :], validate=True)
    except ValueError:
        raise ValueError("a webhook secret is whsec_ and standard base64") from None
    if not key:
        raise ValueError("a webhook secret must not be empty")
    return key


def parse_destination(value: object, secret: str | None = None) -> Destination:
    """The destination ``value`` (a JSON value) describes, or ``InvalidBody`` naming each fault.

    ``secret``: for a webhook, the signing secret to keep (a new one is made when it is
    None); for Splunk, the token to use when ``value`` has none (a stored destination, or a
    PATCH that does not change it). Ignored for syslog.
    """
    errors: list[FieldError] = []
    if not isinstance(value, dict):
        _refuse([FieldError("destination", 'expected an object {"kind", "url", ...}')])
    kind = value.get("kind")
    if kind is None:
        _refuse([FieldError("destination.kind", f"is required: one of {', '.join(KINDS)}")])
    if not isinstance(kind, str) or kind not in KINDS:
        _refuse([FieldError("destination.kind", f"expected one of {', '.join(KINDS)}")])
    checks = _CHECKS[kind]
    for key in value:
        if key != "kind" and key not in checks:
            errors.append(
                FieldError(
                    f"destination.{_shown(key)}",
                    f"unknown field; a {kind} destination has {', '.join(['kind', *checks])}",
                )
            )
    options: dict[str, OptionValue] = {}
    token: str | None = None
    url: str | None = None
    scheme = ""
    for name, check in checks.items():
        given = value.get(name)
        path = f"destination.{name}"
        if given is None:
            if name == "url" or (name == "token" and secret is None):
                errors.append(FieldError(path, "is required"))
            continue
        try:
            if name == "url":
                url, scheme = _check_url(given, kind)
            elif name == "token":
                token = _check_str(given, check)
            else:
                options[name] = _check_option(given, check)
        except _Bad as exc:
            errors.append(FieldError(path, str(exc)))
    if scheme in ("tcp", "http"):
        for name in ("verify_tls", "ca_pem"):
            if name in options:
                errors.append(
                    FieldError(
                        f"destination.{name}",
                        f"applies only to {'tls' if scheme == 'tcp' else 'https'}:// URLs",
                    )
                )
    if errors:
        _refuse(errors)
    assert url is not None
    if kind == "webhook":
        if secret is None:
            secret = new_webhook_secret()
        webhook_key(secret)
    elif kind == "splunk_hec":
        secret = token if token is not None else secret
    else:
        secret = None
    return Destination(kind, url, MappingProxyType(options), secret)


def merge_destination(current: Destination, patch: object) -> Destination:
    """``current`` with the fields of ``patch`` (a PATCH's ``destination``) replaced.

    A field set to ``null`` goes back to its default. A ``kind`` other than the current one
    starts a new destination, checked as such (a webhook gets a new secret); otherwise the
    webhook's secret and the Splunk token are kept unless ``patch`` has a new ``token``.
    """
    if not isinstance(patch, dict):
        _refuse([FieldError("destination", "expected an object of the fields to change")])
    if "kind" in patch and patch["kind"] != current.kind:
        return parse_destination(patch)
    merged: dict[Any, Any] = dict(settings(current))  # JSON from the request
    merged.update(patch)
    return parse_destination(merged, current.secret)


def settings(dest: Destination) -> dict[str, OptionValue]:
    """Everything ``parse_destination`` needs to make ``dest`` again, but its secret."""
    return {"kind": dest.kind, "url": dest.url, **dest.options}


def public(dest: Destination) -> dict[str, OptionValue]:
    """What the API shows of a destination: never its secret."""
    shown = settings(dest)
    if dest.kind == "splunk_hec":
        shown["token_set"] = dest.secret is not None
    return shown


# --- field checks -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Check:
    type: type[OptionValue]
    max_len: int = 0
    #: Printable US-ASCII only, no spaces (syslog header fields, the token).
    ascii_word: bool = False
    range: tuple[int, int] | None = None
    #: PEM text: line breaks allowed, must load as CA certificates.
    pem: bool = False


_TEXT = _Check(str, MAX_SPLUNK_TEXT)
_BOOL = _Check(bool)
_URL = _Check(str, MAX_URL)
_CHECKS: dict[Kind, dict[str, _Check]] = {
    "webhook": {"url": _URL},
    "splunk_hec": {
        "url": _URL,
        "token": _Check(str, MAX_TOKEN, ascii_word=True),
        "index": _TEXT,
        "sourcetype": _TEXT,
        "source": _TEXT,
        "host": _TEXT,
        "verify_tls": _BOOL,
    },
    "syslog": {
        "url": _URL,
        "facility": _Check(int, range=(0, 23)),
        "hostname": _Check(str, MAX_SYSLOG_HOSTNAME, ascii_word=True),
        "app_name": _Check(str, MAX_SYSLOG_APP_NAME, ascii_word=True),
        "ca_pem": _Check(str, MAX_CA_PEM, pem=True),
        "verify_tls": _BOOL,
    },
}


def _refuse(errors: Sequence[FieldError]) -> NoReturn:
    first = errors[0]
    detail = f"{first.field}: {first.message}"
    if len(errors) > 1:
        detail += f" (and {len(errors) - 1} more problems)"
    raise InvalidBody(detail, tuple(errors))


def _shown(key: object) -> str:
    """A field name fit for a message: no control characters, not too long."""
    text = key if isinstance(key, str) else repr(key)
    text = _CONTROL.sub("?", text)
    return text if len(text) <= 64 else text[:61] + "..."


def _check_option(value: object, check: _Check) -> OptionValue:
    if check.type is bool:
        if type(value) is not bool:
            raise _Bad("expected true or false")
        return value
    if check.type is int:
        low, high = check.range or (0, 0)
        if type(value) is not int or not low <= value <= high:
            raise _Bad(f"expected an integer {low}-{high}")
        return value
    text = _check_str(value, check)
    if check.pem:
        _check_ca_pem(text)
    return text


def _check_str(value: object, check: _Check) -> str:
    kind = "printable ASCII characters without spaces" if check.ascii_word else "characters"
    if not isinstance(value, str) or not value:
        raise _Bad(f"expected a string of 1-{check.max_len} {kind}")
    if len(value) > check.max_len:
        raise _Bad(f"length {len(value)} is out of range 1-{check.max_len} {kind}")
    if check.ascii_word:
        if _PRINTABLE_ASCII.fullmatch(value) is None:
            raise _Bad(f"expected a string of 1-{check.max_len} {kind}")
    elif not check.pem and _CONTROL.search(value):
        raise _Bad("must not contain control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _Bad("must be valid Unicode text (no lone surrogates)") from None
    return value


def _check_ca_pem(text: str) -> None:
    # Loading the bundle into a context touches no file or network: it is how to know it
    # holds certificates before a delivery fails on it.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        if not text.isascii():
            raise ValueError("PEM is ASCII")
        context.load_verify_locations(cadata=text)
    except (ssl.SSLError, ValueError, TypeError):
        raise _Bad("expected PEM CA certificates (-----BEGIN CERTIFICATE-----...)") from None


def _check_url(value: object, kind: Kind) -> tuple[str, str]:
    schemes = _SCHEMES[kind]
    example = (
        "tcp://collector.example:514 or tls://collector.example:6514"
        if kind == "syslog"
        else "https://host.example/path"
    )
    if not isinstance(value, str) or not value:
        raise _Bad(f"expected a URL such as {example}")
    if len(value) > MAX_URL:
        raise _Bad(f"length {len(value)} is more than {MAX_URL} characters")
    if not value.isascii():
        raise _Bad("must be ASCII (write an international host name in its xn-- form)")
    if any(ch <= " " or ch == "\x7f" for ch in value):
        raise _Bad("must not contain spaces or control characters")
    try:
        parts = urlsplit(value)
    except ValueError as exc:
        raise _Bad(f"is not a URL ({exc}); expected one such as {example}") from None
    if parts.scheme not in schemes or not value[len(parts.scheme) :].startswith("://"):
        if not parts.scheme or "://" not in value:
            raise _Bad(f"expected a URL starting with {' or '.join(s + '://' for s in schemes)}")
        raise _Bad(f"scheme {parts.scheme!r} is not allowed; expected {' or '.join(schemes)}")
    if "#" in value:
        raise _Bad("must not have a fragment (#...)")
    if "@" in parts.netloc:
        raise _Bad("must not carry a user name or password (user:password@)")
    _check_host(parts)
    port = _check_port(parts)
    if kind == "syslog":
        if port is None:
            raise _Bad(f"needs a port, as in {example}")
        if parts.path not in ("", "/") or parts.query or "?" in value:
            raise _Bad(f"must not have a path or query; expected {example}")
    elif kind == "splunk_hec" and (parts.query or "?" in value):
        raise _Bad("must not have a query (/services/collector/event is added to the path)")
    return value, parts.scheme


def _check_host(parts: SplitResult) -> None:
    host = parts.hostname
    if not host:
        raise _Bad("has no host")
    if parts.netloc.startswith("["):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise _Bad(f"host [{host}] is not an IPv6 address") from None
        return
    name = host[:-1] if host.endswith(".") else host
    if len(name) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in name.split(".")):
        raise _Bad(f"host {host!r} is not a host name or IP address")


def _check_port(parts: SplitResult) -> int | None:
    _, colon, text = parts.netloc.rpartition("]")[2].partition(":")
    if not colon:
        return None
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise _Bad(f"port {text!r} is not a number 1-65535")
    return int(text)


# --- does a destination point at the service itself? -------------------------------------

Resolver: TypeAlias = Callable[[str, int], Awaitable[Sequence[str]]]
LocalCheck: TypeAlias = Callable[[IPAddress], bool]


async def points_at(
    dest: Destination,
    own_host: str,
    own_port: int,
    *,
    resolve: Resolver | None = None,
    is_local: LocalCheck | None = None,
    timeout: float = 5.0,
) -> bool:
    """Whether delivering to ``dest`` would reach the service listening on own_host:own_port.

    True when the port is the service's and the destination's host is a loopback name or
    address (``localhost``, 127.0.0.0/8, ::1), an unspecified address (0.0.0.0 and :: reach
    this machine), the service's listen address, or, when the service listens on a wildcard
    (``0.0.0.0``, ``::``), any address of this machine. Host names are resolved
    (``resolve``, by default the event loop's ``getaddrinfo``) and every address is checked.
    A name that cannot be resolved within ``timeout`` seconds does not point at the service:
    it cannot be delivered to at all, and the delivery's own errors will say so.
    ``is_local`` says whether an address is this machine's (by default: whether a socket
    can be bound to it).
    """
    if dest.port != own_port:
        return False
    host = dest.host
    if host in _LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    resolve = resolve or _getaddrinfo
    is_local = is_local or _bindable
    targets = await _addresses(host, own_port, resolve, timeout)
    wildcard = own_host.strip() in _WILDCARD_HOSTS
    own = set() if wildcard else await _addresses(own_host.strip("[]"), own_port, resolve, timeout)
    for address in targets:
        if address.is_loopback or address.is_unspecified or address in own:
            return True
        if wildcard and is_local(address):
            return True
    return False


async def _addresses(host: str, port: int, resolve: Resolver, timeout: float) -> set[IPAddress]:
    literal = _ip(host)
    if literal is not None:
        return {literal}
    try:
        async with asyncio.timeout(timeout):
            found = await resolve(host, port)
    except (OSError, TimeoutError, UnicodeError):
        return set()
    return {address for text in found if (address := _ip(text)) is not None}


def _ip(text: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


async def _getaddrinfo(host: str, port: int) -> Sequence[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _bindable(address: IPAddress) -> bool:
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.bind((str(address), 0))
    except OSError:
        return False
    return True

"""The client's address behind trusted proxies: ``Forwarded`` or ``X-Forwarded-For``.

Behind a load balancer every connection comes from the balancer, and the client's address is
in a header the balancer adds. Anybody can send such a header, so it is believed only when
the connection comes from an address the operator listed (``trusted_proxies``), and only the
header the operator named (``forwarded_header``): a proxy that appends to
``X-Forwarded-For`` passes a ``Forwarded`` header from the client through untouched, so
believing both would let the client choose.

The header lists one hop per proxy, the client first, each proxy appending the address it
received the request from. Everything left of a hop that no trusted proxy wrote is the
client's own invention, so the list is walked from the right, over trusted addresses, and the
first address that is not trusted is the client's (the "rightmost untrusted" rule). When every
hop is trusted, the leftmost is taken. A hop that is not an address (``unknown``, an
obfuscated ``_name``, garbage) ends the walk at the proxy that wrote it, whose address stands
for the client; so does a ``Forwarded`` header that does not parse. A ``proto`` of the chosen
hop (``X-Forwarded-Proto`` at the same position, or its last value when the counts differ) is
taken as the scheme the client used, if it is ``http`` or ``https``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
#: The two headers an operator can name.
X_FORWARDED_FOR = "x-forwarded-for"
FORWARDED = "forwarded"
_TCHARS = r"[A-Za-z0-9!#$%&'*+.^_`|~-]+"
#: One ``name=value`` of a ``Forwarded`` element; a value is a token or a quoted string (an
#: unquoted ``host:port``, which RFC 7239 says to quote, is read too).
_PAIR = re.compile(rf'[ \t]*({_TCHARS})=("(?:[^"\\]|\\.)*"|[^;,"\s]*)[ \t]*')
_ESCAPE = re.compile(r"\\(.)")


def parse_address(text: str) -> Address | None:
    """An address as proxies write it (``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``, ``::1``),
    an IPv4-mapped IPv6 address as IPv4; ``None`` for anything else."""
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        text = text[1:end] if end > 0 else ""
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def forwarded_elements(value: str) -> list[dict[str, str]] | None:
    """The elements of a ``Forwarded`` header (RFC 7239 §4), each ``{name: value}`` with
    names in lower case and quoted strings unquoted; ``None`` if it does not parse."""
    elements: list[dict[str, str]] = []
    element: dict[str, str] = {}
    pos = 0
    while pos < len(value):
        match = _PAIR.match(value, pos)
        if match is None:
            return None
        raw = match.group(2)
        if raw.startswith('"'):
            raw = _ESCAPE.sub(r"\1", raw[1:-1])
        element.setdefault(match.group(1).lower(), raw)
        pos = match.end()
        if pos < len(value):
            if value[pos] == ",":
                elements.append(element)
                element = {}
            elif value[pos] != ";":
                return None
            pos += 1
    elements.append(element)
    return elements


class TrustedProxies:
    """Finds a request's client address from its TCP peer and forwarding headers."""

    def __init__(self, networks: Sequence[Network], header: str = X_FORWARDED_FOR) -> None:
        if header not in (X_FORWARDED_FOR, FORWARDED):
            raise ValueError(
                f"forwarded header {header!r}: expected {X_FORWARDED_FOR} or {FORWARDED}"
            )
        self.networks = tuple(networks)
        self.header = header

    def trusts(self, address: Address) -> bool:
        return any(address in network for network in self.networks)

    def resolve(self, peer: str | None, headers: Mapping[str, str]) -> tuple[str, str | None]:
        """The client's address and, when a trusted proxy said it, the scheme it used.

        ``peer`` is the TCP peer's address; ``headers`` by lower-case name, repeated ones
        joined with ``, `` (as ``Request.headers`` gives them).
        """
        if peer is None:
            return "-", None
        address = parse_address(peer) if self.networks else None
        if address is None or not self.trusts(address):
            return peer, None
        hops, protos = self._hops(headers)
        client, chosen = address, None
        for index in range(len(hops) - 1, -1, -1):
            text = hops[index]
            hop = parse_address(text) if text is not None else None
            if hop is None:
                break  # not an address: the proxy that wrote it stands for the client
            client, chosen = hop, index
            if not self.trusts(hop):
                break
        return str(client), _scheme(protos, chosen, len(hops))

    def _hops(self, headers: Mapping[str, str]) -> tuple[list[str | None], list[str | None]]:
        """The hops the trusted header lists, and the protocol of each as far as known."""
        if self.header == FORWARDED:
            value = headers.get(FORWARDED)
            elements = forwarded_elements(value) if value is not None else None
            if elements is None:
                return [], []
            return [e.get("for") for e in elements], [e.get("proto") for e in elements]
        value = headers.get(X_FORWARDED_FOR)
        hops: list[str | None] = [h.strip() for h in value.split(",")] if value else []
        proto = headers.get("x-forwarded-proto")
        protos: list[str | None] = [p.strip() for p in proto.split(",")] if proto else []
        return hops, protos


def _scheme(protos: Sequence[str | None], chosen: int | None, hops: int) -> str | None:
    """The protocol the chosen hop used: at its position when each hop has one, else the
    last one given (the request the last proxy received)."""
    if not protos:
        return None
    proto = protos[chosen] if chosen is not None and len(protos) == hops else protos[-1]
    proto = (proto or "").lower()
    return proto if proto in ("http", "https") else None

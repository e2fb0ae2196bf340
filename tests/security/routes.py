"""Requests that exercise any route of the application, for tests that iterate over them all.

``call_for`` makes a plausible request for a route from its pattern and name: path parameters
filled in, a valid body for the routes that take one, the parameters a proof route needs. A
route it does not know (one added later) still gets a request: its pattern with every
``{name}`` filled in, and no body or parameters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import httpx

from auditlog.server.app import AuditlogApp
from auditlog.server.routing import Route


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    params: list[tuple[str, str]] = field(default_factory=list)
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    async def send(self, client: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
        kwargs: dict[str, Any] = {"headers": {**self.headers, **headers}, "params": self.params}
        if self.json is not None:
            kwargs["json"] = self.json
        return await client.request(self.method, self.path, **kwargs)


def call_for(route: Route, event_id: str = "evt-0001", tree_size: int = 50) -> Call:
    """A request for ``route`` about ``event_id``, and a tree of ``tree_size`` leaves."""
    path = re.sub(r"\{\w+\}", event_id, route.pattern)
    name = route.name
    if name == "events.create":
        return Call("POST", path, json={"id": event_id, "type": "probe"})
    if name == "legacy.event.create":
        return Call("POST", path, json={"event_type": "probe", "event_details": {}})
    if name == "events.query":
        return Call("GET", path, [("id", event_id)])
    if name == "legacy.event.query":
        return Call("GET", path, [("_id", event_id)])
    if name == "log.inclusion":
        return Call("GET", path, [("seq", str(tree_size - 1)), ("tree_size", str(tree_size))])
    if name == "log.consistency":
        return Call("GET", path, [("first", str(tree_size // 2)), ("second", str(tree_size))])
    if name == "events.stream":
        # A live stream never ends, and httpx's ASGI transport reads a whole answer: a bad
        # Last-Event-ID makes it a 400 after the same authentication, scope and limits.
        return Call("GET", path, headers={"Last-Event-ID": "not-a-seq"})
    if name == "streams.create":
        return Call(
            "POST", path, json={"destination": {"kind": "webhook", "url": "https://x.test/"}}
        )
    if name == "retention.set":
        return Call("PUT", path, json={"keep": "400d"})
    if name in ("auth.token", "legacy.login"):
        return Call("POST", path, json={"username": "nobody", "password": "nothing"})
    return Call(route.method, path)


#: Routes that take one kind of credential only, which no scope gives: a viewer token's
#: exchange (any other credential is 403 there). tests/server/test_viewer_tokens.py covers it.
ONE_KIND_ONLY = frozenset({"viewer.exchange"})


def credential_routes(app: AuditlogApp) -> list[Route]:
    """Every route that needs a credential, and that any credential with its scope may use."""
    routes = [
        route
        for route in app.router.routes
        if route.scope is not None and route.name not in ONE_KIND_ONLY
    ]
    assert len(routes) >= 10, "the application's routes were not found"
    return routes

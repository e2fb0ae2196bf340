"""Routes as data, and the router that matches a method and path to one.

A pattern is a path with ``{name}`` segments, each matching one non-empty path segment. An
unknown path is 404; a known path with another method is 405 with ``Allow``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from auditlog.errors import MethodNotAllowed, NotFound
from auditlog.model.credentials import Credential
from auditlog.server.asgi import Request, Response, StreamingResponse

if TYPE_CHECKING:
    # Named only: the openapi package describes routes, so a runtime import would be a cycle.
    from auditlog.server.openapi.operation import Operation

Handler = Callable[[Request, "Credential | None"], Awaitable[Response | StreamingResponse]]
#: The ``scope`` of a route that needs a valid credential but no particular scope.
AUTHENTICATED = ""


@dataclass(frozen=True, slots=True)
class Route:
    """One route: ``scope`` is the credential scope it needs.

    ``None`` means no credential is needed; ``AUTHENTICATED`` means any valid credential.
    ``doc`` is what the OpenAPI document says of it, written beside its handler; the
    application is not built while a route has none (``UndocumentedRoute``).
    """

    method: str
    pattern: str
    handler: Handler
    scope: str | None
    name: str
    doc: Operation | None = field(default=None, compare=False)
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parts = re.split(r"\{(\w+)\}", self.pattern)
        # split() alternates literal text and parameter names: text, name, text, ...
        regex = "".join(
            re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^/]+)" for i, part in enumerate(parts)
        )
        object.__setattr__(self, "regex", re.compile(f"^{regex}$"))

    @property
    def authenticated(self) -> bool:
        return self.scope is not None


class Router:
    """Finds the route of a request; exact paths by dict lookup, patterns by regex."""

    def __init__(self, routes: list[Route]) -> None:
        self.routes = routes
        self._exact: dict[str, dict[str, Route]] = {}
        self._patterns: list[Route] = []
        for route in routes:
            if "{" in route.pattern:
                self._patterns.append(route)
            else:
                self._exact.setdefault(route.pattern, {})[route.method] = route

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        lookup = "GET" if method == "HEAD" else method
        by_method = self._exact.get(path)
        if by_method is not None:
            route = by_method.get(lookup)
            if route is None:
                raise MethodNotAllowed(f"{method} is not allowed on {path}", _allow(by_method))
            return route, {}
        allowed: dict[str, Route] = {}
        for route in self._patterns:
            m = route.regex.match(path)
            if m is None:
                continue
            if route.method == lookup:
                return route, m.groupdict()
            allowed[route.method] = route
        if allowed:
            raise MethodNotAllowed(f"{method} is not allowed on {path}", _allow(allowed))
        raise NotFound(f"no route for {path}")


def _allow(by_method: dict[str, Route]) -> tuple[str, ...]:
    methods = set(by_method)
    if "GET" in methods:
        methods.add("HEAD")
    return tuple(sorted(methods))

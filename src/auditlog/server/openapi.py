"""The OpenAPI 3.1 document of every route."""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from auditlog import __version__
from auditlog.server.routing import Route


def openapi_document(routes: Sequence[Route]) -> bytes:
    """The OpenAPI document describing ``routes``."""
    paths: dict[str, dict[str, object]] = {}
    for route in routes:
        operation: dict[str, object] = {
            "operationId": route.name,
            "responses": {"200": {"description": "OK"}},
        }
        if route.scope is not None:
            operation["security"] = [{"bearer": []}]
        paths.setdefault(route.pattern, {})[route.method.lower()] = operation
    doc = {
        "openapi": "3.1.0",
        "info": {"title": "auditlog", "version": __version__},
        "paths": paths,
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
    return orjson.dumps(doc)

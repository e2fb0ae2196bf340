"""The OpenAPI 3.1 document of a list of routes.

Each route carries its own documentation (``Route.doc``, an ``Operation`` written beside its
handler); this module puts the operations together with the shared pieces (component schemas,
problem responses, headers) and what is said of the whole API. ``openapi_value`` refuses
(``UndocumentedRoute``) to describe a route without documentation, so a new route cannot ship
undocumented: the application builds its document when it is built.

Every error answer is an RFC 9457 problem (``application/problem+json``); each operation lists
the statuses it can really give, as references to the shared ``components.responses``.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from auditlog import __version__
from auditlog.server.openapi.operation import JSON, Operation, ref
from auditlog.server.openapi.responses import HEADERS, PROBLEM_SCHEMA, PROBLEMS, REQUEST_ID
from auditlog.server.openapi.schemas import SCHEMAS
from auditlog.server.routing import Route

OPENAPI_VERSION = "3.1.0"
SECURITY_SCHEME = "bearer"


class UndocumentedRoute(LookupError):
    """A route has no ``doc``: document it beside its handler before it ships."""


class ConflictingSchema(ValueError):
    """Two routes give one component schema name different schemas."""


TAGS: tuple[JSON, ...] = (
    {"name": "events", "description": "Write, get and query audit events."},
    {"name": "streams", "description": "Log streams: the tenant's events pushed to a SIEM."},
    {"name": "log", "description": "The tamper-evident log: checkpoints, proofs, its key."},
    {"name": "auth", "description": "Credentials."},
    {"name": "retention", "description": "How long the tenant's events are kept; legal holds."},
    {"name": "operations", "description": "Health, readiness, metrics and this document."},
    {
        "name": "legacy",
        "description": "The first version's routes, kept working for its clients: adapters "
        "onto the same services as `/v1`.",
    },
)

DESCRIPTION = (
    "A durable, tamper-evident audit log. Every `/v1` route but `POST /v1/auth/token` needs "
    "`Authorization: Bearer <token>` (the older `Bearer: <token>` is accepted too), where the "
    "token is an API key or a login token; each credential belongs to one "
    "tenant and sees only that tenant's events. A route's security requirement lists the "
    "scope it needs; `admin` grants every scope.\n\n"
    "Every error is `application/problem+json` (RFC 9457). A path that matches no route is "
    "404; a known path with another method is 405 with `Allow`. Every GET route also answers "
    "HEAD. Nothing a client sends is answered with 500.\n\n"
    "Each credential may make `write_burst` writes at once and `write_rate` a second after "
    "that, and likewise reads; past them 429 with `Retry-After`. A request line and headers "
    "over 64 KiB are refused with 431 and the connection closed. The service records logins "
    "and reads of the log as events (types `auditlog.*`) in the tenant's own log.\n\n"
    "Every answer carries `X-Request-ID`: the one the request sent when it is 1-128 visible "
    "ASCII characters, else one made; the self-audit records of the request hold it as "
    "`data.request_id`."
)


def _doc(route: Route) -> Operation:
    if route.doc is None:
        raise UndocumentedRoute(
            f"route {route.method} {route.pattern} ({route.name}) has no documentation: give "
            f"its Route a doc=Operation(...) where {route.handler.__module__} makes it, beside "
            "the handler (Operation is in auditlog.server.openapi)"
        )
    return route.doc


def _operation(route: Route, doc: Operation) -> JSON:
    responses: JSON = {status: _with_request_id(answer) for status, answer in doc.responses.items()}
    for status in doc.errors:
        responses[str(status)] = ref("responses", PROBLEMS[status][0])
    if route.authenticated and 401 not in doc.errors:
        responses["401"] = ref("responses", PROBLEMS[401][0])
    if route.authenticated:  # every credential has its request rates (RequestLimiter)
        responses["429"] = ref("responses", PROBLEMS[429][0])
    operation: JSON = {
        "operationId": doc.operation_id,
        "summary": doc.summary,
        "description": doc.description,
        "tags": [doc.tag],
    }
    if route.authenticated:
        # OpenAPI 3.1 lets a bearer requirement list the roles it needs: here the scope.
        operation["security"] = [{SECURITY_SCHEME: [route.scope] if route.scope else []}]
        if route.scope:
            operation["description"] += f"\n\nNeeds the scope `{route.scope}` (or `admin`)."
        else:
            operation["description"] += "\n\nNeeds any valid credential."
    else:
        operation["security"] = []
    if doc.parameters:
        operation["parameters"] = list(doc.parameters)
    if doc.request_body is not None:
        operation["requestBody"] = doc.request_body
    operation["responses"] = responses
    return operation


def _with_request_id(answer: JSON) -> JSON:
    """An answer of the operation's own, with the ``X-Request-ID`` every answer carries."""
    if "$ref" in answer:
        return answer
    headers = {**answer.get("headers", {}), REQUEST_ID: ref("headers", "RequestId")}
    return {**answer, "headers": headers}


def _schemas(docs: Sequence[tuple[Route, Operation]]) -> dict[str, JSON]:
    """The shared component schemas, and those the operations give."""
    schemas: dict[str, JSON] = {**SCHEMAS, "Problem": PROBLEM_SCHEMA}
    for route, doc in docs:
        for name, schema in doc.schemas.items():
            if schemas.setdefault(name, schema) != schema:
                raise ConflictingSchema(
                    f"route {route.method} {route.pattern} gives the component schema "
                    f"{name!r}, which is already given with another schema"
                )
    return schemas


def openapi_value(routes: Sequence[Route]) -> JSON:
    """The OpenAPI document describing ``routes``, as a JSON value.

    Raises ``UndocumentedRoute`` for a route without ``doc``, ``ConflictingSchema`` when two
    operations give one component schema name different schemas.
    """
    docs = [(route, _doc(route)) for route in routes]
    paths: dict[str, JSON] = {}
    for route, doc in docs:
        paths.setdefault(route.pattern, {})[route.method.lower()] = _operation(route, doc)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "auditlog",
            "version": __version__,
            "description": DESCRIPTION,
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "tags": list(TAGS),
        "paths": paths,
        "components": {
            "schemas": _schemas(docs),
            "responses": dict(PROBLEMS.values()),
            "headers": HEADERS,
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key made by `auditlog keys create` "
                    "(`alk_<id>_<secret>`), or a login token from `POST /v1/auth/token` "
                    "(a JWT).",
                }
            },
        },
    }


def openapi_document(routes: Sequence[Route]) -> bytes:
    """The OpenAPI document describing ``routes``, serialised.

    Raises ``UndocumentedRoute`` for a route without ``doc``.
    """
    return orjson.dumps(openapi_value(routes))

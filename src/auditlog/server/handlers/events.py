"""``/v1/events``: write, get and query events."""

from __future__ import annotations

from typing import Any

from auditlog.errors import BadRequest, UnsupportedMediaType
from auditlog.model.credentials import EVENTS_READ, EVENTS_WRITE, Credential
from auditlog.server.asgi import Request, Response
from auditlog.server.openapi import JSON, Operation, json_content, ref, schema_ref
from auditlog.server.openapi.parameters import QUERY_PARAMETERS, path_param, query_param
from auditlog.server.routing import Route
from auditlog.service.events import Events
from auditlog.service.proofs import LogProofs
from auditlog.service.pruned import PRUNED_BEFORE_HEADER

#: ``Auditlog-Pruned-Before`` in the OpenAPI document of the reads that may give it.
PRUNED_BEFORE_DOC: JSON = {
    "description": "Given when the tenant's log has a pruned prefix (API.md §14) and the "
    "request's range of seqs began below it: the tenant's horizon, the first kept seq. "
    "The answer holds no event before it and continues from it.",
    "schema": {"type": "integer", "minimum": 1},
}


def pruned_before(horizon: int | None) -> list[tuple[bytes, bytes]]:
    """The ``Auditlog-Pruned-Before`` header of an answer, when it has one."""
    if horizon is None:
        return []
    return [(PRUNED_BEFORE_HEADER.lower().encode(), str(horizon).encode())]


_NDJSON = ("application/x-ndjson", "application/ndjson", "application/jsonlines")


def body_format(content_type: str | None) -> bool:
    """Whether a body of this Content-Type is NDJSON; 415 for types we do not read.

    JSON (``application/json`` or any ``+json`` type) and NDJSON are read; a missing
    Content-Type is read as JSON.
    """
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    if media in _NDJSON:
        return True
    if media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    ):
        return False
    raise UnsupportedMediaType(
        f"Content-Type {media!r} is not accepted; send application/json or application/x-ndjson"
    )


async def json_request(request: Request, limit: int, what: str) -> Any:
    """The body of a route that takes one JSON value (``what`` names it in a 415)."""
    if body_format(request.headers.get("content-type")):
        raise UnsupportedMediaType(f"{what} is JSON (application/json)")
    return await request.json(limit)


def wait_for_checkpoint(request: Request) -> bool:
    """Whether ``POST /v1/events`` asks to wait for a checkpoint (``?wait=checkpoint``).

    Other query parameters are ignored, as they always were; a ``wait`` with another value,
    or given twice, is 400.
    """
    values = [value for name, value in request.query_params() if name == "wait"]
    if not values:
        return False
    if len(values) > 1:
        raise BadRequest("parameter 'wait' is given more than once")
    if values[0] != "checkpoint":
        raise BadRequest(f"wait {values[0]!r} is not supported; expected 'checkpoint'")
    return True


# -- the documentation of the routes (OpenAPI) ------------------------------------------------

_EVENT_REQUEST_BODY: JSON = {
    "required": True,
    "description": (
        "One event (a JSON object), or a batch: a JSON array of events, or NDJSON (one event "
        "per line; `application/ndjson` and `application/jsonlines` are read too). A batch "
        "holds 1-10,000 events and its body is at most 16 MiB (both configurable); it is "
        "atomic: every event is stored, or none. A missing Content-Type is read as JSON, as "
        "is any `application/*+json` type."
    ),
    "content": {
        "application/json": {
            "schema": {
                "oneOf": [
                    schema_ref("EventInput"),
                    {"type": "array", "minItems": 1, "items": schema_ref("EventInput")},
                ]
            }
        },
        "application/x-ndjson": {
            "schema": {
                "type": "string",
                "description": "One EventInput JSON object per line; blank lines are ignored.",
            }
        },
    },
}

_WRITE_ANSWER: JSON = {
    "oneOf": [
        schema_ref("Event"),
        schema_ref("BatchAnswer"),
        schema_ref("CoveredEvent"),
        schema_ref("CoveredBatch"),
    ],
    "description": "For one event, the stored event; for a batch, the id and seq of each. "
    "With `?wait=checkpoint`, wrapped with the covering checkpoint and inclusion proofs.",
}

_CREATE = Operation(
    operation_id="createEvents",
    summary="Write one event or an atomic batch",
    description=(
        "Stores one event (a JSON object) or a batch (a JSON array, or NDJSON). The answer "
        "is sent only after the events are durably committed. Idempotent: an event whose "
        "`id` the tenant already holds with the same content (envelope fields and `data`, "
        "compared as JSON values; fields the server fills in are compared only when sent) "
        "is not stored twice; the same id with other content is 409.\n\n"
        "With `?wait=checkpoint`, the answer also waits (up to `checkpoint_wait_ms`, 5 s) "
        "for a signed checkpoint that covers the events, and carries it with each event's "
        "inclusion proof (`CoveredEvent`, `CoveredBatch`). Other query parameters are "
        "ignored; another `wait` value is 400."
    ),
    tag="events",
    parameters=(
        query_param(
            "wait",
            "`checkpoint`: answer once a checkpoint covers the events, with it and the "
            "inclusion proofs.",
            {"type": "string", "enum": ["checkpoint"]},
        ),
    ),
    request_body=_EVENT_REQUEST_BODY,
    responses={
        "201": {
            "description": "Stored. One event: the stored event, and its path in "
            "`Location`. A batch: the id and seq of each of its events, in request order.",
            "headers": {"Location": ref("headers", "Location")},
            "content": json_content(_WRITE_ANSWER),
        },
        "200": {
            "description": "Every event was already stored with the same content (an "
            "idempotent retry): the original stored event, or for a batch the original "
            "seq of each. Nothing new was stored.",
            "headers": {"Location": ref("headers", "Location")},
            "content": json_content(_WRITE_ANSWER),
        },
    },
    errors=(400, 401, 403, 409, 413, 415, 422, 503),
)

_QUERY = Operation(
    operation_id="queryEvents",
    summary="Query the tenant's events",
    description=(
        "One page of the events of the caller's tenant that satisfy every parameter, in "
        "`seq` order, and the cursor of the next page. Every malformed parameter (unknown "
        "operator, bad time, bad cursor, limit out of range, bad field path) is 400 with a "
        "message that names it. Where the tenant's retention pruned the start of its log, "
        f"a range that begins below the first kept seq continues from it, and "
        f"`{PRUNED_BEFORE_HEADER}` says where that is."
    ),
    tag="events",
    parameters=QUERY_PARAMETERS,
    responses={
        "200": {
            "description": "One page.",
            "headers": {PRUNED_BEFORE_HEADER: PRUNED_BEFORE_DOC},
            "content": json_content(schema_ref("EventPage")),
        },
    },
    errors=(400, 401, 403, 503),
)

_GET = Operation(
    operation_id="getEvent",
    summary="Get one event by id",
    description="The stored event of the caller's tenant with this id. Another tenant's "
    "events are never found (404). An event pruned by the tenant's retention is 404 with a "
    "detail that says so.",
    tag="events",
    parameters=(path_param("id", "The event's id."),),
    responses={"200": {"description": "The event.", "content": json_content(schema_ref("Event"))}},
    errors=(401, 403, 404, 503),
)


def routes(events: Events, max_body_bytes: int, log: LogProofs | None = None) -> list[Route]:
    async def create(request: Request, credential: Credential | None) -> Response:
        assert credential is not None
        wait = log is not None and wait_for_checkpoint(request)
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding != "identity":
            raise UnsupportedMediaType(
                f"Content-Encoding {encoding!r} is not accepted; send the body uncompressed"
            )
        ndjson = body_format(request.headers.get("content-type"))
        events.admit(credential)
        body = await request.body(max_body_bytes)
        answer = await events.write(credential, body, ndjson)
        headers = [(b"location", answer.location.encode())] if answer.location else None
        if wait:
            assert log is not None
            return Response(
                answer.status, await log.cover(credential, answer.body), headers=headers
            )
        return Response(answer.status, answer.body, headers=headers)

    async def get(request: Request, credential: Credential | None) -> Response:
        assert credential is not None
        answer = await events.get(credential, request.path_params["id"])
        return Response(answer.status, answer.body)

    async def search(request: Request, credential: Credential | None) -> Response:
        assert credential is not None
        answer = await events.query(credential, request.query_params())
        return Response(answer.status, answer.body, headers=pruned_before(answer.pruned_before))

    return [
        Route("POST", "/v1/events", create, EVENTS_WRITE, "events.create", doc=_CREATE),
        Route("GET", "/v1/events", search, EVENTS_READ, "events.query", doc=_QUERY),
        Route("GET", "/v1/events/{id}", get, EVENTS_READ, "events.get", doc=_GET),
    ]

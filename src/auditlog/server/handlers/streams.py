"""``/v1/streams``: a tenant's log streams, administered (API.md §11)."""

from __future__ import annotations

from typing import Any

from auditlog.model.credentials import ADMIN, Credential
from auditlog.server.asgi import Request, Response
from auditlog.server.handlers.events import json_request
from auditlog.server.openapi import JSON, Operation, json_content, schema_ref
from auditlog.server.openapi.parameters import filter_schema, path_param
from auditlog.server.routing import Route
from auditlog.service.streams import StreamAdmin

#: Largest body of a stream's definition.
MAX_BODY = 64 * 1024

_TIME = {"type": ["string", "null"], "format": "date-time"}
_DESTINATION: JSON = {
    "type": "object",
    "description": (
        "Where the events go. `webhook`: `{kind, url}` (http or https); each batch is a "
        '`POST` of `{"events": [...]}` signed as Standard Webhooks do (`webhook-id`, '
        "`webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256>`). `splunk_hec`: "
        "`{kind, url, token, index?, sourcetype?, source?, host?, verify_tls?}`; batches go "
        "to `<url>/services/collector/event`. `syslog`: `{kind, url: tcp://host:port or "
        "tls://host:port, facility?, hostname?, app_name?, ca_pem?, verify_tls?}`; RFC 5424 "
        "messages with octet counting. A URL of another scheme, or one that points at this "
        "service, is refused (422). Secrets (the Splunk token) are never shown after they "
        "are set: a Splunk destination shows `token_set` instead."
    ),
    "properties": {
        "kind": {"type": "string", "enum": ["webhook", "splunk_hec", "syslog"]},
        "url": {"type": "string", "maxLength": 2048},
    },
    "required": ["kind", "url"],
    "additionalProperties": True,
}
_STREAM_SCHEMA: JSON = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "pattern": "^st_[a-z2-7]{16}$"},
        "name": {"type": "string"},
        "destination": _DESTINATION,
        "filter": filter_schema(request=False),
        "start": {"type": "integer", "description": "The first seq the stream delivers."},
        "paused": {"type": "boolean"},
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
        "delivered_seq": {
            "type": ["integer", "null"],
            "description": "Every event from `start` through this seq that matches the "
            "filter has been delivered; null before any.",
        },
        "lag_events": {"type": "integer", "description": "Events committed after it."},
        "deliveries": {"type": "integer", "description": "Events delivered."},
        "failures": {"type": "integer", "description": "Failed delivery attempts."},
        "last_success_at": _TIME,
        "last_error": {"type": ["string", "null"]},
        "last_error_at": _TIME,
        "secret": {
            "type": "string",
            "description": "A webhook's signing secret (`whsec_` + base64): only in the "
            "answer to its creation.",
        },
    },
    "required": ["id", "name", "destination", "filter", "start", "paused", "delivered_seq"],
}
_STREAM_BODY: JSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 200},
        "destination": _DESTINATION,
        "filter": filter_schema(request=True),
        "start": {
            "oneOf": [
                {"type": "string", "enum": ["now", "beginning"]},
                {"type": "integer", "minimum": 0},
            ],
            "default": "now",
        },
        "paused": {"type": "boolean", "default": False},
    },
    "additionalProperties": False,
}
_SCHEMAS = {
    "Stream": _STREAM_SCHEMA,
    "StreamList": {
        "type": "object",
        "properties": {"streams": {"type": "array", "items": schema_ref("Stream")}},
        "required": ["streams"],
    },
}
_ID = (path_param("id", "The stream's id."),)
_ADMIN_NOTE = (
    " Each change is recorded in the tenant's log before it takes effect "
    "(`auditlog.stream.created`, `.changed`, `.deleted`)."
)

_CREATE = Operation(
    operation_id="createStream",
    summary="Make a log stream",
    description="A stream delivers the tenant's events that match its filter, as they are "
    "committed, to its destination: at least once, in seq order, in batches, retrying "
    "with backoff for as long as it takes. `start`: `now` (the default: events committed "
    "from now on), `beginning`, or a seq. The answer carries a webhook's signing secret as "
    "`secret`, the only time it is shown." + _ADMIN_NOTE,
    tag="streams",
    request_body={
        "required": True,
        "content": json_content({**_STREAM_BODY, "required": ["destination"]}),
    },
    responses={
        "201": {
            "description": "Made.",
            "headers": {"Location": {"schema": {"type": "string"}}},
            "content": json_content(schema_ref("Stream")),
        }
    },
    errors=(400, 403, 415, 422, 503),
    schemas=_SCHEMAS,
)
_LIST = Operation(
    operation_id="listStreams",
    summary="The tenant's log streams",
    description="Every stream of the tenant, oldest first, with its state. Reading streams "
    "is not recorded as a read of the log (it reads no events).",
    tag="streams",
    responses={
        "200": {"description": "The streams.", "content": json_content(schema_ref("StreamList"))}
    },
    errors=(403, 503),
    schemas=_SCHEMAS,
)
_GET = Operation(
    operation_id="getStream",
    summary="One log stream and its state",
    description="The stream's definition (never a secret) and state: `delivered_seq`, "
    "`lag_events`, `last_success_at`, `last_error`, `paused`.",
    tag="streams",
    parameters=_ID,
    responses={
        "200": {"description": "The stream.", "content": json_content(schema_ref("Stream"))}
    },
    errors=(403, 404, 503),
    schemas=_SCHEMAS,
)
_PATCH = Operation(
    operation_id="changeStream",
    summary="Change a log stream",
    description="Pause or resume it (`paused`), rename it, change its filter, or change "
    "settings of its destination (the fields given replace the current ones; a `kind` "
    "other than the current one starts a new destination). Delivery goes on from where it "
    "was." + _ADMIN_NOTE,
    tag="streams",
    parameters=_ID,
    request_body={
        "required": True,
        "content": json_content(
            {
                **_STREAM_BODY,
                "properties": {k: v for k, v in _STREAM_BODY["properties"].items() if k != "start"},
            }
        ),
    },
    responses={
        "200": {
            "description": "The stream as changed.",
            "content": json_content(schema_ref("Stream")),
        }
    },
    errors=(400, 403, 404, 415, 422, 503),
    schemas=_SCHEMAS,
)
_DELETE = Operation(
    operation_id="deleteStream",
    summary="Delete a log stream",
    description="Delivery stops (a batch on its way may still arrive)." + _ADMIN_NOTE,
    tag="streams",
    parameters=_ID,
    responses={"204": {"description": "Deleted."}},
    errors=(403, 404, 503),
    schemas=_SCHEMAS,
)


def routes(admin: StreamAdmin) -> list[Route]:
    async def body(request: Request) -> Any:
        return await json_request(request, MAX_BODY, "a stream's definition")

    async def create(request: Request, credential: Credential | None) -> Response:
        assert credential is not None
        made = await admin.create(credential, await body(request))
        location = f"/v1/streams/{made['id']}".encode()
        return Response.json(201, made, headers=[(b"location", location)])

    async def listing(request: Request, credential: Credential | None) -> Response:
        assert credential is not None
        return Response.json(200, {"streams": await admin.list_all(credential)})

    async def get(request: Request, credential: Credential | None) -> Response:
        assert credential is not None
        return Response.json(200, await admin.get(credential, request.path_params["id"]))

    async def change(request: Request, credential: Credential | None) -> Response:
        assert credential is not None
        changed = await admin.change(credential, request.path_params["id"], await body(request))
        return Response.json(200, changed)

    async def delete(request: Request, credential: Credential | None) -> Response:
        assert credential is not None
        await admin.delete(credential, request.path_params["id"])
        return Response(204, b"")

    return [
        Route("POST", "/v1/streams", create, ADMIN, "streams.create", doc=_CREATE),
        Route("GET", "/v1/streams", listing, ADMIN, "streams.list", doc=_LIST),
        Route("GET", "/v1/streams/{id}", get, ADMIN, "streams.get", doc=_GET),
        Route("PATCH", "/v1/streams/{id}", change, ADMIN, "streams.change", doc=_PATCH),
        Route("DELETE", "/v1/streams/{id}", delete, ADMIN, "streams.delete", doc=_DELETE),
    ]

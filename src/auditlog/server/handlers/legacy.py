"""The first version's routes (API.md §8), kept working as adapters onto the v1 services.

Clients written for the service this one replaces (a Flask "Audit Log Service": ``GET /ping``,
``POST /login``, ``GET /auth``, ``POST /event``, ``GET /event``) keep working unchanged. Every
route here translates the old request into a call of the same services ``/v1`` uses (the
login service, ``Events.write``, ``Events.query``) and translates the answer back; nothing is
stored or searched any other way. The old field and parameter names exist only in this module
(its OpenAPI documentation, with the component schemas of the old bodies, included):

================  ====================================================================
old               ours
================  ====================================================================
``event_type``    ``type``
``event_details`` ``data``
``user_id``       ``actor.id``: for a login token the username (the actor is
                  ``{"id": <username>, "type": "user"}``); for an API key the default
                  actor, ``key:<key id>``
``timestamp``     ``time``, as Unix seconds (a number)
``_id``           ``id`` (a ULID the server makes; the old ``<user>-<type>-<timestamp>``
                  cannot be an id, since event types may hold spaces)
(none)            ``source`` is ``"legacy"`` for events written through ``POST /event``
``timeStart``     ``time[gte]`` (inclusive, as before)
``timeEnd``       ``time[lte]`` (inclusive, as before)
``keyword``       no v1 parameter: a case-sensitive substring of any string value of the
                  old form of the event (``_id``, ``event_type``, ``user_id``, any string
                  in ``event_details``), as before; checked here on the events the other
                  parameters select
================  ====================================================================

``GET /event`` answers every matching event, oldest first (the order the old store returned
them in), as one JSON list; more than ``legacy_max_events`` is refused with 400 rather than
cut short silently. Unknown parameters are ignored and a repeated one counts once (its first
value), as before. Errors are problem documents with the statuses of the rest of the API
(401 rather than the old 403 for a bad token or password), except that a body that does not
fit the old event schema is 400, as before, rather than 422.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import orjson

from auditlog.errors import (
    BadRequest,
    FieldError,
    InvalidEvent,
    PayloadTooLarge,
    RequestError,
    UnsupportedMediaType,
)
from auditlog.model import times
from auditlog.model.batch import parse_body
from auditlog.model.credentials import EVENTS_READ, EVENTS_WRITE, Credential
from auditlog.server.asgi import Request, Response
from auditlog.server.handlers.auth import NO_STORE, login_fields
from auditlog.server.handlers.events import body_format
from auditlog.server.openapi import JSON, Operation, json_content, ref, schema_ref
from auditlog.server.openapi.parameters import TIME_PARAM, query_param
from auditlog.server.openapi.schemas import DATA_FIELD, ID_FIELD, TYPE_FIELD
from auditlog.server.routing import AUTHENTICATED, Route
from auditlog.service.auth import refuse_viewer
from auditlog.service.events import Events
from auditlog.service.login import Logins
from auditlog.service.selfaudit import SelfAudit

LEGACY_SOURCE = "legacy"
TEXT_PLAIN = "text/plain; charset=utf-8"
SUBMITTED = {"status": 200, "message": "Event submitted"}
_PAGE_SIZE = "1000"
_EVENT_FIELDS = ("event_type", "event_details")
#: Our field names (in validation errors) as the old event calls them.
_OLD_FIELD = {"type": "event_type", "data": "event_details"}
#: Old query parameters with an equality of ours.
#: As ``TIME_PARAM``, with white space around it allowed: ``_time_bound`` strips it.
_LEGACY_TIME: JSON = {
    **TIME_PARAM,
    "pattern": "^\\s*" + TIME_PARAM["pattern"].removeprefix("^").removesuffix("$") + "\\s*$",
}
_EQUALITY = {"_id": "id", "event_type": "type", "user_id": "actor"}
_TIME_BOUNDS = {"timeStart": "time[gte]", "timeEnd": "time[lte]"}


# -- translation ------------------------------------------------------------------------------


def to_event(body: Any, credential: Credential) -> dict[str, Any]:
    """Our event for an old ``POST /event`` body; ``BadRequest`` if it does not fit the old
    schema (an object of exactly a string ``event_type`` and an object ``event_details``)."""
    if not isinstance(body, dict):
        raise BadRequest(
            'the body must be a JSON object {"event_type": "...", "event_details": {...}}'
        )
    errors: list[FieldError] = []
    for name in sorted(set(body) - set(_EVENT_FIELDS)):
        errors.append(FieldError(name, "unknown field; expected event_type and event_details"))
    for name, kind, expected in (
        ("event_type", str, "a string"),
        ("event_details", dict, "an object"),
    ):
        if name not in body:
            errors.append(FieldError(name, "is required"))
        elif not isinstance(body[name], kind):
            errors.append(FieldError(name, f"must be {expected}"))
    if errors:
        raise _bad_request(errors)
    event: dict[str, Any] = {
        "type": body["event_type"],
        "data": body["event_details"],
        "source": LEGACY_SOURCE,
    }
    if credential.kind == "jwt":
        event["actor"] = {"id": credential.name, "type": "user"}
    return event


def from_event(stored: dict[str, Any]) -> dict[str, Any]:
    """The old form of a stored event."""
    return {
        "_id": stored["id"],
        "event_type": stored["type"],
        "user_id": stored["actor"]["id"],
        "timestamp": times.parse_rfc3339(stored["time"]) / 1_000_000,
        "event_details": stored["data"],
    }


def _time_bound(name: str, text: str) -> str:
    """An old time parameter (Unix seconds; RFC 3339 is accepted too) as our time text."""
    try:
        us = times.parse_time_param(text.strip())
    except ValueError:
        try:
            seconds = float(text)  # the old service read these with float()
            if not math.isfinite(seconds):
                raise ValueError(text)
            us = times.from_unix_seconds(seconds)
        except ValueError:
            raise BadRequest(
                f"parameter {name!r}: {text[:40]!r} is not a time; expected Unix seconds"
            ) from None
    return times.format_us(us)


def to_query(params: Sequence[tuple[str, str]]) -> tuple[list[tuple[str, str]], str | None]:
    """Our query parameters for an old ``GET /event`` query, and its ``keyword`` (if any).

    As before, other parameters are ignored and only the first value of a repeated one counts.
    """
    first: dict[str, str] = {}
    for name, value in params:
        first.setdefault(name, value)
    ours = [(_EQUALITY[name], first[name]) for name in _EQUALITY if name in first]
    ours += [
        (bound, _time_bound(name, first[name]))
        for name, bound in _TIME_BOUNDS.items()
        if name in first
    ]
    return ours, first.get("keyword")


def contains(value: Any, keyword: str) -> bool:
    """Whether a string anywhere in ``value`` (object values, array items) holds ``keyword``."""
    if isinstance(value, str):
        return keyword in value
    if isinstance(value, dict):
        return any(contains(v, keyword) for v in value.values())
    if isinstance(value, list):
        return any(contains(v, keyword) for v in value)
    return False


def _old_field(field: str) -> str:
    head, dot, rest = field.partition(".")
    return _OLD_FIELD.get(head, head) + dot + rest


def _bad_request(errors: Sequence[FieldError]) -> BadRequest:
    first = errors[0]
    detail = f"{first.field}: {first.message}"
    if len(errors) > 1:
        detail += f" (and {len(errors) - 1} more problems)"
    return BadRequest(detail, tuple(errors))


def _in_old_terms(exc: RequestError) -> RequestError:
    """A validation error of ours, in the old field names (and 400 for 422, as before)."""
    errors = tuple(FieldError(_old_field(e.field), e.message) for e in exc.errors)
    if not errors:
        return BadRequest(exc.detail) if isinstance(exc, InvalidEvent) else exc
    if isinstance(exc, PayloadTooLarge):
        first = errors[0]
        return PayloadTooLarge(f"{first.field}: {first.message}", errors)
    return _bad_request(errors)


# -- the documentation of the routes (OpenAPI) ------------------------------------------------

#: The first version's bodies and answers, as component schemas of its routes.
_SCHEMAS: dict[str, JSON] = {
    "LegacyLogin": {
        "type": "object",
        "description": "The first version's login body: other fields are ignored.",
        "properties": {
            "username": {"type": "string"},
            "password": {"type": "string", "format": "password"},
        },
        "required": ["username", "password"],
    },
    "LegacyToken": {
        "type": "object",
        "properties": {
            "token": {
                "type": "string",
                "description": "The same login token `POST /v1/auth/token` gives.",
            }
        },
        "required": ["token"],
        "additionalProperties": False,
    },
    "LegacyEventInput": {
        "type": "object",
        "description": "The first version's event: stored with `type` = `event_type`, `data` = "
        '`event_details`, `source` = `"legacy"` and, for a login token, `actor` = `{"id": '
        '<username>, "type": "user"}`.',
        "properties": {
            "event_type": TYPE_FIELD,
            "event_details": {"type": "object"},
        },
        "required": ["event_type", "event_details"],
        "additionalProperties": False,
    },
    "LegacySubmitted": {
        "type": "object",
        "properties": {
            "status": {"type": "integer", "enum": [200]},
            "message": {"type": "string", "enum": ["Event submitted"]},
        },
        "required": ["status", "message"],
        "additionalProperties": False,
    },
    "LegacyEvent": {
        "type": "object",
        "description": "A stored event in the first version's form.",
        "properties": {
            "_id": {**ID_FIELD, "description": "The event's `id`."},
            "event_type": {**TYPE_FIELD, "description": "The event's `type`."},
            "user_id": {"type": "string", "description": "The event's `actor.id`."},
            "timestamp": {"type": "number", "description": "The event's `time`, Unix seconds."},
            "event_details": {**DATA_FIELD, "description": "The event's `data`."},
        },
        "required": ["_id", "event_type", "user_id", "timestamp", "event_details"],
        "additionalProperties": False,
    },
}


def _schemas(*names: str) -> dict[str, JSON]:
    return {name: _SCHEMAS[name] for name in names}


_PING = Operation(
    operation_id="legacyPing",
    summary="The first version's liveness check",
    description='Answers the JSON string `"pong!"`. Needs no credential. Kept for '
    "clients of the first version; see `/healthz`.",
    tag="legacy",
    responses={
        "200": {
            "description": 'The JSON string `"pong!"`.',
            "content": json_content({"type": "string", "enum": ["pong!"]}),
        }
    },
)

_LOGIN = Operation(
    operation_id="legacyLogin",
    summary="The first version's login",
    description="As `POST /v1/auth/token` (the same users, limits and token, with the "
    "user's scopes), answered in the first version's form `{\"token\": ...}`. Fields "
    "other than `username` and `password` are ignored. Needs no credential.",
    tag="legacy",
    schemas=_schemas("LegacyLogin", "LegacyToken"),
    request_body={"required": True, "content": json_content(schema_ref("LegacyLogin"))},
    responses={
        "200": {
            "description": "The token.",
            "headers": {"Cache-Control": ref("headers", "CacheControl")},
            "content": json_content(schema_ref("LegacyToken")),
        }
    },
    errors=(400, 401, 413, 415, 429, 503),
)

_AUTH = Operation(
    operation_id="legacyAuth",
    summary="The first version's token check",
    description="Answers the text `JWT is valid` when the bearer token is a valid "
    "credential (a login token or an API key); 401 otherwise. Accepts "
    "`Authorization: Bearer: <token>` as the first version did.",
    tag="legacy",
    responses={
        "200": {
            "description": "The text `JWT is valid`.",
            "content": {TEXT_PLAIN: {"schema": {"type": "string"}}},
        }
    },
    errors=(401, 503),
)

_POST_EVENT = Operation(
    operation_id="legacyCreateEvent",
    summary="The first version's event submission",
    description="Stores one event through the same durable write as `POST /v1/events`: "
    'the answer `{"status": 200, "message": "Event submitted"}` is sent only after the '
    "event is committed. A body that does not fit the first version's schema, or an "
    "event ours refuses, is 400 with the first version's field names.",
    tag="legacy",
    schemas=_schemas("LegacyEventInput", "LegacySubmitted"),
    request_body={"required": True, "content": json_content(schema_ref("LegacyEventInput"))},
    responses={
        "200": {
            "description": "Stored.",
            "content": json_content(schema_ref("LegacySubmitted")),
        }
    },
    errors=(400, 401, 403, 413, 415, 503),
)

_GET_EVENTS = Operation(
    operation_id="legacyQueryEvents",
    summary="The first version's event query",
    description="Every event of the caller's tenant matching all the parameters given, "
    "oldest first, in the first version's form, as one JSON list (no pages). More than "
    "`legacy_max_events` (10,000) matching events is 400: narrow the query. Other "
    "parameters are ignored, and a repeated one counts once, as in the first version.",
    tag="legacy",
    schemas=_schemas("LegacyEvent"),
    parameters=(
        query_param("_id", "The event's `id`.", {"type": "string"}),
        query_param("event_type", "Equality on `type`.", {"type": "string"}),
        query_param("user_id", "Equality on the actor's `id`.", {"type": "string"}),
        query_param(
            "timeStart",
            "Events whose `time` is at or after this, in Unix seconds (inclusive).",
            _LEGACY_TIME,
            examples={"unix": {"value": "1686250800"}},
        ),
        query_param(
            "timeEnd",
            "Events whose `time` is at or before this, in Unix seconds (inclusive).",
            _LEGACY_TIME,
        ),
        query_param(
            "keyword",
            "Events where some string (the id, type, actor id, or any string in `data`) "
            "contains this text, case-sensitively.",
            {"type": "string"},
        ),
    ),
    responses={
        "200": {
            "description": "The matching events.",
            "content": json_content({"type": "array", "items": schema_ref("LegacyEvent")}),
        }
    },
    errors=(400, 401, 403, 503),
)


# -- the routes -------------------------------------------------------------------------------


def routes(
    events: Events,
    logins: Logins,
    audit: SelfAudit,
    max_body_bytes: int,
    max_events: int,
) -> list[Route]:
    async def ping(request: Request, credential: Credential | None) -> Response:
        return Response(200, b'"pong!"')

    async def login(request: Request, credential: Credential | None) -> Response:
        username, password = await login_fields(request, strict=False)
        issued = await logins.login(username, password, request.client)
        return Response.json(200, {"token": issued.token}, headers=NO_STORE)

    async def auth(request: Request, credential: Credential | None) -> Response:
        assert credential is not None
        refuse_viewer(credential, "the first version's routes")
        return Response(200, b"JWT is valid", TEXT_PLAIN)

    async def post_event(request: Request, credential: Credential | None) -> Response:
        assert credential is not None
        refuse_viewer(credential, "the first version's routes")
        content_type = request.headers.get("content-type")
        if content_type and body_format(content_type):
            raise UnsupportedMediaType("the body is one JSON object; send application/json")
        events.admit(credential)
        try:
            values, batch = parse_body(await request.body(max_body_bytes), ndjson=False)
            event = to_event(None if batch else values[0], credential)
            # The answer waits for the commit: Events.write returns once the event is durable.
            await events.write(credential, orjson.dumps(event), ndjson=False)
        except (InvalidEvent, PayloadTooLarge) as exc:
            raise _in_old_terms(exc) from None
        return Response.json(200, SUBMITTED)

    async def get_events(request: Request, credential: Credential | None) -> Response:
        assert credential is not None
        refuse_viewer(credential, "the first version's routes")
        params, keyword = to_query(request.query_params())
        params += [("order", "asc"), ("limit", _PAGE_SIZE)]
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page_params = [*params, ("cursor", cursor)] if cursor is not None else params
            answer = await events.query(credential, page_params, audit=False)
            page = orjson.loads(answer.body)
            for stored in page["events"]:
                old = from_event(stored)
                if keyword is None or contains(old, keyword):
                    found.append(old)
            if len(found) > max_events:
                raise BadRequest(
                    f"more than {max_events} events match; narrow the query with event_type, "
                    "user_id, timeStart or timeEnd"
                )
            cursor = page["next_cursor"]
            if cursor is None:
                shown = [[name, value] for name, value in request.query_params()]
                await audit.read(credential, "GET /event", {"query": shown, "results": len(found)})
                return Response.json(200, found)

    return [
        Route("GET", "/ping", ping, None, "legacy.ping", doc=_PING),
        Route("POST", "/login", login, None, "legacy.login", doc=_LOGIN),
        Route("GET", "/auth", auth, AUTHENTICATED, "legacy.auth", doc=_AUTH),
        Route("POST", "/event", post_event, EVENTS_WRITE, "legacy.event.create", doc=_POST_EVENT),
        Route("GET", "/event", get_events, EVENTS_READ, "legacy.event.query", doc=_GET_EVENTS),
    ]

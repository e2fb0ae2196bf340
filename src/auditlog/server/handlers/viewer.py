"""``/v1/viewer-tokens``: read-only, short-lived credentials bound to a filter (API.md §12)."""

from __future__ import annotations

from auditlog.model.credentials import ADMIN, EVENTS_READ, Credential
from auditlog.server.asgi import Request, Response
from auditlog.server.handlers.auth import NO_STORE
from auditlog.server.handlers.events import json_request
from auditlog.server.openapi import JSON, Operation, json_content, schema_ref
from auditlog.server.openapi.parameters import filter_schema, path_param
from auditlog.server.routing import Route
from auditlog.service.viewer import DEFAULT_TTL, MAX_TTL, ViewerTokens

#: Largest body of a viewer token's definition.
MAX_BODY = 64 * 1024

_TOKEN: JSON = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "description": "The token's id, to revoke it."},
        "filter": filter_schema(request=False),
        "created_at": {"type": "string", "format": "date-time"},
        "expires_at": {"type": "string", "format": "date-time"},
        "revoked_at": {"type": ["string", "null"], "format": "date-time"},
    },
    "required": ["id", "filter", "created_at", "expires_at"],
}
_SCHEMAS: dict[str, JSON] = {
    "ViewerToken": _TOKEN,
    "IssuedViewerToken": {
        "allOf": [
            schema_ref("ViewerToken"),
            {
                "type": "object",
                "properties": {
                    "token": {
                        "type": "string",
                        "description": "The credential (`Authorization: Bearer <token>`), shown "
                        "only in this answer.",
                    }
                },
                "required": ["token"],
            },
        ]
    },
    "ViewerTokenList": {
        "type": "object",
        "properties": {"tokens": {"type": "array", "items": schema_ref("ViewerToken")}},
        "required": ["tokens"],
    },
}
_BOUND = (
    " Its every query, export and live stream is ANDed with its filter; an event outside the "
    "filter is `404` by id; the first version's routes refuse it (`403`); it carries the scope "
    "`events:read` alone."
)
_CREATE = Operation(
    operation_id="createViewerToken",
    summary="Make a viewer token",
    description="A read-only credential of the caller's tenant, bound to `filter`, valid for "
    f"`ttl_seconds` (1-{MAX_TTL}, default {DEFAULT_TTL})." + _BOUND + " Recorded in the "
    "tenant's log (`auditlog.viewer_token.created`) before it is answered.",
    tag="auth",
    request_body={
        "required": True,
        "content": json_content(
            {
                "type": "object",
                "properties": {
                    "filter": filter_schema(request=True),
                    "ttl_seconds": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_TTL,
                        "default": DEFAULT_TTL,
                    },
                },
                "additionalProperties": False,
            }
        ),
    },
    responses={
        "201": {
            "description": "Made.",
            "content": json_content(schema_ref("IssuedViewerToken")),
        }
    },
    errors=(400, 403, 415, 422, 503),
    schemas=_SCHEMAS,
)
_LIST = Operation(
    operation_id="listViewerTokens",
    summary="The tenant's viewer tokens still valid",
    description="Every viewer token of the tenant that has neither expired nor been revoked, "
    "oldest first; never a token itself.",
    tag="auth",
    responses={
        "200": {
            "description": "The tokens.",
            "content": json_content(schema_ref("ViewerTokenList")),
        }
    },
    errors=(403, 503),
    schemas=_SCHEMAS,
)
_EXCHANGE = Operation(
    operation_id="exchangeViewerToken",
    summary="Exchange a viewer token for a new one",
    description="Answers a new viewer token with the same filter and expiry, and revokes the "
    "one sent (in `Authorization`): a link that carries a token works once. Recorded "
    "(`auditlog.viewer_token.exchanged`). Any other credential is `403`.",
    tag="auth",
    responses={
        "201": {
            "description": "The new token.",
            "content": json_content(schema_ref("IssuedViewerToken")),
        }
    },
    errors=(403, 503),
    schemas=_SCHEMAS,
)
_REVOKE = Operation(
    operation_id="revokeViewerToken",
    summary="Revoke a viewer token",
    description="The token is refused from the next request on, on every server. Recorded "
    "(`auditlog.viewer_token.revoked`). Revoking a revoked token changes nothing.",
    tag="auth",
    parameters=(path_param("id", "The token's id."),),
    responses={"204": {"description": "Revoked."}},
    errors=(403, 404, 503),
    schemas=_SCHEMAS,
)


def routes(viewer: ViewerTokens) -> list[Route]:
    async def create(request: Request, credential: Credential | None) -> Response:
        assert credential is not None
        body = await json_request(request, MAX_BODY, "a viewer token's definition")
        made = await viewer.create(credential, body)
        return Response.json(201, made, headers=NO_STORE)

    async def listing(request: Request, credential: Credential | None) -> Response:
        assert credential is not None
        return Response.json(200, {"tokens": await viewer.list_all(credential)})

    async def exchange(request: Request, credential: Credential | None) -> Response:
        assert credential is not None
        return Response.json(201, await viewer.exchange(credential), headers=NO_STORE)

    async def revoke(request: Request, credential: Credential | None) -> Response:
        assert credential is not None
        await viewer.revoke(credential, request.path_params["id"])
        return Response(204, b"")

    path = "/v1/viewer-tokens"
    return [
        Route("POST", path, create, ADMIN, "viewer.create", doc=_CREATE),
        Route("GET", path, listing, ADMIN, "viewer.list", doc=_LIST),
        Route("POST", path + "/exchange", exchange, EVENTS_READ, "viewer.exchange", doc=_EXCHANGE),
        Route("DELETE", path + "/{id}", revoke, ADMIN, "viewer.revoke", doc=_REVOKE),
    ]

"""``/v1/retention``: the caller's tenant's retention policy and legal hold (API.md §14)."""

from __future__ import annotations

from auditlog.model.credentials import ADMIN, Credential
from auditlog.server.asgi import Request, Response
from auditlog.server.handlers.events import json_request
from auditlog.server.openapi import JSON, Operation, json_content, schema_ref
from auditlog.server.routing import Route
from auditlog.service.retention import RetentionAdmin

#: Largest body of a retention policy: one short field.
MAX_BODY = 8192

_KEEP: JSON = {
    "type": ["string", "null"],
    "pattern": "^[0-9]{1,12}[smhd]$",
    "description": "How long events are kept after they were received: a whole number and a "
    "unit (`s`, `m`, `h`, `d`), as `400d` or `12h`, at most `36500d`; `null` keeps everything.",
    "examples": ["400d"],
}
_SCHEMAS: dict[str, JSON] = {
    "Retention": {
        "type": "object",
        "properties": {
            "tenant": {"type": "string"},
            "keep": _KEEP,
            "keep_seconds": {"type": ["integer", "null"]},
            "updated_at": {
                "type": ["string", "null"],
                "format": "date-time",
                "description": "When the policy was last set; `null` if it never was.",
            },
            "updated_by": {
                "type": ["string", "null"],
                "description": "Who set it: `cli:<user>` or a credential's principal.",
            },
            "hold": {
                "description": "The legal hold, while one is set: nothing of the tenant is "
                "pruned then. Set and released with `auditlog hold` only.",
                "oneOf": [
                    {"type": "null"},
                    {
                        "type": "object",
                        "properties": {
                            "reason": {"type": "string"},
                            "set_by": {"type": "string"},
                            "set_at": {"type": "string", "format": "date-time"},
                        },
                        "required": ["reason", "set_by", "set_at"],
                    },
                ],
            },
        },
        "required": ["tenant", "keep", "keep_seconds", "updated_at", "updated_by", "hold"],
    }
}
_PRUNING = (
    " Events older than the retention are pruned (by the service's schedule or `auditlog "
    "prune`) once an archive covers them and no legal hold is set."
)
_GET = Operation(
    operation_id="getRetention",
    summary="The tenant's retention policy and legal hold",
    description="The caller's tenant's retention (API.md §14) and its legal hold, if one is "
    "set. A tenant that never set a policy keeps everything (`keep` `null`)." + _PRUNING,
    tag="retention",
    responses={
        "200": {"description": "The policy.", "content": json_content(schema_ref("Retention"))}
    },
    errors=(403, 503),
    schemas=_SCHEMAS,
)
_PUT = Operation(
    operation_id="setRetention",
    summary="Set the tenant's retention policy",
    description="Replaces the caller's tenant's retention policy. Recorded in the tenant's "
    "log (`auditlog.retention.set`) before it is answered." + _PRUNING,
    tag="retention",
    request_body={
        "required": True,
        "content": json_content(
            {
                "type": "object",
                "properties": {"keep": _KEEP},
                "required": ["keep"],
                "additionalProperties": False,
            }
        ),
    },
    responses={"200": {"description": "Set.", "content": json_content(schema_ref("Retention"))}},
    errors=(400, 403, 415, 422, 503),
    schemas=_SCHEMAS,
)


def routes(retention: RetentionAdmin) -> list[Route]:
    async def show(request: Request, credential: Credential | None) -> Response:
        assert credential is not None
        return Response.json(200, await retention.get(credential))

    async def put(request: Request, credential: Credential | None) -> Response:
        assert credential is not None
        body = await json_request(request, MAX_BODY, "a retention policy")
        return Response.json(200, await retention.put(credential, body))

    path = "/v1/retention"
    return [
        Route("GET", path, show, ADMIN, "retention.get", doc=_GET),
        Route("PUT", path, put, ADMIN, "retention.set", doc=_PUT),
    ]

"""The witnesses' side of the API (API.md §13): ``/v1/log/witnessed``, ``/v1/log/witnesses``,
and an event's offline receipt ``/v1/events/{id}/receipt``."""

from __future__ import annotations

from auditlog.model.credentials import EVENTS_READ, LOG_READ, Credential
from auditlog.server.asgi import Request, Response
from auditlog.server.handlers.log import TEXT
from auditlog.server.openapi import JSON, Operation, json_content, schema_ref
from auditlog.server.routing import Route
from auditlog.service.witnessed import Witnessed

_NOTE: JSON = {"type": "string", "description": "A C2SP signed note, as signed."}
_SCHEMAS: dict[str, JSON] = {
    "Witnessed": {
        "type": "object",
        "description": "The tenant's newest checkpoint that a tenants-log checkpoint with the "
        "witnesses' quorum includes (API.md §13).",
        "properties": {
            "checkpoint": {**_NOTE, "description": "The tenant's checkpoint (signed note)."},
            "tenants_checkpoint": {
                **_NOTE,
                "description": "The tenants log's checkpoint, its note with the witnesses' "
                "cosignature lines (C2SP tlog-cosignature) after the log's signature.",
            },
            "leaf_index": {
                "type": "integer",
                "minimum": 0,
                "description": "The tenant checkpoint's leaf in the tenants log; the leaf is "
                "the body of its note (origin, size and root hash lines).",
            },
            "tenants_size": {"type": "integer", "minimum": 1},
            "inclusion_proof": {
                "type": "array",
                "items": {"type": "string", "contentEncoding": "base64"},
                "description": "The RFC 9162 inclusion proof of `leaf_index` in the tenants "
                "log's tree of `tenants_size` leaves.",
            },
        },
        "required": [
            "checkpoint",
            "tenants_checkpoint",
            "leaf_index",
            "tenants_size",
            "inclusion_proof",
        ],
        "additionalProperties": False,
    },
    "Witnesses": {
        "type": "object",
        "description": "The witnesses of the service's policy and where each stands.",
        "properties": {
            "tenants_origin": {"type": "string"},
            "tenants_vkey": {"type": "string"},
            "tenants_size": {
                "type": ["integer", "null"],
                "description": "The newest tenants-log checkpoint's size.",
            },
            "witnessed_size": {
                "type": ["integer", "null"],
                "description": "The largest tenants-log checkpoint with the quorum.",
            },
            "quorum": {
                "type": ["string", "null"],
                "description": "The policy's quorum, as its file writes it; `null` without "
                "witnesses.",
            },
            "witnesses": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "url": {"type": "string"},
                        "vkey": {"type": "string"},
                        "cosigned_size": {
                            "type": ["integer", "null"],
                            "description": "The size of the last checkpoint it cosigned.",
                        },
                        "last_error": {
                            "type": ["string", "null"],
                            "description": "The last push's failure or refusal; `null` after "
                            "a success.",
                        },
                        "refusals": {
                            "type": "integer",
                            "minimum": 0,
                            "description": "Checkpoints it refused: an alarm.",
                        },
                        "updated_at": {"type": ["string", "null"], "format": "date-time"},
                    },
                    "required": [
                        "name",
                        "url",
                        "vkey",
                        "cosigned_size",
                        "last_error",
                        "refusals",
                        "updated_at",
                    ],
                    "additionalProperties": False,
                },
            },
        },
        "required": [
            "tenants_origin",
            "tenants_vkey",
            "tenants_size",
            "witnessed_size",
            "quorum",
            "witnesses",
        ],
        "additionalProperties": False,
    },
}

_WITNESSED = Operation(
    operation_id="getWitnessed",
    summary="The tenant's newest checkpoint that the witnesses cosigned",
    description="The tenant's newest checkpoint that a tenants-log checkpoint with the "
    "quorum of the service's witness policy includes, that tenants checkpoint with the "
    "witnesses' cosignatures, and the inclusion proof of the tenant's checkpoint in it. "
    "What `auditlog verify --policy` checks. 404 when the service has no witnesses, or "
    "nothing of this tenant is witnessed yet (a new log: about a second after its first "
    "checkpoint).",
    tag="log",
    responses={
        "200": {
            "description": "The witnessed checkpoint.",
            "content": json_content(schema_ref("Witnessed")),
        }
    },
    errors=(401, 403, 404, 503),
    schemas=_SCHEMAS,
)

_WITNESSES = Operation(
    operation_id="getWitnesses",
    summary="The witnesses of the service and where each stands",
    description="Each witness of the service's policy: its URL and key, the size of the "
    "last tenants-log checkpoint it cosigned, its last error and how many checkpoints it "
    "refused. A refusal is an alarm (the log may have been forked or rolled back); it is "
    "also logged and counted in `auditlog_witness_refusals_total`.",
    tag="log",
    responses={
        "200": {"description": "The witnesses.", "content": json_content(schema_ref("Witnesses"))}
    },
    errors=(401, 403, 503),
    schemas=_SCHEMAS,
)

_RECEIPT = Operation(
    operation_id="getEventReceipt",
    summary="An offline receipt for the event: two C2SP tlog-proofs",
    description="The event's inclusion in its tenant's log and that checkpoint's inclusion "
    "in the witnessed tenants log, as two C2SP tlog-proof@v1 texts one after the other: "
    "the first's `extra` is the stored event, the second ends in the tenants checkpoint "
    "with the witnesses' cosignatures. `auditlog verify --receipt` checks it offline with "
    "a witness policy. 404 for an unknown event, and until a witnessed checkpoint covers it "
    "(about a second after it is written).",
    tag="events",
    parameters=(
        {
            "name": "id",
            "in": "path",
            "required": True,
            "description": "The event's id.",
            "schema": {"type": "string"},
        },
    ),
    responses={
        "200": {
            "description": "The receipt.",
            "content": {TEXT: {"schema": {"type": "string"}}},
        }
    },
    errors=(401, 403, 404, 503),
)


def routes(witnessed: Witnessed) -> list[Route]:
    async def get_witnessed(request: Request, credential: Credential | None) -> Response:
        assert credential is not None
        return Response.json(200, await witnessed.witnessed(credential))

    async def get_witnesses(request: Request, credential: Credential | None) -> Response:
        assert credential is not None
        return Response.json(200, await witnessed.witnesses(credential))

    async def receipt(request: Request, credential: Credential | None) -> Response:
        assert credential is not None
        text = await witnessed.receipt(credential, request.path_params["id"])
        return Response(200, text.encode("utf-8"), TEXT)

    return [
        Route("GET", "/v1/log/witnessed", get_witnessed, LOG_READ, "log.witnessed", doc=_WITNESSED),
        Route("GET", "/v1/log/witnesses", get_witnesses, LOG_READ, "log.witnesses", doc=_WITNESSES),
        Route(
            "GET",
            "/v1/events/{id}/receipt",
            receipt,
            EVENTS_READ,
            "events.receipt",
            doc=_RECEIPT,
        ),
    ]

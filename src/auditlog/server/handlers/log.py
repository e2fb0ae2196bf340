"""``/v1/log``: the tenant's checkpoint, inclusion and consistency proofs, public key, and pruned
prefix."""

from __future__ import annotations

from auditlog.model.credentials import LOG_READ, Credential
from auditlog.server.asgi import Request, Response
from auditlog.server.openapi import JSON, Operation, json_content, schema_ref
from auditlog.server.openapi.parameters import query_param
from auditlog.server.routing import Route
from auditlog.service.proofs import LogProofs

TEXT = "text/plain; charset=utf-8"


def wants_text(accept: str | None) -> bool:
    """Whether an ``Accept`` header prefers ``text/plain`` to JSON (the default).

    Media ranges are weighed by ``q``; on a tie, or when neither is named, JSON is answered.
    """
    if not accept:
        return False
    text_q = json_q = -1.0
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        media = media.lower()
        if media == "text/plain":
            text_q = max(text_q, q)
        elif media in ("application/json", "application/*", "*/*"):
            json_q = max(json_q, q)
    return text_q > 0 and text_q > json_q


# -- the documentation of the routes (OpenAPI) ------------------------------------------------


def _size_param(name: str, description: str, required: bool) -> JSON:
    return query_param(name, description, {"type": "integer", "minimum": 0}, required=required)


_CHECKPOINT = Operation(
    operation_id="getCheckpoint",
    summary="The latest signed checkpoint of the tenant's log",
    description="The latest checkpoint the integrator signed: it covers every event "
    "committed up to about `checkpoint_interval_ms` (200 ms) before it. JSON by default; "
    "with `Accept: text/plain`, the C2SP tlog-checkpoint signed note alone. A log without "
    "a checkpoint yet answers the checkpoint of the empty tree (size 0).",
    tag="log",
    responses={
        "200": {
            "description": "The checkpoint.",
            "content": {
                **json_content(schema_ref("Checkpoint")),
                TEXT: {"schema": {"type": "string"}},
            },
        }
    },
    errors=(401, 403, 503),
)

_INCLUSION = Operation(
    operation_id="getInclusionProof",
    summary="Proof that an event is in the tree of a given size",
    description="The RFC 9162 inclusion proof of the event with `seq` in the tree of the "
    "first `tree_size` events (default: the latest checkpoint's size). Any size up to the "
    "latest checkpoint's may be asked. `seq >= tree_size` or a malformed parameter is 400; "
    "a size (or, without `tree_size`, a seq) beyond the latest checkpoint is 404 until a "
    "checkpoint covers it.",
    tag="log",
    parameters=(
        _size_param(
            "seq", "The event's seq (its leaf index); less than `tree_size`, else 400.", True
        ),
        _size_param(
            "tree_size",
            "The tree size; default: the latest checkpoint's. Beyond the latest "
            "checkpoint's size: 404.",
            False,
        ),
    ),
    responses={
        "200": {"description": "The proof.", "content": json_content(schema_ref("InclusionProof"))}
    },
    errors=(400, 401, 403, 404, 503),
)

_CONSISTENCY = Operation(
    operation_id="getConsistencyProof",
    summary="Proof that a larger tree extends a smaller one",
    description="The RFC 9162 consistency proof from the tree of `first` events to the "
    "tree of `second` events (default: the latest checkpoint's size): what an auditor who "
    "kept an earlier checkpoint asks, to know the log was only appended to since. "
    "`first > second` or a malformed parameter is 400; a size beyond the latest "
    "checkpoint is 404.",
    tag="log",
    parameters=(
        _size_param("first", "The smaller tree size: at most `second`, else 400.", True),
        _size_param(
            "second",
            "The larger tree size; default: the latest checkpoint's. Less than `first`: "
            "400; beyond the latest checkpoint's size: 404.",
            False,
        ),
    ),
    responses={
        "200": {
            "description": "The proof.",
            "content": json_content(schema_ref("ConsistencyProof")),
        }
    },
    errors=(400, 401, 403, 404, 503),
)

_PUBLIC_KEY = Operation(
    operation_id="getPublicKey",
    summary="The key that signs the tenant's checkpoints",
    description="The Ed25519 public key that signs checkpoints, under the tenant's key "
    "name (its origin). JSON by default; with `Accept: text/plain`, the verifier key line "
    "(`vkey`). Pin it out of band: a key fetched from the log proves nothing about the log.",
    tag="log",
    responses={
        "200": {
            "description": "The key.",
            "content": {
                **json_content(schema_ref("PublicKey")),
                TEXT: {"schema": {"type": "string"}},
            },
        }
    },
    errors=(401, 403),
)


_HASH: JSON = {"type": "string", "contentEncoding": "base64"}
_PRUNED_SCHEMAS: dict[str, JSON] = {
    "PrunedPrefix": {
        "type": "object",
        "description": "Where the tenant's log begins after retention pruned its start "
        "(API.md §14), and what stands for the events pruned.",
        "properties": {
            "horizon": {
                "type": "integer",
                "minimum": 0,
                "description": "The first kept seq: every event with a smaller seq is pruned "
                "(0: none is).",
            },
            "prefix": {
                "type": "array",
                "items": _HASH,
                "description": "The hashes of the perfect subtrees of the first `horizon` "
                "leaves, left to right (one for each one bit of `horizon`, largest first): "
                "with the kept events they give the root of every checkpoint larger than "
                "`horizon`, which proves them. Empty when nothing is pruned.",
            },
            "archives": {
                "type": "array",
                "description": "Every archive recorded of the tenant's log, by first seq.",
                "items": {
                    "type": "object",
                    "properties": {
                        "first_seq": {"type": "integer", "minimum": 0},
                        "end_seq": {
                            "type": "integer",
                            "minimum": 0,
                            "description": "One past the last seq the archive holds.",
                        },
                        "sha256": {
                            "type": "string",
                            "pattern": "^[0-9a-f]{64}$",
                            "description": "The SHA-256 of the archive file's bytes, in hex.",
                        },
                        "created_at": {"type": "string", "format": "date-time"},
                    },
                    "required": ["first_seq", "end_seq", "sha256", "created_at"],
                    "additionalProperties": False,
                },
            },
        },
        "required": ["horizon", "prefix", "archives"],
        "additionalProperties": False,
    }
}

_PRUNED = Operation(
    operation_id="getPrunedPrefix",
    summary="The pruned start of the tenant's log, and the hashes that stand for it",
    description="Retention prunes a tenant's events from the start of its log (API.md §14); "
    "the tree's hashes are kept. The answer gives the first kept seq (`horizon`), the "
    "hashes of the perfect subtrees of the pruned prefix, which an auditor starts the "
    "recomputed tree from, and the archives recorded (without their locations). A log "
    "with nothing pruned answers `horizon` 0 and no hashes.",
    tag="log",
    responses={
        "200": {
            "description": "The pruned prefix.",
            "content": json_content(schema_ref("PrunedPrefix")),
        }
    },
    errors=(401, 403, 503),
    schemas=_PRUNED_SCHEMAS,
)


def routes(log: LogProofs) -> list[Route]:
    async def checkpoint(request: Request, credential: Credential | None) -> Response:
        assert credential is not None
        latest = await log.checkpoint(credential)
        if wants_text(request.headers.get("accept")):
            return Response(200, latest.note.encode("utf-8"), TEXT)
        return Response.json(200, log.checkpoint_json(credential.tenant, latest))

    async def inclusion(request: Request, credential: Credential | None) -> Response:
        assert credential is not None
        return Response.json(200, await log.inclusion(credential, request.query_params()))

    async def consistency(request: Request, credential: Credential | None) -> Response:
        assert credential is not None
        return Response.json(200, await log.consistency(credential, request.query_params()))

    async def public_key(request: Request, credential: Credential | None) -> Response:
        assert credential is not None
        key = await log.public_key(credential)
        if wants_text(request.headers.get("accept")):
            return Response(200, (key["vkey"] + "\n").encode("ascii"), TEXT)
        return Response.json(200, key)

    async def pruned(request: Request, credential: Credential | None) -> Response:
        assert credential is not None
        return Response.json(200, await log.pruned(credential))

    return [
        Route("GET", "/v1/log/checkpoint", checkpoint, LOG_READ, "log.checkpoint", doc=_CHECKPOINT),
        Route(
            "GET", "/v1/log/proof/inclusion", inclusion, LOG_READ, "log.inclusion", doc=_INCLUSION
        ),
        Route(
            "GET",
            "/v1/log/proof/consistency",
            consistency,
            LOG_READ,
            "log.consistency",
            doc=_CONSISTENCY,
        ),
        Route("GET", "/v1/log/public-key", public_key, LOG_READ, "log.public_key", doc=_PUBLIC_KEY),
        Route("GET", "/v1/log/pruned", pruned, LOG_READ, "log.pruned", doc=_PRUNED),
    ]

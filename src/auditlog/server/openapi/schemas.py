"""The shared component schemas: the event as sent and as stored, and what the routes answer.

The schemas of envelope fields (``ID_FIELD``, ``TYPE_FIELD``, ...) are here for the schemas
of a handler's own that describe the same fields; a schema that only one handler module uses
may be given with its operations instead (``Operation.schemas``), as the first version's are.
"""

from __future__ import annotations

from auditlog.model.eventinput import OUTCOMES, input_schemas
from auditlog.server.openapi.operation import JSON, schema_ref

TIME_INPUT_TEXT = (
    "An RFC 3339 time (any UTC offset; stored in UTC with microseconds, "
    "`2026-11-27T02:27:53.123456Z`), or Unix seconds (integer or fraction)."
)

#: ``EventInput`` and ``Party``, from the types that decode and check events as they arrive.
INPUT_SCHEMAS: dict[str, JSON] = input_schemas("#/components/schemas/{name}")
_TEXT: JSON = {
    k: v for k, v in INPUT_SCHEMAS["Party"]["properties"]["id"].items() if k != "description"
}

ID_FIELD: JSON = {
    "type": "string",
    "pattern": INPUT_SCHEMAS["EventInput"]["properties"]["id"]["pattern"],
    "description": "The producer's unique id (1-128 of `A-Z a-z 0-9 . _ : -`); "
    "makes retries idempotent.",
}
TYPE_FIELD: JSON = {
    **_TEXT,
    "description": "What happened, open-ended (`account.created`, `invoice.billed`); "
    "no control characters.",
}
SOURCE_FIELD: JSON = {**_TEXT, "description": "The system that produced the event."}
OUTCOME_FIELD: JSON = {"type": "string", "enum": list(OUTCOMES)}
DATA_FIELD: JSON = {
    "type": "object",
    "description": INPUT_SCHEMAS["EventInput"]["properties"]["data"]["description"].removesuffix(
        " Absent: `{}`."
    ),
}
STORED_TIME_FIELD: JSON = {
    "type": "string",
    "format": "date-time",
    "description": "RFC 3339 in UTC with microseconds, e.g. `2026-11-27T02:27:53.123456Z`.",
    "examples": ["2026-11-27T02:27:53.123456Z"],
}

SCHEMAS: dict[str, JSON] = {
    **INPUT_SCHEMAS,
    "EventInput": {
        **INPUT_SCHEMAS["EventInput"],
        "examples": [
            {
                "id": "inv-2026-0042",
                "type": "invoice.billed",
                "time": "2026-11-27T02:27:53.123456Z",
                "actor": {"id": "alice", "type": "user"},
                "subject": {"id": "inv-2026-0042", "type": "invoice"},
                "outcome": "success",
                "data": {"amount": 120, "currency": "EUR"},
            }
        ],
    },
    "Event": {
        "type": "object",
        "description": "A stored event: the envelope with its defaults filled in, `data`, and "
        "the fields the server sets. These bytes (keys sorted, no insignificant whitespace) "
        "are what the tenant's Merkle tree hashes.",
        "properties": {
            "id": ID_FIELD,
            "type": TYPE_FIELD,
            "time": {**STORED_TIME_FIELD, "description": "When it happened (UTC)."},
            "actor": schema_ref("Party"),
            "subject": schema_ref("Party"),
            "source": SOURCE_FIELD,
            "outcome": OUTCOME_FIELD,
            "data": DATA_FIELD,
            "tenant": {"type": "string", "description": "The log the event belongs to."},
            "seq": {
                "type": "integer",
                "minimum": 0,
                "description": "0-based position in the tenant's log (the Merkle leaf index), "
                "gap-free, assigned at commit.",
            },
            "received_at": {**STORED_TIME_FIELD, "description": "When the server committed it."},
        },
        "required": [
            "id",
            "type",
            "time",
            "actor",
            "source",
            "data",
            "tenant",
            "seq",
            "received_at",
        ],
        "additionalProperties": False,
    },
    "BatchAnswer": {
        "type": "object",
        "description": "The id and seq of every event of a batch, in request order. An event "
        "already held (an idempotent retry) has its original seq.",
        "properties": {
            "events": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"id": ID_FIELD, "seq": {"type": "integer", "minimum": 0}},
                    "required": ["id", "seq"],
                    "additionalProperties": False,
                },
            }
        },
        "required": ["events"],
        "additionalProperties": False,
    },
    "EventPage": {
        "type": "object",
        "description": "One page of a query, in `seq` order.",
        "properties": {
            "events": {"type": "array", "items": schema_ref("Event")},
            "next_cursor": {
                "type": ["string", "null"],
                "description": "Pass as `cursor` with the same query for the next page; "
                "`null` on the last page.",
            },
        },
        "required": ["events", "next_cursor"],
        "additionalProperties": False,
    },
    "Whoami": {
        "type": "object",
        "properties": {
            "principal": {"type": "string", "description": "Who the caller is."},
            "tenant": {"type": "string"},
            "scopes": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Sorted; `admin` grants every scope.",
            },
            "expires_at": {
                "type": ["string", "null"],
                "format": "date-time",
                "description": "When the credential expires; `null` for API keys.",
            },
            "filter": {
                "type": "object",
                "description": "A viewer token's bound filter (the §3 parameters ANDed into "
                "its every read); only for viewer tokens.",
                "additionalProperties": {
                    "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]
                },
            },
            "credential": {
                "type": "object",
                "properties": {
                    "kind": {"type": "string", "enum": ["api_key", "jwt", "viewer"]},
                    "id": {"type": "string"},
                    "name": {"type": "string"},
                },
                "required": ["kind", "id", "name"],
                "additionalProperties": False,
            },
        },
        "required": ["principal", "tenant", "scopes", "expires_at", "credential"],
        "additionalProperties": False,
    },
    "Login": {
        "type": "object",
        "description": "A person's username and password, as made by `auditlog users add`.",
        "properties": {
            "username": {"type": "string"},
            "password": {"type": "string", "format": "password"},
        },
        "required": ["username", "password"],
        "additionalProperties": False,
    },
    "Token": {
        "type": "object",
        "description": "A login token: a JWT signed with EdDSA (Ed25519). Send it as "
        "`Authorization: Bearer <access_token>` until it expires.",
        "properties": {
            "access_token": {"type": "string"},
            "token_type": {"type": "string", "enum": ["Bearer"]},
            "expires_in": {
                "type": "integer",
                "minimum": 1,
                "description": "Seconds the token stays valid (the setting `token_lifetime`, "
                "300 by default).",
            },
        },
        "required": ["access_token", "token_type", "expires_in"],
        "additionalProperties": False,
    },
    "Checkpoint": {
        "type": "object",
        "description": "A signed checkpoint of the tenant's log: the C2SP tlog-checkpoint "
        "`note` (origin, tree size, root hash, signed with Ed25519 as a C2SP signed note), its "
        "parts, and when it was signed. `timestamp` is not part of the signed text.",
        "properties": {
            "origin": {
                "type": "string",
                "description": "The log's origin, `<log_origin>/<tenant>`: the note's first "
                "line and the signing key's name.",
            },
            "tree_size": {"type": "integer", "minimum": 0},
            "root_hash": {
                "type": "string",
                "contentEncoding": "base64",
                "description": "The RFC 9162 root hash of the first `tree_size` events.",
            },
            "timestamp": {
                **STORED_TIME_FIELD,
                "description": "When the checkpoint was signed (UTC); not covered by the "
                "signature.",
            },
            "signature": {
                "type": "string",
                "contentEncoding": "base64",
                "description": "The 64-byte Ed25519 signature of the note's text.",
            },
            "key_id": {
                "type": "string",
                "pattern": "^[0-9a-f]{8}$",
                "description": "The signed-note key ID of the signing key (hex): the first 4 "
                "bytes of SHA-256(key name || 0x0A || 0x01 || public key).",
            },
            "note": {"type": "string", "description": "The signed note, as `text/plain` gives it."},
        },
        "required": [
            "origin",
            "tree_size",
            "root_hash",
            "timestamp",
            "signature",
            "key_id",
            "note",
        ],
        "additionalProperties": False,
    },
    "InclusionProof": {
        "type": "object",
        "description": "RFC 9162 §2.1.3: the hashes from the leaf `leaf_index` up to the root of "
        "the tree of `tree_size` events, lowest first.",
        "properties": {
            "leaf_index": {"type": "integer", "minimum": 0, "description": "The event's seq."},
            "tree_size": {"type": "integer", "minimum": 1},
            "leaf_hash": {
                "type": "string",
                "contentEncoding": "base64",
                "description": "SHA-256(0x00 || canonical bytes of the stored event).",
            },
            "hashes": {"type": "array", "items": {"type": "string", "contentEncoding": "base64"}},
        },
        "required": ["leaf_index", "tree_size", "leaf_hash", "hashes"],
        "additionalProperties": False,
    },
    "ConsistencyProof": {
        "type": "object",
        "description": "RFC 9162 §2.1.4: the hashes that show the tree of `second` events "
        "extends the tree of `first` events. Empty when `first` is 0 or equals `second`.",
        "properties": {
            "first": {"type": "integer", "minimum": 0},
            "second": {"type": "integer", "minimum": 0},
            "hashes": {"type": "array", "items": {"type": "string", "contentEncoding": "base64"}},
        },
        "required": ["first", "second", "hashes"],
        "additionalProperties": False,
    },
    "PublicKey": {
        "type": "object",
        "description": "The Ed25519 key that signs the tenant's checkpoints.",
        "properties": {
            "origin": {"type": "string"},
            "key_name": {"type": "string", "description": "Equal to `origin`."},
            "key_id": {"type": "string", "pattern": "^[0-9a-f]{8}$"},
            "algorithm": {"type": "string", "enum": ["Ed25519"]},
            "public_key": {
                "type": "string",
                "contentEncoding": "base64",
                "description": "The 32 bytes of the public key.",
            },
            "vkey": {
                "type": "string",
                "description": "The verifier key in the signed-note text form "
                "`<name>+<hex key ID>+<base64(0x01 || public key)>`, as `text/plain` gives it; "
                "what `auditlog verify --public-key` takes.",
            },
            "tenants_origin": {
                "type": "string",
                "description": "The origin (and key name) of the tenants log (API.md §13): "
                "`log_origin`.",
            },
            "tenants_vkey": {
                "type": "string",
                "description": "The verifier key of the tenants log, signed by the same key "
                "under the name `tenants_origin`: the `log` line of a witness policy.",
            },
        },
        "required": [
            "origin",
            "key_name",
            "key_id",
            "algorithm",
            "public_key",
            "vkey",
            "tenants_origin",
            "tenants_vkey",
        ],
        "additionalProperties": False,
    },
    "CoveredEvent": {
        "type": "object",
        "description": "One stored event with `?wait=checkpoint`: the event, the first "
        "checkpoint that covers it and its inclusion proof in that checkpoint's tree; both "
        "`null` if none came within `checkpoint_wait_ms` (the event is stored all the same).",
        "properties": {
            "event": schema_ref("Event"),
            "checkpoint": {"oneOf": [schema_ref("Checkpoint"), {"type": "null"}]},
            "inclusion_proof": {"oneOf": [schema_ref("InclusionProof"), {"type": "null"}]},
        },
        "required": ["event", "checkpoint", "inclusion_proof"],
        "additionalProperties": False,
    },
    "CoveredBatch": {
        "type": "object",
        "description": "A stored batch with `?wait=checkpoint`: the id and seq of each event, "
        "the first checkpoint that covers them all, and each event's inclusion proof in request "
        "order; `null` if no checkpoint came within `checkpoint_wait_ms`.",
        "properties": {
            "events": {"$ref": "#/components/schemas/BatchAnswer/properties/events"},
            "checkpoint": {"oneOf": [schema_ref("Checkpoint"), {"type": "null"}]},
            "inclusion_proofs": {
                "oneOf": [
                    {"type": "array", "items": schema_ref("InclusionProof")},
                    {"type": "null"},
                ]
            },
        },
        "required": ["events", "checkpoint", "inclusion_proofs"],
        "additionalProperties": False,
    },
    "Status": {
        "type": "object",
        "properties": {"status": {"type": "string"}},
        "required": ["status"],
        "additionalProperties": False,
    },
}

"""The OpenAPI 3.1 document of every route.

Routes are data (``auditlog.server.routing``); what a client needs to know about each one
beyond its method, pattern and scope lives here, in ``OPERATIONS``, keyed by
``(method, pattern)``. ``openapi_document`` refuses (``UndocumentedRoute``) to describe a route
that has no entry, so a new route cannot ship undocumented: the tests build the document of
the whole application.

Every error answer is an RFC 9457 problem (``application/problem+json``); each operation lists
the statuses it can really give, as references to the shared ``components.responses``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from auditlog import __version__
from auditlog.model.event import MAX_DATA_DEPTH, MAX_TEXT, OUTCOMES
from auditlog.model.fields import OPS
from auditlog.model.ids import EVENT_ID
from auditlog.model.query import DEFAULT_LIMIT, MAX_LIMIT
from auditlog.server.handlers.health import PROMETHEUS_TEXT
from auditlog.server.routing import Route

OPENAPI_VERSION = "3.1.0"
SECURITY_SCHEME = "bearer"
PROBLEM_JSON = "application/problem+json"

JSON = dict[str, Any]


class UndocumentedRoute(LookupError):
    """A route has no entry in ``OPERATIONS``: document it before it ships."""


def _ref(kind: str, name: str) -> JSON:
    return {"$ref": f"#/components/{kind}/{name}"}


def _schema(name: str) -> JSON:
    return _ref("schemas", name)


def _json(schema: JSON) -> JSON:
    return {"application/json": {"schema": schema}}


@dataclass(frozen=True, slots=True)
class Operation:
    """What the document says about one route, beyond method, pattern and scope.

    ``responses`` are the answers that are not errors, by status; ``errors`` are the problem
    statuses the route can give (each a shared response in ``components.responses``).
    """

    operation_id: str
    summary: str
    description: str
    tag: str
    responses: dict[str, JSON]
    errors: tuple[int, ...] = ()
    parameters: tuple[JSON, ...] = ()
    request_body: JSON | None = None


# -- the shared pieces ------------------------------------------------------------------------

_TIME_INPUT_TEXT = (
    "An RFC 3339 time (any UTC offset; stored in UTC with microseconds, "
    "`2026-11-27T02:27:53.123456Z`), or Unix seconds (integer or fraction)."
)
_FILTER_NAME_PATTERN = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*(\[(" + "|".join(OPS) + r")\])?$"


def _party(stored: bool) -> JSON:
    obj: JSON = {
        "type": "object",
        "properties": {
            "id": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT},
            "type": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT},
            "name": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT},
        },
        "required": ["id"],
        "additionalProperties": False,
    }
    if stored:
        return obj
    return {
        "oneOf": [
            obj,
            {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_TEXT,
                "description": 'Short for `{"id": <string>}`.',
            },
        ]
    }


_EVENT_ID: JSON = {
    "type": "string",
    "pattern": "^" + EVENT_ID.pattern + "$",
    "description": "The producer's unique id (1-128 of `A-Z a-z 0-9 . _ : -`); "
    "makes retries idempotent.",
}
_TYPE: JSON = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_TEXT,
    "description": "What happened, open-ended (`account.created`, `invoice.billed`); "
    "no control characters.",
}
_SOURCE: JSON = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_TEXT,
    "description": "The system that produced the event.",
}
_OUTCOME: JSON = {"type": "string", "enum": list(OUTCOMES)}
_DATA: JSON = {
    "type": "object",
    "description": f"The event-specific fields: any JSON object, nested at most {MAX_DATA_DEPTH} "
    "levels deep.",
}
_STORED_TIME: JSON = {
    "type": "string",
    "format": "date-time",
    "description": "RFC 3339 in UTC with microseconds, e.g. `2026-11-27T02:27:53.123456Z`.",
    "examples": ["2026-11-27T02:27:53.123456Z"],
}

SCHEMAS: dict[str, JSON] = {
    "EventInput": {
        "type": "object",
        "description": "One audit event as a producer sends it. Any other top-level field is "
        "refused (422) by name. Serialised, a stored event is at most 64 KiB (configurable).",
        "properties": {
            "id": {
                **_EVENT_ID,
                "description": _EVENT_ID["description"]
                + " Absent: the server makes a time-ordered ULID.",
            },
            "type": _TYPE,
            "time": {
                "oneOf": [{"type": "string", "format": "date-time"}, {"type": "number"}],
                "description": "When it happened. " + _TIME_INPUT_TEXT + " Absent: the time "
                "it was received.",
            },
            "actor": {
                **_party(stored=False),
                "description": 'Who caused it. Absent: `{"id": <principal>, "type": '
                '"credential"}` of the credential that sends it.',
            },
            "subject": {**_party(stored=False), "description": "What the event is about."},
            "source": {**_SOURCE, "description": "Absent: the name of the credential."},
            "outcome": _OUTCOME,
            "data": {**_DATA, "description": _DATA["description"] + " Absent: `{}`."},
        },
        "required": ["type"],
        "additionalProperties": False,
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
            "id": _EVENT_ID,
            "type": _TYPE,
            "time": {**_STORED_TIME, "description": "When it happened (UTC)."},
            "actor": _party(stored=True),
            "subject": _party(stored=True),
            "source": _SOURCE,
            "outcome": _OUTCOME,
            "data": _DATA,
            "tenant": {"type": "string", "description": "The log the event belongs to."},
            "seq": {
                "type": "integer",
                "minimum": 0,
                "description": "0-based position in the tenant's log (the Merkle leaf index), "
                "gap-free, assigned at commit.",
            },
            "received_at": {**_STORED_TIME, "description": "When the server committed it."},
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
                    "properties": {"id": _EVENT_ID, "seq": {"type": "integer", "minimum": 0}},
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
            "events": {"type": "array", "items": _schema("Event")},
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
            "credential": {
                "type": "object",
                "properties": {
                    "kind": {"type": "string", "enum": ["api_key", "jwt"]},
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
            "event_type": _TYPE,
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
            "_id": {**_EVENT_ID, "description": "The event's `id`."},
            "event_type": {**_TYPE, "description": "The event's `type`."},
            "user_id": {"type": "string", "description": "The event's `actor.id`."},
            "timestamp": {"type": "number", "description": "The event's `time`, Unix seconds."},
            "event_details": {**_DATA, "description": "The event's `data`."},
        },
        "required": ["_id", "event_type", "user_id", "timestamp", "event_details"],
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
                **_STORED_TIME,
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
        },
        "required": ["origin", "key_name", "key_id", "algorithm", "public_key", "vkey"],
        "additionalProperties": False,
    },
    "CoveredEvent": {
        "type": "object",
        "description": "One stored event with `?wait=checkpoint`: the event, the first "
        "checkpoint that covers it and its inclusion proof in that checkpoint's tree; both "
        "`null` if none came within `checkpoint_wait_ms` (the event is stored all the same).",
        "properties": {
            "event": _schema("Event"),
            "checkpoint": {"oneOf": [_schema("Checkpoint"), {"type": "null"}]},
            "inclusion_proof": {"oneOf": [_schema("InclusionProof"), {"type": "null"}]},
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
            "checkpoint": {"oneOf": [_schema("Checkpoint"), {"type": "null"}]},
            "inclusion_proofs": {
                "oneOf": [
                    {"type": "array", "items": _schema("InclusionProof")},
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
    "Problem": {
        "type": "object",
        "description": "An RFC 9457 problem document.",
        "properties": {
            "type": {
                "type": "string",
                "format": "uri",
                "description": "A stable URI per kind of problem.",
            },
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {
                "type": "string",
                "description": "What is wrong, naming the bad value or parameter.",
            },
            "errors": {
                "type": "array",
                "description": "Every problem found, where there is more than one thing to say.",
                "items": {
                    "type": "object",
                    "properties": {
                        "index": {
                            "type": "integer",
                            "minimum": 0,
                            "description": "The event's position in a batch.",
                        },
                        "field": {"type": "string"},
                        "message": {"type": "string"},
                    },
                    "required": ["field", "message"],
                    "additionalProperties": False,
                },
            },
        },
        "required": ["type", "title", "status", "detail"],
    },
}

HEADERS: dict[str, JSON] = {
    "Location": {
        "description": "The path of the stored event (when one event was sent).",
        "schema": {"type": "string"},
    },
    "RetryAfter": {
        "description": "Seconds to wait before retrying.",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
    },
    "WWWAuthenticate": {
        "description": "The scheme to authenticate with: `Bearer`.",
        "required": True,
        "schema": {"type": "string"},
    },
    "Allow": {
        "description": "The methods the path accepts.",
        "required": True,
        "schema": {"type": "string"},
    },
    "CacheControl": {
        "description": "`no-store`: an answer holding a token must not be cached.",
        "required": True,
        "schema": {"type": "string"},
    },
}


def _problem(description: str, headers: dict[str, str] | None = None) -> JSON:
    out: JSON = {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": _schema("Problem")}},
    }
    if headers:
        out["headers"] = {name: _ref("headers", ref) for name, ref in headers.items()}
    return out


#: The shared problem answers, by status; operations refer to them by status.
PROBLEMS: dict[int, tuple[str, JSON]] = {
    400: ("BadRequest", _problem("The request or one of its parameters cannot be parsed.")),
    401: (
        "Unauthorized",
        _problem(
            "Missing, malformed, expired, revoked or forged credential.",
            {"WWW-Authenticate": "WWWAuthenticate"},
        ),
    ),
    403: ("Forbidden", _problem("The credential is valid but lacks the route's scope.")),
    404: (
        "NotFound",
        _problem(
            "No such event (in the caller's tenant), or a tree size beyond the latest checkpoint."
        ),
    ),
    405: (
        "MethodNotAllowed",
        _problem("The path exists but not with this method.", {"Allow": "Allow"}),
    ),
    409: (
        "Conflict",
        _problem("An event's id is already held by the tenant with different content."),
    ),
    413: (
        "PayloadTooLarge",
        _problem("The body, or an event in it, is larger than the configured limit."),
    ),
    415: ("UnsupportedMediaType", _problem("The Content-Type is not one this route reads.")),
    422: (
        "InvalidEvent",
        _problem(
            "Valid JSON that is not a valid event or batch; `errors` names every problem "
            "(with its `index` in a batch)."
        ),
    ),
    429: (
        "RateLimited",
        _problem(
            "Too many failed logins for this username or from this address, or the credential "
            "is over its write or read rate; retry after `Retry-After` seconds.",
            {"Retry-After": "RetryAfter"},
        ),
    ),
    503: (
        "Unavailable",
        _problem(
            "The service cannot keep up, storage is unreachable, or it is shutting down. "
            "Nothing of the request was stored; retry after `Retry-After` seconds.",
            {"Retry-After": "RetryAfter"},
        ),
    ),
}


# -- the operations ---------------------------------------------------------------------------


def _query_param(name: str, description: str, schema: JSON, **more: Any) -> JSON:
    return {"name": name, "in": "query", "description": description, "schema": schema, **more}


def _equality(name: str, what: str) -> JSON:
    return _query_param(
        name,
        f"Equality on {what}; repeated, any of the values (OR).",
        {"type": "array", "items": {"type": "string"}},
        style="form",
        explode=True,
    )


_QUERY_PARAMETERS: tuple[JSON, ...] = (
    _equality("type", "`type`"),
    _equality("source", "`source`"),
    _query_param(
        "outcome",
        "Equality on `outcome`; repeated, any of the values (OR).",
        {"type": "array", "items": _OUTCOME},
        style="form",
        explode=True,
    ),
    _equality("actor", "the actor's `id`"),
    _equality("actor.type", "the actor's `type`"),
    _equality("subject", "the subject's `id`"),
    _equality("subject.type", "the subject's `type`"),
    _query_param(
        "since",
        "Events whose `time` is at or after this (inclusive). " + _TIME_INPUT_TEXT,
        {"type": "string"},
        examples={"rfc3339": {"value": "2026-11-27T00:00:00Z"}, "unix": {"value": "1795737600"}},
    ),
    _query_param(
        "until",
        "Events whose `time` is before this (exclusive). " + _TIME_INPUT_TEXT,
        {"type": "string"},
    ),
    _query_param(
        "q",
        "Full text: every word must occur somewhere in the event (type, actor, subject, "
        "source, outcome, any string or number in `data`), case- and accent-insensitive; "
        "`word*` matches words that start with `word`.",
        {"type": "string"},
        examples={"words": {"value": "login fail*"}},
    ),
    _query_param(
        "order",
        "By `seq`: `desc` newest first, or `asc`.",
        {"type": "string", "enum": ["desc", "asc"], "default": "desc"},
    ),
    _query_param(
        "limit",
        "Events per page.",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
    ),
    _query_param(
        "cursor",
        "The `next_cursor` of the previous page. The same query continues exactly where it "
        "stopped, with no event skipped or repeated even while new events arrive; a cursor "
        "of another query is refused (400).",
        {"type": "string"},
    ),
    {
        # OpenAPI cannot name parameters that are made up by the client. A free-form object
        # with style=form, explode=true means "each property is a query parameter of its
        # own": the name "filters" itself never appears in a URL.
        "name": "filters",
        "in": "query",
        "description": (
            "Conditions on any field, one query parameter each (the name `filters` itself is "
            "never sent). `PATH=value` is equality; `PATH[op]=value` applies `op`, one of "
            + ", ".join(f"`{op}`" for op in OPS)
            + ". A PATH is dot-separated segments of `A-Z a-z 0-9 _ -` starting at a field "
            "of the stored event: `data.location.city=Seattle`, `data.amount[lt]=150`, "
            "`time[gte]=2026-11-27T00:00:00Z`, `data.tags[in]=red,blue`, "
            "`subject.name[prefix]=Ali`, `outcome[exists]=false`. Anything else is 400 naming "
            "the parameter. `in` takes a comma-separated list; `exists` takes `true` or "
            "`false`; `ne` matches events that have the field with another value. A value "
            "that reads as a number compares as a number with numeric fields (`1e2` equals "
            "`100`); `true`, `false` and `null` also match the JSON literals; everything else "
            "compares as a string. Where a path meets a JSON array, the condition holds when "
            "any element satisfies it. An equality repeated on one path means any of the "
            "values (OR); different parameters combine with AND."
        ),
        "schema": {
            "type": "object",
            "propertyNames": {"pattern": _FILTER_NAME_PATTERN},
            "additionalProperties": {"type": "string"},
        },
        "style": "form",
        "explode": True,
    },
)

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
                    _schema("EventInput"),
                    {"type": "array", "minItems": 1, "items": _schema("EventInput")},
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
        _schema("Event"),
        _schema("BatchAnswer"),
        _schema("CoveredEvent"),
        _schema("CoveredBatch"),
    ],
    "description": "For one event, the stored event; for a batch, the id and seq of each. "
    "With `?wait=checkpoint`, wrapped with the covering checkpoint and inclusion proofs.",
}
_TEXT = "text/plain; charset=utf-8"


def _size_param(name: str, description: str, required: bool) -> JSON:
    return _query_param(name, description, {"type": "integer", "minimum": 0}, required=required)


OPERATIONS: dict[tuple[str, str], Operation] = {
    ("POST", "/v1/events"): Operation(
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
            _query_param(
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
                "headers": {"Location": _ref("headers", "Location")},
                "content": _json(_WRITE_ANSWER),
            },
            "200": {
                "description": "Every event was already stored with the same content (an "
                "idempotent retry): the original stored event, or for a batch the original "
                "seq of each. Nothing new was stored.",
                "headers": {"Location": _ref("headers", "Location")},
                "content": _json(_WRITE_ANSWER),
            },
        },
        errors=(400, 401, 403, 409, 413, 415, 422, 503),
    ),
    ("GET", "/v1/events"): Operation(
        operation_id="queryEvents",
        summary="Query the tenant's events",
        description=(
            "One page of the events of the caller's tenant that satisfy every parameter, in "
            "`seq` order, and the cursor of the next page. Every malformed parameter (unknown "
            "operator, bad time, bad cursor, limit out of range, bad field path) is 400 with a "
            "message that names it."
        ),
        tag="events",
        parameters=_QUERY_PARAMETERS,
        responses={
            "200": {"description": "One page.", "content": _json(_schema("EventPage"))},
        },
        errors=(400, 401, 403, 503),
    ),
    ("GET", "/v1/events/{id}"): Operation(
        operation_id="getEvent",
        summary="Get one event by id",
        description="The stored event of the caller's tenant with this id. Another tenant's "
        "events are never found (404).",
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
        responses={"200": {"description": "The event.", "content": _json(_schema("Event"))}},
        errors=(401, 403, 404, 503),
    ),
    ("GET", "/v1/log/checkpoint"): Operation(
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
                    **_json(_schema("Checkpoint")),
                    _TEXT: {"schema": {"type": "string"}},
                },
            }
        },
        errors=(401, 403, 503),
    ),
    ("GET", "/v1/log/proof/inclusion"): Operation(
        operation_id="getInclusionProof",
        summary="Proof that an event is in the tree of a given size",
        description="The RFC 9162 inclusion proof of the event with `seq` in the tree of the "
        "first `tree_size` events (default: the latest checkpoint's size). Any size up to the "
        "latest checkpoint's may be asked. `seq >= tree_size` or a malformed parameter is 400; "
        "a size (or, without `tree_size`, a seq) beyond the latest checkpoint is 404 until a "
        "checkpoint covers it.",
        tag="log",
        parameters=(
            _size_param("seq", "The event's seq (its leaf index).", True),
            _size_param("tree_size", "The tree size; default: the latest checkpoint's.", False),
        ),
        responses={
            "200": {"description": "The proof.", "content": _json(_schema("InclusionProof"))}
        },
        errors=(400, 401, 403, 404, 503),
    ),
    ("GET", "/v1/log/proof/consistency"): Operation(
        operation_id="getConsistencyProof",
        summary="Proof that a larger tree extends a smaller one",
        description="The RFC 9162 consistency proof from the tree of `first` events to the "
        "tree of `second` events (default: the latest checkpoint's size): what an auditor who "
        "kept an earlier checkpoint asks, to know the log was only appended to since. "
        "`first > second` or a malformed parameter is 400; a size beyond the latest "
        "checkpoint is 404.",
        tag="log",
        parameters=(
            _size_param("first", "The smaller tree size.", True),
            _size_param("second", "The larger tree size; default: the latest checkpoint's.", False),
        ),
        responses={
            "200": {"description": "The proof.", "content": _json(_schema("ConsistencyProof"))}
        },
        errors=(400, 401, 403, 404, 503),
    ),
    ("GET", "/v1/log/public-key"): Operation(
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
                    **_json(_schema("PublicKey")),
                    _TEXT: {"schema": {"type": "string"}},
                },
            }
        },
        errors=(401, 403),
    ),
    ("GET", "/v1/auth/whoami"): Operation(
        operation_id="whoami",
        summary="Who the caller is",
        description="The principal, tenant, scopes and expiry of the credential sent; any "
        "valid credential may ask, whatever its scopes.",
        tag="auth",
        responses={"200": {"description": "The caller.", "content": _json(_schema("Whoami"))}},
        errors=(401, 503),
    ),
    ("POST", "/v1/auth/token"): Operation(
        operation_id="login",
        summary="Log in for a token",
        description="A person's username and password (made by `auditlog users add`) for a "
        "short-lived login token (a JWT signed with Ed25519) carrying the user's tenant and "
        "scopes. Needs no credential. A wrong password and an unknown username get the same "
        "401, in the same time. Failed logins are limited per username and per client "
        "address (429 with `Retry-After`); past the limit even the right password is refused "
        "until `Retry-After` has passed.",
        tag="auth",
        request_body={
            "required": True,
            "content": _json(_schema("Login")),
        },
        responses={
            "200": {
                "description": "The token.",
                "headers": {"Cache-Control": _ref("headers", "CacheControl")},
                "content": _json(_schema("Token")),
            }
        },
        errors=(400, 401, 413, 415, 429, 503),
    ),
    ("GET", "/ping"): Operation(
        operation_id="legacyPing",
        summary="The first version's liveness check",
        description='Answers the JSON string `"pong!"`. Needs no credential. Kept for '
        "clients of the first version; see `/healthz`.",
        tag="legacy",
        responses={
            "200": {
                "description": 'The JSON string `"pong!"`.',
                "content": _json({"type": "string", "enum": ["pong!"]}),
            }
        },
    ),
    ("POST", "/login"): Operation(
        operation_id="legacyLogin",
        summary="The first version's login",
        description="As `POST /v1/auth/token` (the same users, limits and token, with the "
        "user's scopes), answered in the first version's form `{\"token\": ...}`. Fields "
        "other than `username` and `password` are ignored. Needs no credential.",
        tag="legacy",
        request_body={"required": True, "content": _json(_schema("LegacyLogin"))},
        responses={
            "200": {
                "description": "The token.",
                "headers": {"Cache-Control": _ref("headers", "CacheControl")},
                "content": _json(_schema("LegacyToken")),
            }
        },
        errors=(400, 401, 413, 415, 429, 503),
    ),
    ("GET", "/auth"): Operation(
        operation_id="legacyAuth",
        summary="The first version's token check",
        description="Answers the text `JWT is valid` when the bearer token is a valid "
        "credential (a login token or an API key); 401 otherwise. Accepts "
        "`Authorization: Bearer: <token>` as the first version did.",
        tag="legacy",
        responses={
            "200": {
                "description": "The text `JWT is valid`.",
                "content": {"text/plain; charset=utf-8": {"schema": {"type": "string"}}},
            }
        },
        errors=(401, 503),
    ),
    ("POST", "/event"): Operation(
        operation_id="legacyCreateEvent",
        summary="The first version's event submission",
        description="Stores one event through the same durable write as `POST /v1/events`: "
        'the answer `{"status": 200, "message": "Event submitted"}` is sent only after the '
        "event is committed. A body that does not fit the first version's schema, or an "
        "event ours refuses, is 400 with the first version's field names.",
        tag="legacy",
        request_body={"required": True, "content": _json(_schema("LegacyEventInput"))},
        responses={
            "200": {
                "description": "Stored.",
                "content": _json(_schema("LegacySubmitted")),
            }
        },
        errors=(400, 401, 403, 413, 415, 503),
    ),
    ("GET", "/event"): Operation(
        operation_id="legacyQueryEvents",
        summary="The first version's event query",
        description="Every event of the caller's tenant matching all the parameters given, "
        "oldest first, in the first version's form, as one JSON list (no pages). More than "
        "`legacy_max_events` (10,000) matching events is 400: narrow the query. Other "
        "parameters are ignored, and a repeated one counts once, as in the first version.",
        tag="legacy",
        parameters=(
            _query_param("_id", "The event's `id`.", {"type": "string"}),
            _query_param("event_type", "Equality on `type`.", {"type": "string"}),
            _query_param("user_id", "Equality on the actor's `id`.", {"type": "string"}),
            _query_param(
                "timeStart",
                "Events whose `time` is at or after this, in Unix seconds (inclusive).",
                {"type": "string"},
                examples={"unix": {"value": "1686250800"}},
            ),
            _query_param(
                "timeEnd",
                "Events whose `time` is at or before this, in Unix seconds (inclusive).",
                {"type": "string"},
            ),
            _query_param(
                "keyword",
                "Events where some string (the id, type, actor id, or any string in `data`) "
                "contains this text, case-sensitively.",
                {"type": "string"},
            ),
        ),
        responses={
            "200": {
                "description": "The matching events.",
                "content": _json({"type": "array", "items": _schema("LegacyEvent")}),
            }
        },
        errors=(400, 401, 403, 503),
    ),
    ("GET", "/healthz"): Operation(
        operation_id="liveness",
        summary="Liveness",
        description="200 while the process serves requests. Needs no credential.",
        tag="operations",
        responses={
            "200": {
                "description": 'Alive: `{"status": "ok"}`.',
                "content": _json(_schema("Status")),
            }
        },
    ),
    ("GET", "/readyz"): Operation(
        operation_id="readiness",
        summary="Readiness",
        description="200 when storage answers, 503 when it does not. Needs no credential.",
        tag="operations",
        responses={
            "200": {
                "description": 'Ready: `{"status": "ready"}`.',
                "content": _json(_schema("Status")),
            }
        },
        errors=(503,),
    ),
    ("GET", "/metrics"): Operation(
        operation_id="metrics",
        summary="Prometheus metrics",
        description="Requests by route pattern, method and status; request latency; events "
        "ingested; commit batch sizes and durations; ingest queue depth; writes refused. "
        "Needs no credential.",
        tag="operations",
        responses={
            "200": {
                "description": "The Prometheus text exposition format.",
                "content": {PROMETHEUS_TEXT: {"schema": {"type": "string"}}},
            }
        },
    ),
    ("GET", "/openapi.json"): Operation(
        operation_id="openapi",
        summary="This document",
        description="The OpenAPI 3.1 document of every route. Needs no credential.",
        tag="operations",
        responses={
            "200": {
                "description": "The OpenAPI document.",
                "content": _json({"type": "object"}),
            }
        },
    ),
}

TAGS: tuple[JSON, ...] = (
    {"name": "events", "description": "Write, get and query audit events."},
    {"name": "log", "description": "The tamper-evident log: checkpoints, proofs, its key."},
    {"name": "auth", "description": "Credentials."},
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
    "and reads of the log as events (types `auditlog.*`) in the tenant's own log."
)


def _operation(route: Route) -> JSON:
    doc = OPERATIONS.get((route.method, route.pattern))
    if doc is None:
        raise UndocumentedRoute(
            f"route {route.method} {route.pattern} ({route.name}) has no entry in "
            "auditlog.server.openapi.OPERATIONS"
        )
    responses: JSON = dict(doc.responses)
    for status in doc.errors:
        responses[str(status)] = _ref("responses", PROBLEMS[status][0])
    if route.authenticated and 401 not in doc.errors:
        responses["401"] = _ref("responses", PROBLEMS[401][0])
    if route.authenticated:  # every credential has its request rates (RequestLimiter)
        responses["429"] = _ref("responses", PROBLEMS[429][0])
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


def openapi_value(routes: Sequence[Route]) -> JSON:
    """The OpenAPI document describing ``routes``, as a JSON value.

    Raises ``UndocumentedRoute`` for a route without an entry in ``OPERATIONS``.
    """
    paths: dict[str, JSON] = {}
    for route in routes:
        paths.setdefault(route.pattern, {})[route.method.lower()] = _operation(route)
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
            "schemas": SCHEMAS,
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

    Raises ``UndocumentedRoute`` for a route without an entry in ``OPERATIONS``.
    """
    return orjson.dumps(openapi_value(routes))

"""The event as a producer sends it, as types: one decode-and-validate pass, and its schema.

``EventInput`` states the rules of API.md §1 that a type can state: which fields exist, their
JSON types, the lengths of the text fields, the characters of ids and text, the outcomes.
``msgspec`` decodes a request body straight into these types, checking all of that in one pass
in C, which is most of the work of validating a well-formed event. The rest (times, nesting
depth, size, defaults) is checked by ``model.event`` for both ways in.

The decode is the fast way in, not the judge. When it refuses a body for any reason, the body
is read again by ``orjson`` and checked field by field by ``model.event.validate_event``, which
names every problem with the messages of API.md §1; so the decoder never has to produce an
error message, and a body it accepts is one that ``validate_event`` accepts with the same
result (``tests/model/test_eventinput.py`` holds the two to that).

The same types give the ``EventInput`` schema of the OpenAPI document (``input_schemas``), so
what the document allows and what the service accepts have one source.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

import msgspec
from msgspec import UNSET, UnsetType

from auditlog.model.ids import EVENT_ID
from auditlog.model.times import END_SECONDS, MIN_SECONDS, RFC3339_PATTERN

MAX_TEXT = 200
MAX_DATA_DEPTH = 32
#: Characters of Unicode category Cc (C0, DEL, C1), which no text field may hold.
CONTROL = r"\x00-\x1f\x7f-\x9f"
#: Python's ``$`` also matches before a final newline, so the patterns the decoder checks are
#: anchored with ``\A`` and ``\Z``; the schema spells them ``^`` and ``$``.
ID_PATTERN = r"\A" + EVENT_ID.pattern + r"\Z"

#: A text field. Its ``pattern`` is stated in the schema but checked by ``model.event`` (one
#: search over all of an event's text fields at once), not by the decoder, which would run a
#: regular expression per string: a third of the decoding time.
Text = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=MAX_TEXT,
        description=f"1-{MAX_TEXT} characters, no control characters.",
        extra_json_schema={"pattern": f"^[^{CONTROL}]*$"},
    ),
]
EventId = Annotated[
    str,
    msgspec.Meta(
        pattern=ID_PATTERN,
        description="The producer's unique id (1-128 of `A-Z a-z 0-9 . _ : -`); "
        "makes retries idempotent. Absent: the server makes a time-ordered ULID.",
    ),
]
Time = (
    Annotated[str, msgspec.Meta(pattern=r"\A" + RFC3339_PATTERN + r"\Z")]
    | Annotated[int, msgspec.Meta(ge=MIN_SECONDS, lt=END_SECONDS)]
    | Annotated[float, msgspec.Meta(ge=MIN_SECONDS, lt=END_SECONDS)]
)
Outcome = Literal["success", "failure", "unknown"]
OUTCOMES: tuple[str, ...] = get_args(Outcome)


class Party(msgspec.Struct, forbid_unknown_fields=True):
    """Who or what: an id, with an optional type and name."""

    id: Text
    type: Text | UnsetType = UNSET
    name: Text | UnsetType = UNSET


class EventInput(msgspec.Struct, forbid_unknown_fields=True):
    """One audit event as a producer sends it.

    Any other top-level field is refused (422) by name. Serialised, a stored event is at most
    64 KiB (configurable)."""

    type: Annotated[
        Text,
        msgspec.Meta(
            description="What happened, open-ended (`account.created`, `invoice.billed`)."
        ),
    ]
    id: EventId | UnsetType = UNSET
    time: (
        Annotated[
            Time,
            msgspec.Meta(
                description="When it happened. An RFC 3339 time (any UTC offset; stored in UTC with "
                "microseconds, `2026-11-27T02:27:53.123456Z`), or Unix seconds (integer or "
                "fraction), in the years 0001-9999. Absent: the time it was received."
            ),
        ]
        | UnsetType
    ) = UNSET
    actor: (
        Annotated[
            Text | Party,
            msgspec.Meta(
                description='Who caused it; a string is short for `{"id": <string>}`. Absent: '
                '`{"id": <principal>, "type": "credential"}` of the credential that sends it.'
            ),
        ]
        | UnsetType
    ) = UNSET
    subject: (
        Annotated[
            Text | Party,
            msgspec.Meta(
                description='What the event is about; a string is short for `{"id": <string>}`.'
            ),
        ]
        | UnsetType
    ) = UNSET
    source: (
        Annotated[
            Text,
            msgspec.Meta(description="The system that produced it. Absent: the credential's name."),
        ]
        | UnsetType
    ) = UNSET
    outcome: Outcome | UnsetType = UNSET
    data: (
        Annotated[
            dict[str, Any],
            msgspec.Meta(
                description="The event-specific fields: any JSON object, nested at most "
                f"{MAX_DATA_DEPTH} levels deep. Absent: `{{}}`."
            ),
        ]
        | UnsetType
    ) = UNSET


ONE = msgspec.json.Decoder(EventInput)
ONE_OR_MANY = msgspec.json.Decoder(EventInput | list[EventInput])
#: Everything the decoders refuse, whatever the reason.
Refused = (msgspec.DecodeError, msgspec.ValidationError)


def party(value: str | Party) -> dict[str, str]:
    """``actor`` or ``subject`` as stored: an object."""
    if type(value) is str:
        return {"id": value}
    assert isinstance(value, Party)
    out = {"id": value.id}
    if value.type is not UNSET:
        out["type"] = value.type
    if value.name is not UNSET:
        out["name"] = value.name
    return out


def _ecma(schema: Any) -> Any:
    """``schema`` with Python's regex anchors spelled as JSON Schema (ECMA 262) spells them."""
    if isinstance(schema, dict):
        out = {k: _ecma(v) for k, v in schema.items()}
        pattern = out.get("pattern")
        if isinstance(pattern, str) and pattern.startswith(r"\A"):
            out["pattern"] = "^" + pattern.removeprefix(r"\A").removesuffix(r"\Z") + "$"
        return out
    if isinstance(schema, list):
        return [_ecma(v) for v in schema]
    return schema


def input_schemas(ref_template: str) -> dict[str, Any]:
    """JSON Schemas of ``EventInput`` and ``Party``, by name, referring to each other with
    ``ref_template`` (``"#/components/schemas/{name}"``)."""
    _, components = msgspec.json.schema_components([EventInput], ref_template=ref_template)
    schemas: dict[str, Any] = _ecma(components)
    return schemas

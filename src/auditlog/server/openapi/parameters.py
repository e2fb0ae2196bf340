"""The shared query parameters: the filters of API.md §3, and how a query is paged.

A route that selects events as ``GET /v1/events`` does takes ``FILTERS`` (every §3 filter,
the free-form field conditions last); ``QUERY_PARAMETERS`` adds ``PAGING`` for the paged
query itself.
"""

from __future__ import annotations

from typing import Any

from auditlog.model.fields import OPS
from auditlog.model.query import DEFAULT_LIMIT, MAX_LIMIT, ROOTS
from auditlog.model.times import RFC3339_PATTERN, UNIX_SECONDS_PATTERN
from auditlog.server.openapi.operation import JSON
from auditlog.server.openapi.schemas import OUTCOME_FIELD, TIME_INPUT_TEXT

#: A time parameter: RFC 3339 or Unix seconds (``times.parse_time_param``). The years
#: 0001-9999 and real calendar dates are checked when it is read, not by the pattern.
TIME_PARAM: JSON = {
    "type": "string",
    "pattern": f"^(?:{UNIX_SECONDS_PATTERN}|{RFC3339_PATTERN})$",
}

#: The name of a field condition (``query.parse_path``): a path from a field of the stored
#: event (``actor`` and ``subject`` hold only id, type and name, ``data`` anything, the rest
#: nothing), and an operator in brackets.
_PATH = "|".join(
    [
        r"(?:actor|subject)(?:\.(?:id|type|name))?",
        r"data(?:\.[A-Za-z0-9_-]+)*",
        *sorted(ROOTS - {"actor", "subject", "data"}),
    ]
)
FIELD_NAME_PATTERN = rf"^(?:{_PATH})(?:\[(?:{'|'.join(OPS)})\])?$"
#: A parameter of a filter object: a field condition, or one of the named time and text filters.
_FILTER_NAME_PATTERN = rf"^(?:(?:{_PATH})(?:\[(?:{'|'.join(OPS)})\])?|since|until|q)$"


def query_param(name: str, description: str, schema: JSON, **more: Any) -> JSON:
    """A parameter in the query string; ``more`` are its other fields (``required``, ...)."""
    return {"name": name, "in": "query", "description": description, "schema": schema, **more}


def _equality(name: str, what: str) -> JSON:
    return query_param(
        name,
        f"Equality on {what}; repeated, any of the values (OR).",
        {"type": "array", "items": {"type": "string"}},
        style="form",
        explode=True,
    )


#: The filters of §3 that have a name of their own.
NAMED_FILTERS: tuple[JSON, ...] = (
    _equality("type", "`type`"),
    _equality("source", "`source`"),
    query_param(
        "outcome",
        "Equality on `outcome`; repeated, any of the values (OR).",
        {"type": "array", "items": OUTCOME_FIELD},
        style="form",
        explode=True,
    ),
    _equality("actor", "the actor's `id`"),
    _equality("actor.type", "the actor's `type`"),
    _equality("subject", "the subject's `id`"),
    _equality("subject.type", "the subject's `type`"),
    query_param(
        "since",
        "Events whose `time` is at or after this (inclusive). " + TIME_INPUT_TEXT,
        TIME_PARAM,
        examples={"rfc3339": {"value": "2026-11-27T00:00:00Z"}, "unix": {"value": "1795737600"}},
    ),
    query_param(
        "until",
        "Events whose `time` is before this (exclusive). " + TIME_INPUT_TEXT,
        TIME_PARAM,
    ),
    query_param(
        "q",
        "Full text: every word must occur somewhere in the event (type, actor, subject, "
        "source, outcome, any string or number in `data`), case- and accent-insensitive; "
        "`word*` matches words that start with `word`. A value with no word (letters, "
        "digits) is refused (400).",
        {"type": "string", "minLength": 1},
        examples={"words": {"value": "login fail*"}},
    ),
)

#: How a query is paged: its order, page size and where the page starts.
PAGING: tuple[JSON, ...] = (
    query_param(
        "order",
        "By `seq`: `desc` newest first, or `asc`.",
        {"type": "string", "enum": ["desc", "asc"], "default": "desc"},
    ),
    query_param(
        "limit",
        "Events per page.",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
    ),
    query_param(
        "cursor",
        "The `next_cursor` of the previous page. The same query continues exactly where it "
        "stopped, with no event skipped or repeated even while new events arrive; a cursor "
        "of another query is refused (400).",
        {"type": "string"},
    ),
)

#: Conditions on any field (`PATH=value`, `PATH[op]=value`), as one free-form parameter.
FIELD_CONDITIONS: JSON = {
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
        "propertyNames": {"pattern": FIELD_NAME_PATTERN},
        "additionalProperties": {"type": "string"},
    },
    "style": "form",
    "explode": True,
}

_FILTER_VALUE: JSON = {"type": ["string", "number", "boolean", "null"]}


def filter_schema(request: bool) -> JSON:
    """The filters of §3 as a JSON object, as log streams and viewer tokens keep them
    (``selection.filter_pairs``); in a request (``request``) ``null`` stands for none."""
    return {
        "type": ["object", "null"] if request else "object",
        "description": 'The filters of `GET /v1/events` as an object: `{"type": ["a", '
        '"b"], "data.amount[gt]": 100}`; a list repeats its parameter. Not `cursor`, `limit`, '
        "`order`, `after_seq`, `before_seq`. The values are read as in a query: a time "
        "filter needs a time, and so on (422 otherwise)."
        + (" `null`: no filter." if request else ""),
        "propertyNames": {"pattern": _FILTER_NAME_PATTERN},
        "additionalProperties": {
            "anyOf": [
                _FILTER_VALUE,
                {"type": "array", "minItems": 1, "items": _FILTER_VALUE},
            ]
        },
    }


#: Every filter of §3: what a route that selects events takes.
FILTERS: tuple[JSON, ...] = (*NAMED_FILTERS, FIELD_CONDITIONS)
#: The parameters of the paged query ``GET /v1/events``, in the order the document lists them.
QUERY_PARAMETERS: tuple[JSON, ...] = (*NAMED_FILTERS, *PAGING, FIELD_CONDITIONS)


def path_param(name: str, description: str) -> JSON:
    """The ``{name}`` segment of a route's pattern (a string; every path parameter is required)."""
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string"},
    }

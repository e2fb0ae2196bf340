"""What an export, a live stream or a log stream reads: §3's filters and a position in the log.

``GET /v1/events`` pages with ``cursor``, ``limit`` and ``order``; the routes that read the log
from a position onwards take the same filters but ``after_seq`` instead (and the export
``before_seq``), always in ascending ``seq``. ``parse_selection`` splits their parameters: the
route's own ones by name, the paging parameters refused by name, the rest to ``parse_query``.

A log stream keeps its filter as a JSON object of the same parameters (``filter_pairs``), so
one definition of each parameter serves every route.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from auditlog.errors import BadRequest, FieldError, InvalidBody
from auditlog.model.query import Query, parse_query

#: Parameters of ``GET /v1/events`` that make no sense when reading onwards from a position.
PAGING = ("cursor", "limit", "order")
#: Largest seq a position may name (a signed 64-bit integer in every store).
MAX_SEQ = 2**63 - 1


def parse_seq(name: str, raw: str) -> int:
    """A seq parameter: a non-negative integer; 400 naming ``name`` otherwise."""
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19 or int(raw) > MAX_SEQ:
        shown = raw if len(raw) <= 40 else raw[:40] + "..."
        raise BadRequest(f"parameter {name!r}: {shown!r} is not a seq (an integer 0-{MAX_SEQ})")
    return int(raw)


def parse_selection(
    pairs: Sequence[tuple[str, str]], own: Iterable[str]
) -> tuple[Query, dict[str, str]]:
    """The query of §3's filters among ``pairs`` (in ascending order) and the values of the
    route's ``own`` parameters, each given at most once.

    ``after_seq`` and ``before_seq``, when among ``own``, are checked and applied to the query.
    """
    names = set(own)
    values: dict[str, str] = {}
    rest: list[tuple[str, str]] = []
    for name, value in pairs:
        if name in PAGING:
            raise BadRequest(
                f"parameter {name!r} does not apply here: this route reads every match in "
                "ascending seq; resume with after_seq"
            )
        if name in names:
            if name in values:
                raise BadRequest(f"parameter {name!r} is given more than once; give it once")
            values[name] = value
        else:
            rest.append((name, value))
    query, _ = parse_query(rest)
    query = dataclasses.replace(query, order="asc")
    if "after_seq" in values:
        query = dataclasses.replace(query, after_seq=parse_seq("after_seq", values["after_seq"]))
    if "before_seq" in values:
        query = dataclasses.replace(query, before_seq=parse_seq("before_seq", values["before_seq"]))
    return query, values


def _text(value: Any, field: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return orjson.dumps(value).decode()
    raise InvalidBody(
        f"{field}: a filter value is a string, number, boolean or null, or a list of them",
        (FieldError(field, "expected a string, number, boolean or null, or a list of them"),),
    )


def filter_pairs(value: object) -> list[tuple[str, str]]:
    """A stream's ``filter`` object (``{"type": ["a", "b"], "data.amount[gt]": 100}``) as the
    parameters it stands for; 422 when it is not one. A list repeats its parameter."""
    if value is None:
        return []
    if not isinstance(value, dict):
        raise InvalidBody(
            "filter: expected an object of §3 query parameters",
            (FieldError("filter", "expected an object of query parameters"),),
        )
    pairs: list[tuple[str, str]] = []
    for name, item in value.items():
        field = f"filter.{name}"
        if name in PAGING or name in ("after_seq", "before_seq"):
            raise InvalidBody(
                f"{field}: {name} does not apply to a stream's filter",
                (FieldError(field, "not a filter parameter"),),
            )
        items = item if isinstance(item, list) else [item]
        if not items:
            raise InvalidBody(f"{field}: an empty list", (FieldError(field, "an empty list"),))
        pairs += [(name, _text(one, field)) for one in items]
    return pairs


def parse_filter(value: object) -> tuple[Query, list[tuple[str, str]]]:
    """A stream's filter object as a query (ascending) and its parameters; 422 naming the
    parameter when one is not valid."""
    pairs = filter_pairs(value)
    try:
        query, _ = parse_query(pairs)
    except BadRequest as exc:
        raise InvalidBody(f"filter: {exc.detail}", (FieldError("filter", exc.detail),)) from None
    return dataclasses.replace(query, order="asc"), pairs


def filter_object(pairs: Sequence[tuple[str, str]]) -> dict[str, str | list[str]]:
    """Parameters as a filter object: a parameter given once is a string, repeated a list."""
    out: dict[str, str | list[str]] = {}
    for name, value in pairs:
        current = out.get(name)
        if current is None:
            out[name] = value
        elif isinstance(current, list):
            current.append(value)
        else:
            out[name] = [current, value]
    return out

"""Query parameters (API.md §3) to a query syntax tree.

``parse_query`` is the only reader of the parameters of ``GET /v1/events``. It validates every
parameter and field path before anything reaches a store, and raises ``BadRequest`` with a
message that names the parameter. The resulting ``Query`` is a plain value; each store compiles
it (the SQL backends to SQL with bound parameters, the memory store to a predicate).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, cast

from auditlog.errors import BadRequest
from auditlog.model import times
from auditlog.model.fields import OPS, Op, Path, Value
from auditlog.model.text import words

Order = Literal["asc", "desc"]

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_CONDITIONS = 64
MAX_IN_VALUES = 256
MAX_TEXT_WORDS = 32
MAX_VALUE_CHARS = 4096

_SEGMENT = re.compile(r"[A-Za-z0-9_-]+", re.ASCII)
_PARAM = re.compile(r"(?P<path>[^\[\]]*)(?:\[(?P<op>[^\[\]]*)\])?", re.ASCII | re.DOTALL)

#: Top-level fields of a stored event, the roots a field path may start from.
ROOTS = frozenset(
    {"id", "type", "time", "actor", "subject", "source", "outcome", "data"}
    | {"tenant", "seq", "received_at"}
)
#: Shorthand parameters: ``actor`` and ``subject`` match the ``id``.
ALIASES: dict[str, Path] = {"actor": ("actor", "id"), "subject": ("subject", "id")}
#: Paths whose values are times: query values are read as times and normalised.
TIME_PATHS: frozenset[Path] = frozenset({("time",), ("received_at",)})
#: Paths whose values are integers.
NUMBER_PATHS: frozenset[Path] = frozenset({("seq",)})
RESERVED = frozenset({"since", "until", "q", "order", "limit", "cursor"})


@dataclass(frozen=True, slots=True)
class Condition:
    """One condition on a field: ``path`` ``op`` ``values`` (several values for ``in``)."""

    path: Path
    op: Op
    values: tuple[Value, ...]

    @property
    def dotted(self) -> str:
        return ".".join(self.path)


@dataclass(frozen=True, slots=True)
class TextTerm:
    """One word of a full-text search; ``prefix`` for ``word*``."""

    word: str
    prefix: bool


@dataclass(frozen=True, slots=True)
class Query:
    """A whole query: every condition, the time range and the words must hold (AND).

    ``after_seq`` is the position the cursor carries: the page starts after it in ``order``.
    ``before_seq`` bounds the events considered to those with a smaller seq, whatever the
    order: an export or a live stream fixes the end of what it reads with it.
    """

    conditions: tuple[Condition, ...] = ()
    since_us: int | None = None
    until_us: int | None = None
    text: tuple[TextTerm, ...] = ()
    order: Order = "desc"
    limit: int = DEFAULT_LIMIT
    after_seq: int | None = None
    before_seq: int | None = None

    def fingerprint(self) -> str:
        """What a cursor is bound to: everything but ``limit`` and the position."""
        parts = [self.order, str(self.since_us), str(self.until_us)]
        parts += sorted(f"{t.word}{'*' if t.prefix else ''}" for t in self.text)
        # Order-independent: type=a&type=b and type=b&type=a are the same query.
        conditions = sorted(
            f"{'.'.join(c.path)}[{c.op}]=" + "\x1f".join(sorted(v.raw for v in c.values))
            for c in self.conditions
        )
        parts += conditions
        return hashlib.sha256("\x1e".join(parts).encode()).hexdigest()[:16]


def above_horizon(query: Query, horizon: int) -> Query:
    """``query`` restricted to the seqs from ``horizon`` on (a pruned log's first kept seq):
    newest first, a condition ``seq >= horizon``; oldest first, a start there too."""
    if horizon <= 0:
        return query
    kept = Condition(("seq",), "gte", (Value.of(str(horizon)),))
    start = query.after_seq
    if query.order == "asc" and (start is None or start < horizon - 1):
        start = horizon - 1
    return dataclasses.replace(query, conditions=(*query.conditions, kept), after_seq=start)


def parse_path(name: str, param: str) -> Path:
    """A dot-separated field path, validated; ``param`` names the parameter in errors."""
    if name in ALIASES:
        return ALIASES[name]
    segments = tuple(name.split("."))
    for segment in segments:
        if not _SEGMENT.fullmatch(segment):
            raise BadRequest(
                f"parameter {param!r}: {name!r} is not a field path; a path is dot-separated "
                "segments of A-Z a-z 0-9 _ -"
            )
    if segments[0] not in ROOTS:
        raise BadRequest(
            f"unknown parameter {param!r}: a field path starts with one of "
            + ", ".join(sorted(ROOTS))
        )
    if segments[0] in ("actor", "subject") and (
        len(segments) > 2 or (len(segments) == 2 and segments[1] not in ("id", "type", "name"))
    ):
        raise BadRequest(f"parameter {param!r}: {segments[0]} has only id, type and name")
    if segments[0] not in ("actor", "subject", "data") and len(segments) > 1:
        raise BadRequest(f"parameter {param!r}: {segments[0]} has no fields inside it")
    return segments


def _value(raw: str, path: Path, param: str) -> Value:
    if len(raw) > MAX_VALUE_CHARS:
        raise BadRequest(f"parameter {param!r}: value is longer than {MAX_VALUE_CHARS} chars")
    if path in TIME_PATHS:
        try:
            return Value(times.format_us(times.parse_time_param(raw)), None)
        except times.TimeFormatError as exc:
            raise BadRequest(f"parameter {param!r}: {exc}") from None
    return Value.of(raw)


def _condition(path: Path, op: Op, raw: str, param: str) -> Condition:
    if path in TIME_PATHS and op == "prefix":
        raise BadRequest(
            f"parameter {param!r}: prefix does not apply to times; use gte and lt, or since/until"
        )
    if op == "exists":
        if raw not in ("true", "false"):
            raise BadRequest(f"parameter {param!r}: exists takes true or false, not {raw!r}")
        return Condition(path, op, (Value(raw, None),))
    if op == "in":
        items = raw.split(",")
        if len(items) > MAX_IN_VALUES:
            raise BadRequest(f"parameter {param!r}: more than {MAX_IN_VALUES} values for in")
        return Condition(path, op, tuple(_value(item, path, param) for item in items))
    return Condition(path, op, (_value(raw, path, param),))


def _time_param(name: str, raw: str) -> int:
    try:
        return times.parse_time_param(raw)
    except times.TimeFormatError as exc:
        raise BadRequest(f"parameter {name!r}: {exc}") from None


def parse_text(raw: str) -> tuple[TextTerm, ...]:
    """``q``: words separated by spaces, each optionally ending in ``*`` for a prefix."""
    terms: list[TextTerm] = []
    for chunk in raw.split():
        prefix = chunk.endswith("*")
        found = list(words(chunk.rstrip("*")))
        for i, word in enumerate(found):
            terms.append(TextTerm(word, prefix and i == len(found) - 1))
    if not terms:
        raise BadRequest(f"parameter 'q': {raw!r} holds no word to search for")
    if len(terms) > MAX_TEXT_WORDS:
        raise BadRequest(f"parameter 'q': more than {MAX_TEXT_WORDS} words")
    return tuple(dict.fromkeys(terms))


def _single(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise BadRequest(f"parameter {name!r} is given {len(values)} times; give it once")
    return values[0]


def parse_query(pairs: Sequence[tuple[str, str]]) -> tuple[Query, str | None]:
    """The query of ``GET /v1/events`` from its parameters, and the cursor text if any.

    Repeating an equality (``type=a&type=b``, or ``[eq]``/``[in]`` on one path) means OR;
    every other repeated condition, and different parameters, combine with AND.
    """
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name, []).append(value)

    limit = DEFAULT_LIMIT
    raw_limit = _single(grouped, "limit")
    if raw_limit is not None:
        if not raw_limit.isascii() or not raw_limit.isdigit():
            raise BadRequest(f"parameter 'limit': {raw_limit!r} is not an integer in 1-{MAX_LIMIT}")
        digits = raw_limit.lstrip("0") or "0"
        # Length first: int() refuses digit strings past sys.get_int_max_str_digits().
        if len(digits) > len(str(MAX_LIMIT)) or not 1 <= int(digits) <= MAX_LIMIT:
            shown = digits if len(digits) <= 20 else digits[:20] + "..."
            raise BadRequest(f"parameter 'limit': {shown} is out of range 1-{MAX_LIMIT}")
        limit = int(digits)

    order: Order = "desc"
    raw_order = _single(grouped, "order")
    if raw_order is not None:
        if raw_order not in ("asc", "desc"):
            raise BadRequest(f"parameter 'order': {raw_order!r} is not asc or desc")
        order = "asc" if raw_order == "asc" else "desc"

    since = _single(grouped, "since")
    until = _single(grouped, "until")
    since_us = None if since is None else _time_param("since", since)
    until_us = None if until is None else _time_param("until", until)

    text: tuple[TextTerm, ...] = ()
    for raw_q in grouped.get("q", []):
        text += parse_text(raw_q)
    text = tuple(dict.fromkeys(text))
    if len(text) > MAX_TEXT_WORDS:
        raise BadRequest(f"parameter 'q': more than {MAX_TEXT_WORDS} words")

    equalities: dict[Path, list[Value]] = {}
    conditions: list[Condition] = []
    for name, values in grouped.items():
        if name in RESERVED:
            continue
        m = _PARAM.fullmatch(name)
        if m is None:
            raise BadRequest(f"parameter {name!r}: expected PATH or PATH[op]")
        raw_op = m.group("op")
        op: Op = "eq"
        if raw_op is not None:
            if raw_op not in OPS:
                raise BadRequest(
                    f"parameter {name!r}: unknown operator {raw_op!r}; expected one of "
                    + ", ".join(OPS)
                )
            op = cast(Op, raw_op)
        path = parse_path(m.group("path"), name)
        for raw in values:
            cond = _condition(path, op, raw, name)
            if op in ("eq", "in"):
                equalities.setdefault(path, []).extend(cond.values)
            else:
                conditions.append(cond)
    for path, vals in equalities.items():
        unique = tuple(dict.fromkeys(vals))
        if len(unique) > MAX_IN_VALUES:
            raise BadRequest(
                f"parameter {'.'.join(path)!r}: more than {MAX_IN_VALUES} values to match"
            )
        conditions.append(Condition(path, "eq" if len(unique) == 1 else "in", unique))
    if len(conditions) > MAX_CONDITIONS:
        raise BadRequest(f"more than {MAX_CONDITIONS} conditions in one query")

    query = Query(
        conditions=tuple(conditions),
        since_us=since_us,
        until_us=until_us,
        text=text,
        order=order,
        limit=limit,
    )
    return query, _single(grouped, "cursor")


def restrict(query: Query, bound: Query) -> Query:
    """``query`` with every condition, word and time bound of ``bound`` ANDed in: what a
    credential bound to a filter (a viewer token) may see of it."""
    since = [t for t in (query.since_us, bound.since_us) if t is not None]
    until = [t for t in (query.until_us, bound.until_us) if t is not None]
    return dataclasses.replace(
        query,
        conditions=query.conditions + bound.conditions,
        text=tuple(dict.fromkeys(query.text + bound.text)),
        since_us=max(since) if since else None,
        until_us=min(until) if until else None,
    )

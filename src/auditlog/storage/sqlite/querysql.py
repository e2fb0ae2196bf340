"""A query syntax tree to SQLite SQL, with every value bound as a parameter.

The compiler splits a ``Query`` into three parts:

* token conditions: equality, ``in`` and ``exists=true`` on any indexed path, and the words of
  ``q``. They become one FTS5 MATCH expression over the search index (see ``terms``), built
  only from hex tokens and quoted words, so no client text is ever parsed as FTS syntax. A
  residual condition on a ``data`` path adds its path's exists token too (``_holds_path``).
* column conditions: ``type``, ``id`` and the time range, answered from columns and indexes.
* residual conditions: everything else (``ne``, ranges, ``prefix``, ``exists=false``, and
  any condition on ``time``, ``received_at``, ``seq``, ``tenant``). They are checked per
  candidate row by ``al_match``, a SQL function that applies ``model.fields`` itself, so no
  backend can disagree with the reference semantics; cheap necessary tests on the stored
  bytes (``prechecks``) go before it, so that most rows it would refuse never reach Python.

and picks who drives the scan, newest-first or oldest-first by key (= by seq within a tenant):

* the search index, when there is a token condition other than ``type``: FTS5 walks its
  doclists by rowid in the requested order and stops at the page size. The index lags the
  commit (``indexer``), so the events above the tenant's indexing progress, the tail, are
  scanned by key and checked with every condition by ``al_match``; the tail comes first in a
  newest-first page and last in an oldest-first one;
* the ``(tenant, type, key, time)`` index, one scan per listed type, merged by the store;
* the primary key otherwise.

Two alternatives are offered to the store with a probe each (``Narrow``), for conditions that
would otherwise be checked row by row over much of the log: a numeric range on an indexed
path (``data.amount[gt]=1000``) is read from the numbers index (``storage.numbers``) when the
range holds few numbers and the path no strings; a time range holding few events is read
through the time index.

Field paths never reach SQL text: they were validated by ``model.query`` and are only hashed
into tokens or passed to ``al_match`` inside a bound JSON parameter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import orjson

from auditlog.model.fields import OPS, Op, Path, Value, read_number
from auditlog.model.query import Condition, Query, TextTerm
from auditlog.storage import numbers
from auditlog.storage.sqlite import prechecks, terms

SEQ_BITS = 40
SEQ_MASK = (1 << SEQ_BITS) - 1


def key_of(tenant_id: int, seq: int) -> int:
    """The primary key of a tenant's event: tenant id in the high bits, seq in the low 40."""
    return (tenant_id << SEQ_BITS) | seq


@dataclass(frozen=True, slots=True)
class CompiledQuery:
    """Statements whose rows, in key order, answer the query; the last parameter of each is
    its LIMIT.

    ``merge``: every statement covers the same key range (one per listed type) and their rows
    are merged. Otherwise the statements cover consecutive key ranges in the page's order and
    run one after another until the page is full.
    """

    statements: tuple[tuple[str, tuple[object, ...]], ...]
    descending: bool
    limit: int
    merge: bool = False
    narrows: tuple[Narrow, ...] = ()


@dataclass(frozen=True, slots=True)
class Narrow:
    """A plan for a range holding few candidates, and the probe that tells whether it does.

    Walking by key finds the newest matches at once when they are common or recent, but a
    rare value or an old time range makes it step over every newer event. When ``probe``
    counts fewer candidates than the store's limit for this ``kind`` (``"time"``:
    ``NARROW_EVENTS``, ``"numbers"``: ``NUMBER_CANDIDATES``), ``plan`` reads them through
    their index and sorts them by key instead. The store tries its narrows in order.
    """

    kind: str
    probe: tuple[str, tuple[object, ...]]
    plan: CompiledQuery
    #: For a time range: ``plan`` with the search index's matches among the keys the range's
    #: events span as a further filter, used when they span few (``KeySpan``).
    span: KeySpan | None = None


@dataclass(frozen=True, slots=True)
class KeySpan:
    """A narrow time range's plan that also asks the search index for its matches among the
    keys from the range's first event to its last (``MATCH ... AND rowid BETWEEN``: one read
    of each token's postings in that span) and reads only those of the events it covers.

    Its probe gives the range's smallest and largest key besides the count. Where times follow
    seqs (events sent as they happen) the span is about as many keys as the range holds
    events, and the words need no decoding of each event; where the span holds more than
    ``SPAN_KEYS`` keys, the plain plan is taken, so the postings read stay bounded."""

    sql: str
    before: tuple[object, ...]
    after: tuple[object, ...]
    descending: bool
    limit: int

    def plan(self, first: int, last: int) -> CompiledQuery:
        return CompiledQuery(
            ((self.sql, (*self.before, first, last, *self.after)),), self.descending, self.limit
        )


NARROW_EVENTS = 5000
#: Most keys a narrow time range's events may span for the search index to be read over them.
SPAN_KEYS = 4 * NARROW_EVENTS
#: Numbers in a range (from the numbers index) below which the range drives the page.
NUMBER_CANDIDATES = 20_000


def _indexed(cond: Condition) -> bool:
    root = cond.path[0]
    if root in terms.UNINDEXED_ROOTS:
        return False
    return cond.op in ("eq", "in") or (cond.op == "exists" and cond.values[0].raw == "true")


_TRUE = (Value("true", None),)


def _holds_path(cond: Condition) -> bool:
    """Whether ``cond`` is a condition on a ``data`` path that only an event holding the path
    can match (all but ``exists=false``): the path's exists token is then a necessary
    condition the search index answers.

    Paths of ``data`` belong to some event types and not others, so the token drives the
    walk past every event without the path (the service's records of reads, among others)
    without reading them. The envelope's paths are in (nearly) every event, where the
    token would only add a lookup per event."""
    if len(cond.path) < 2 or cond.path[0] != "data":
        return False
    return not (cond.op == "exists" and cond.values[0].raw != "true")


def _fts_group(tenant: str, cond: Condition) -> str:
    if cond.op == "exists":
        tokens = [terms.exists_token(tenant, cond.path)]
    else:
        tokens = [t for v in cond.values for t in terms.value_tokens(tenant, cond.path, v)]
    return "(" + " OR ".join(f'"{t}"' for t in dict.fromkeys(tokens)) + ")"


def matched(
    conds: list[Condition], text: tuple[TextTerm, ...] = ()
) -> tuple[list[str], list[object]]:
    """The WHERE terms (and their parameters) that check ``conds`` and ``text`` on an event
    read row by row: the cheap tests of ``prechecks`` first, then ``al_match``."""
    keys, key_params = prechecks.key_checks(conds)
    words, word_params = prechecks.word_checks(text)
    return (
        [*keys, *words, "al_match(e.body, ?)"],
        [*key_params, *word_params, residual_spec(conds, text)],
    )


def residual_spec(conds: list[Condition], text: tuple[TextTerm, ...] = ()) -> str:
    """The conditions (and words) ``al_match`` checks, as a JSON parameter."""
    # A value travels as its text and whether it reads as a number (numbers beyond 64 bits
    # have no JSON encoding in orjson); the number is read again from the text.
    return orjson.dumps(
        {
            "c": [
                [list(c.path), c.op, [[v.raw, v.number is not None] for v in c.values]]
                for c in conds
            ],
            "q": [[t.word, t.prefix] for t in text],
        }
    ).decode()


def parse_residual_spec(
    spec: str,
) -> tuple[list[tuple[Path, Op, tuple[Value, ...]]], tuple[TextTerm, ...]]:
    """What ``residual_spec`` encoded, for ``al_match``."""
    doc = orjson.loads(spec)
    conds: list[tuple[Path, Op, tuple[Value, ...]]] = []
    for path, op, values in doc["c"]:
        if op not in OPS:
            raise ValueError(f"unknown operator {op!r}")
        conds.append(
            (
                tuple(path),
                op,
                tuple(Value(raw, read_number(raw) if numeric else None) for raw, numeric in values),
            )
        )
    return conds, tuple(TextTerm(word, prefix) for word, prefix in doc["q"])


def compile_query(
    tenant: str,
    tenant_id: int,
    query: Query,
    indexed_upto: int,
    path_flags: frozenset[str] | None = None,
    horizon: int = 0,
) -> CompiledQuery:
    """SQL for one page (``limit + 1`` rows, to tell whether more follow) of ``query``.

    ``indexed_upto`` is the tenant's indexing progress: events with a smaller seq are in the
    search index, newer ones (the tail) are checked row by row. ``path_flags``: the flags of
    ``numbers.range_path(query.conditions)`` in the numbers index, read with the progress;
    ``None`` leaves the numbers index out. ``horizon``: the tenant's first kept seq; the page
    holds none below it.
    """
    descending = query.order == "desc"
    seqs = _seq_range(query, horizon)
    if seqs is None:
        return CompiledQuery((), descending, query.limit)
    lo, hi = key_of(tenant_id, seqs[0]), key_of(tenant_id, seqs[1])
    compiled = _compile(tenant, tenant_id, query, indexed_upto, lo, hi)
    if path_flags is None or "s" in path_flags or not compiled.statements:
        return compiled
    span = numbers.number_range(query.conditions, single="m" not in path_flags)
    if span is None:
        return compiled
    by_numbers = _by_numbers(tenant_id, query, indexed_upto, lo, hi, span)
    return replace(compiled, narrows=(by_numbers, *compiled.narrows))


def _compile(
    tenant: str, tenant_id: int, query: Query, indexed_upto: int, lo: int, hi: int
) -> CompiledQuery:
    descending = query.order == "desc"
    fetch = query.limit + 1

    fts: list[str] = []
    types: list[str] | None = None
    ids: list[str] | None = None
    residual: list[Condition] = []
    tail_checks: list[Condition] = []  # what the index answers, checked directly on the tail
    for cond in query.conditions:
        if cond.path == ("type",) and cond.op in ("eq", "in"):
            types = _intersect(types, [v.raw for v in cond.values])
            fts.append(_fts_group(tenant, cond))
        elif cond.path == ("id",) and cond.op in ("eq", "in"):
            ids = _intersect(ids, [v.raw for v in cond.values])
        elif _indexed(cond):
            fts.append(_fts_group(tenant, cond))
            tail_checks.append(cond)
        else:
            residual.append(cond)
    if ids is None:  # (an id equality reads the id index instead)
        fts += [
            _fts_group(tenant, Condition(c.path, "exists", _TRUE))
            for c in residual
            if _holds_path(c)
        ]
    for term in query.text:
        word = '"' + terms.word_token(term.word) + '"'
        fts.append(word + "*" if term.prefix else word)

    where: list[str] = []
    params: list[object] = []
    if ids is not None:
        where.append(f"e.id IN ({','.join('?' * len(ids))})")
        params += ids
    times, time_params = _column_where(query)
    where += times
    params += time_params
    direction = "DESC" if descending else "ASC"

    if types == [] or ids == []:
        return CompiledQuery((), descending, query.limit)  # contradictory equalities
    only_type = types is not None and len(fts) == 1
    # A time range holding few events may be read through the time index instead (a Narrow).
    timed = ids is None and (query.since_us is not None or query.until_us is not None)
    narrows: tuple[Narrow, ...] = ()
    if fts and not only_type:
        # The search index answers events below the progress mark; the tail above it is
        # scanned by key and checked with every condition, the indexed ones included.
        split = max(lo, min(hi + 1, key_of(tenant_id, indexed_upto)))
        checks, check_params = matched(residual) if residual else ([], [])
        index_where = where + checks
        index_params = params + check_params
        index_sql = (
            "SELECT e.key, e.body FROM t.events_terms AS f CROSS JOIN events AS e"
            " ON e.key = f.rowid WHERE events_terms MATCH ? AND f.rowid BETWEEN ? AND ?"
            " AND e.tenant_id = ?"
            + "".join(f" AND {w}" for w in index_where)
            + f" ORDER BY f.rowid {direction} LIMIT ?"
        )
        indexed = (
            index_sql,
            (" AND ".join(fts), lo, split - 1, tenant_id, *index_params, fetch),
        )
        if timed:  # every condition checked on the events of the time range
            everything = residual + tail_checks
            searched = (" AND ".join(fts), split, residual)
            narrow = _narrow(
                tenant_id, query, types, everything, lo, hi, direction, fetch, searched
            )
            narrows = (narrow,)
        if types is not None:
            tail_checks.append(Condition(("type",), "in", tuple(Value(t, None) for t in types)))
        checks, check_params = matched(residual + tail_checks, query.text)
        tail_where = [*where, *checks]
        tail_params = [*params, *check_params]
        tail_sql = (
            "SELECT e.key, e.body FROM events AS e NOT INDEXED WHERE e.key BETWEEN ? AND ?"
            " AND e.tenant_id = ?"
            + "".join(f" AND {w}" for w in tail_where)
            + f" ORDER BY e.key {direction} LIMIT ?"
        )
        tail = (tail_sql, (split, hi, tenant_id, *tail_params, fetch))
        parts = (tail, indexed) if descending else (indexed, tail)
        return CompiledQuery(parts, descending, query.limit, narrows=narrows)

    if residual:
        checks, check_params = matched(residual)
        where += checks
        params += check_params
    extra = "".join(f" AND {w}" for w in where)
    if timed:
        narrows = (_narrow(tenant_id, query, types, residual, lo, hi, direction, fetch),)
    if types is not None:
        sql = (
            "SELECT e.key, e.body FROM events AS e INDEXED BY events_type"
            f" WHERE e.tenant_id = ? AND e.type = ? AND e.key BETWEEN ? AND ?{extra}"
            f" ORDER BY e.key {direction} LIMIT ?"
        )
        statements = tuple((sql, (tenant_id, t, lo, hi, *params, fetch)) for t in types)
        merge = len(statements) > 1
        return CompiledQuery(statements, descending, query.limit, merge, narrows)
    if ids is not None:
        sql = (
            "SELECT e.key, e.body FROM events AS e INDEXED BY events_id"
            f" WHERE e.tenant_id = ? AND e.key BETWEEN ? AND ?{extra}"
            f" ORDER BY e.key {direction} LIMIT ?"
        )
        statement = (sql, (tenant_id, lo, hi, *params, fetch))
        return CompiledQuery((statement,), descending, query.limit)
    sql = (
        # NOT INDEXED: walk the primary key; with the tenant check the planner would
        # otherwise read the whole tenant through the time index and sort it.
        "SELECT e.key, e.body FROM events AS e NOT INDEXED"
        " WHERE e.key BETWEEN ? AND ? AND e.tenant_id = ?"
        f"{extra} ORDER BY e.key {direction} LIMIT ?"
    )
    statement = (sql, (lo, hi, tenant_id, *params, fetch))
    return CompiledQuery((statement,), descending, query.limit, False, narrows)


def _by_numbers(
    tenant_id: int,
    query: Query,
    indexed_upto: int,
    lo: int,
    hi: int,
    span: numbers.NumberRange,
) -> Narrow:
    """The page read from the numbers in ``span``: below the tenant's indexing progress the
    keys of the events holding such a number, sorted, each event checked with every condition
    (the index gives a superset); above it the tail, checked likewise."""
    descending = query.order == "desc"
    direction = "DESC" if descending else "ASC"
    fetch = query.limit + 1
    split = max(lo, min(hi + 1, key_of(tenant_id, indexed_upto)))
    in_range = (
        "FROM t.numbers AS n WHERE n.tenant_id = ? AND n.path = ? AND n.v >= ? AND n.v <= ?"
        " AND n.key BETWEEN ? AND ?"
    )
    range_params = (tenant_id, span.path_id, span.low, span.high, lo, split - 1)
    probe = (
        f"SELECT count(*) FROM (SELECT 1 {in_range} LIMIT ?)",
        (*range_params, NUMBER_CANDIDATES),
    )
    where, params = _column_where(query)
    checks_sql, check_params = matched(list(query.conditions), query.text)
    where += checks_sql
    params += check_params
    checks = "".join(f" AND {w}" for w in where)
    indexed = (
        "SELECT e.key, e.body FROM events AS e NOT INDEXED"
        f" WHERE e.key IN (SELECT n.key {in_range})"
        f" AND e.tenant_id = ?{checks} ORDER BY e.key {direction} LIMIT ?",
        (*range_params, tenant_id, *params, fetch),
    )
    tail = (
        "SELECT e.key, e.body FROM events AS e NOT INDEXED WHERE e.key BETWEEN ? AND ?"
        f" AND e.tenant_id = ?{checks} ORDER BY e.key {direction} LIMIT ?",
        (split, hi, tenant_id, *params, fetch),
    )
    parts = (tail, indexed) if descending else (indexed, tail)
    return Narrow("numbers", probe, CompiledQuery(parts, descending, query.limit))


def _column_where(query: Query) -> tuple[list[str], list[object]]:
    """The time range as conditions on the time column (every other condition is checked by
    ``al_match``)."""
    where: list[str] = []
    params: list[object] = []
    if query.since_us is not None:
        where.append("e.time_us >= ?")
        params.append(query.since_us)
    if query.until_us is not None:
        where.append("e.time_us < ?")
        params.append(query.until_us)
    return where, params


def _narrow(
    tenant_id: int,
    query: Query,
    types: list[str] | None,
    residual: list[Condition],
    lo: int,
    hi: int,
    direction: str,
    fetch: int,
    searched: tuple[str, int, list[Condition]] | None = None,
) -> Narrow:
    """The plan through the time index: the events of the range, each checked with
    ``residual`` and the words of ``q``. ``searched``: the search index's expression for the
    query, the key below which it covers the log and the conditions it does not answer, for
    the plan's ``KeySpan``."""
    since = query.since_us if query.since_us is not None else -(2**63)
    until = query.until_us if query.until_us is not None else 2**63 - 1
    # With ``searched``, the probe also gives the range's first and last key (the span).
    probe = (
        f"SELECT count(*){'' if searched is None else ', min(key), max(key)'} FROM (SELECT key"
        " FROM events INDEXED BY events_time WHERE tenant_id = ? AND time_us >= ?"
        " AND time_us < ? LIMIT ?)",
        (tenant_id, since, until, NARROW_EVENTS),
    )
    where = ["e.key BETWEEN ? AND ?"]
    params: list[object] = [lo, hi]
    if types is not None:
        where.append(f"e.type IN ({','.join('?' * len(types))})")
        params += types
    head = (
        "SELECT e.key, e.body FROM events AS e INDEXED BY events_time"
        " WHERE e.tenant_id = ? AND e.time_us >= ? AND e.time_us < ?"
        + "".join(f" AND {w}" for w in where)
    )
    order = f" ORDER BY e.key {direction} LIMIT ?"
    checks: list[str] = []
    check_params: list[object] = []
    if residual or query.text:
        checks, check_params = matched(residual, query.text)
    descending = direction == "DESC"
    plan = CompiledQuery(
        (
            (
                head + "".join(f" AND {c}" for c in checks) + order,
                (tenant_id, since, until, *params, *check_params, fetch),
            ),
        ),
        descending,
        query.limit,
    )
    span = None
    if searched is not None:
        match, split, unanswered = searched
        # Below ``split`` the index answers the query but for ``unanswered``; from it on (the
        # tail, not in the index) every event is checked as in the plain plan.
        covered = (
            "e.key IN (SELECT rowid FROM t.events_terms WHERE events_terms MATCH ?"
            " AND rowid BETWEEN ? AND ?)"
        )
        rest_checks: list[str] = []
        rest_params: list[object] = []
        if unanswered:
            rest_checks, rest_params = matched(unanswered)
        spanned = (
            head
            + f" AND CASE WHEN e.key < ? THEN {' AND '.join([covered, *rest_checks])}"
            + f" ELSE {' AND '.join(checks) or '1'} END"
            + order
        )
        before = (tenant_id, since, until, *params, split, match)
        after = (*rest_params, *check_params, fetch)
        span = KeySpan(spanned, before, after, descending, query.limit)
    return Narrow("time", probe, plan, span)


def _seq_range(query: Query, horizon: int = 0) -> tuple[int, int] | None:
    """The seqs the page can hold, from the cursor, ``before_seq`` and any conditions on
    ``seq``; ``None`` when there are none.

    Always within 0..SEQ_MASK, so that a key range never reaches into another tenant's keys
    whatever a (forged) cursor or a condition says. Conditions on ``seq`` stay residual too:
    the range only narrows the scan.
    """
    first, last = max(0, min(horizon, SEQ_MASK)), SEQ_MASK
    if query.after_seq is not None:
        if query.order == "desc":
            last = min(last, query.after_seq - 1)
        else:
            first = max(first, query.after_seq + 1)
    if query.before_seq is not None:
        last = min(last, query.before_seq - 1)
    for cond in query.conditions:
        if cond.path != ("seq",):
            continue
        numbers = [v.number for v in cond.values if v.number is not None]
        if cond.op in ("eq", "in"):
            whole = [int(n) for n in numbers if float(n).is_integer()]
            if not whole:
                return None
            first, last = max(first, min(whole)), min(last, max(whole))
        elif numbers and cond.op in ("gt", "gte", "lt", "lte"):
            n = numbers[0]
            if cond.op == "gt":
                first = max(first, math.floor(n) + 1)
            elif cond.op == "gte":
                first = max(first, math.ceil(n))
            elif cond.op == "lt":
                last = min(last, math.ceil(n) - 1)
            else:
                last = min(last, math.floor(n))
    if first > last:
        return None
    return first, last


def _intersect(current: list[str] | None, new: list[str]) -> list[str]:
    unique = list(dict.fromkeys(new))
    if current is None:
        return unique
    return [v for v in current if v in unique]

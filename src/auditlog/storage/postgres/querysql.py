"""A query syntax tree to one PostgreSQL statement that finds its candidate events.

The statement returns, in ``seq`` order, a superset of the tenant's events that match: every
match and perhaps a few more. The store checks each candidate with ``model.matching`` (the
definition of what a query means) and fetches further chunks until the page is full, so SQL
never has to reproduce the reference semantics exactly, only never miss a match. The words of
``q`` are the exception: in the indexed part SQL decides them exactly
(``Segment.words_decided``).

What goes into SQL, each with an index behind it:

* ``type``, ``source``, ``outcome``, ``actor`` (its id), ``subject`` (its id) and ``id``:
  equality and ``in`` on their columns (btree indexes that lead with the tenant).
* ``since``/``until``: a range on ``time_us``.
* equality, ``in`` and ``exists=true`` on ``data`` paths: a JSON path test on the ``data``
  column (``@?``, served by its GIN ``jsonb_path_ops`` index). In lax mode a JSON path steps
  through one level of array at each step, where ``model.fields`` steps through any number;
  events record the paths where their ``data`` nests an array directly in an array
  (``nested``, with a GIN index), and are always candidates for conditions on those paths.
* ``q``: the words and prefixes as a ``tsquery`` over the GIN index of the event's words.

* a range with a numeric value on an indexed path, when the numbers index holds few numbers
  in it (``numbers_query``; the store probes first).

Everything else (``ne``, other ranges, ``prefix`` on fields, conditions on other envelope
paths) is left to the check of each candidate. Field paths never reach SQL text: each becomes a
quoted JSON path inside a bound parameter, built only from validated segments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import orjson

from auditlog.model.fields import Value
from auditlog.model.query import Condition, Query, TextTerm
from auditlog.storage import numbers

#: Envelope paths held in columns of their own.
COLUMNS: dict[tuple[str, ...], str] = {
    ("type",): "type",
    ("source",): "source",
    ("outcome",): "outcome",
    ("actor", "id"): "actor",
    ("subject", "id"): "subject",
    ("id",): "id",
}

#: Bounds of a page's position: beyond every seq, and before the first.
TOP = (1 << 62) - 1
BOTTOM = -1


@dataclass(frozen=True, slots=True)
class Segment:
    """Statements that find candidates in one range of seqs, in seq order.

    ``sql`` leaves the plan to PostgreSQL; its parameters are ``params`` followed by the
    position to continue after (a seq) and the number of rows to fetch. ``walk`` (only for the
    indexed range of a query with conditions on data or words, whose matches PostgreSQL
    cannot count well) walks the events in seq order through a window of a given number of
    rows instead. It answers (edge, top, n, seq, time_us, body) rows: the seq the window
    reached, the seq it started at and its number of rows, with each match of the window in
    order, or once with the last three NULL if none matched. Its parameters are
    ``walk_params``, the position and the window.
    """

    sql: str
    params: tuple[object, ...]
    walk: str | None = None
    walk_params: tuple[object, ...] = ()
    #: The seqs of the matches the GIN indexes find, in no order, up to a bound:
    #: ``probe_params``, the position and the bound. Below the bound they are every
    #: candidate of the segment, and their events are read by seq (``EVENTS_BY_SEQ``).
    probe: str | None = None
    probe_params: tuple[object, ...] = ()
    #: PostgreSQL's estimate of the same matches (``EXPLAIN`` in JSON, without counting
    #: them): ``probe_params`` and the position.
    estimate: str | None = None
    #: ``sql`` may return candidates that do not match (a range widened to floats, a JSON
    #: path test wider than the query): its first chunk then asks for a few rows more than
    #: the page, so that a miss or two does not cost a second statement.
    loose: bool = False
    #: PostgreSQL's best plan for ``sql`` depends on its parameters' values (how common a
    #: value or a range is): it is planned for them at every execution, never given the
    #: generic plan of a prepared statement (which, for a rare value after common ones,
    #: walked the whole log: 600 ms instead of 3).
    replan: bool = False
    #: The tenant, for ``EVENTS_BY_SEQ`` (set where ``probe`` is).
    tenant_id: int | None = None
    #: Every row the statements answer holds the query's words (``q``): each tests them on
    #: the event's ``words`` (``model.text.event_words``, as the store's check computes
    #: them), exactly, so the store's check of each candidate leaves them out.
    words_decided: bool = False
    #: Every seq of the segment is below this (the search progress, for the indexed part).
    below: int = TOP


@dataclass(frozen=True, slots=True)
class CandidateQuery:
    """The segments to read one after another, in the page's order, from ``start``."""

    segments: tuple[Segment, ...]
    descending: bool
    start: int


def _has_nul(values: tuple[Value, ...]) -> bool:
    # Text in PostgreSQL cannot hold NUL; stored NULs are replaced, so such a value is only
    # checked outside SQL.
    return any("\x00" in v.raw for v in values)


def json_path(path: tuple[str, ...]) -> str:
    """``("data", "a", "b")`` as the lax JSON path ``$."a"."b"`` into the ``data`` column."""
    return "$" + "".join(f'."{segment}"' for segment in path[1:])


def _literals(value: Value) -> list[str]:
    """The JSON path literals a query value equals under ``model.fields.scalar_matches``."""
    out = [orjson.dumps(value.raw).decode()]
    if value.number is not None:
        out.append(repr(value.number))
    if value.raw in ("true", "false", "null"):
        out.append(value.raw)
    return out


def data_test(cond: Condition) -> str | None:
    """The JSON path test (``@?``) that every event matching ``cond`` passes, or ``None``."""
    if len(cond.path) < 2 or cond.path[0] != "data" or _has_nul(cond.values):
        return None
    if cond.op == "exists":
        return json_path(cond.path) if cond.values[0].raw == "true" else None
    if cond.op not in ("eq", "in"):
        return None
    tests = [f"@ == {lit}" for value in cond.values for lit in _literals(value)]
    return f"{json_path(cond.path)} ? ({' || '.join(tests)})"


def nested_prefixes(path: tuple[str, ...]) -> list[str]:
    """The ``nested`` paths (see ``rows.nested_paths``) that make an event a candidate for a
    condition on ``path`` whatever its JSON path test says: ``path`` and every prefix of it."""
    keys = path[1:]
    return [".".join(keys[: n + 1]) for n in range(len(keys))]


def tsquery(terms: tuple[TextTerm, ...]) -> str:
    """The words of ``q`` as ``tsquery`` text: every word, a prefix for ``word*``."""
    parts = []
    for term in terms:
        quoted = "'" + term.word.replace("\\", "\\\\").replace("'", "''") + "'"
        parts.append(quoted + (":*" if term.prefix else ""))
    return " & ".join(parts)


def searches(query: Query) -> bool:
    """Whether ``query`` has conditions for the indexes of ``event_search`` (data paths, words)
    or the numbers index: only then do its statements depend on the tenant's search
    progress."""
    return (
        bool(query.text)
        or any(data_test(cond) is not None for cond in query.conditions)
        or numbers.range_path(query.conditions) is not None
    )


_SELECT = "SELECT e.seq, e.time_us, e.body FROM events AS e WHERE e.tenant_id = %s"
#: A tenant's events with the given seqs (an array), in no order.
EVENTS_BY_SEQ = _SELECT + " AND e.seq = ANY(%s)"


def _columns(query: Query) -> tuple[list[str], list[object]]:
    """The conditions answered by columns of ``events`` (and their indexes)."""
    columns: list[str] = []
    params: list[object] = []
    for cond in query.conditions:
        column = COLUMNS.get(cond.path)
        if column is not None and cond.op in ("eq", "in") and not _has_nul(cond.values):
            raws = sorted({v.raw for v in cond.values})
            if len(raws) == 1:
                columns.append(f"e.{column} = %s")
                params.append(raws[0])
            else:
                columns.append(f"e.{column} = ANY(%s)")
                params.append(raws)
    if query.since_us is not None:
        columns.append("e.time_us >= %s")
        params.append(query.since_us)
    if query.until_us is not None:
        columns.append("e.time_us < %s")
        params.append(query.until_us)
    return columns, params


def _bounded(query: Query, indexed: int, size: int | None) -> tuple[int, int | None]:
    """The search progress and log size as a query sees them once ``before_seq`` bounds it:
    the indexed segments stop at the bound, and where the index reaches it there is no tail."""
    if query.before_seq is None:
        return indexed, size
    bound = min(max(query.before_seq, 0), TOP)
    return min(indexed, bound), bound if size is None else min(size, bound)


def _below(query: Query) -> tuple[list[str], list[object]]:
    """``before_seq`` as a condition on the events read by key (the tail, or every event)."""
    if query.before_seq is None:
        return [], []
    return ["e.seq < %s"], [min(max(query.before_seq, 0), TOP)]


def _order(query: Query) -> tuple[bool, int]:
    """Whether the page is newest first, and the position it starts after."""
    descending = query.order == "desc"
    if query.after_seq is None:
        return descending, TOP if descending else BOTTOM
    return descending, min(max(query.after_seq, BOTTOM), TOP)


def _onwards(query: Query) -> Callable[[str], str]:
    descending = query.order == "desc"
    direction = "DESC" if descending else "ASC"
    after = "<" if descending else ">"

    def onwards(alias: str) -> str:
        """Rows of ``alias`` past a position, in the page's order, up to a number of them."""
        return f" AND {alias}.seq {after} %s ORDER BY {alias}.seq {direction} LIMIT %s"

    return onwards


@dataclass(frozen=True, slots=True)
class NumbersProbe:
    """How many numbers of a range the indexed part of the log holds: ``count`` counts them up
    to a bound (its last parameter, after ``params``), ``estimate`` asks PostgreSQL's
    estimate (``EXPLAIN`` in JSON) without counting."""

    count: str
    estimate: str
    params: tuple[object, ...]


def numbers_probe(tenant_id: int, span: numbers.NumberRange, indexed: int) -> NumbersProbe:
    in_range = (
        "SELECT 1 FROM event_numbers WHERE tenant_id = %s AND path = %s"
        " AND v >= %s AND v <= %s AND seq < %s"
    )
    return NumbersProbe(
        f"SELECT count(*) FROM ({in_range} LIMIT %s) AS m",
        f"EXPLAIN (FORMAT JSON) {in_range}",
        (tenant_id, span.path_id, span.low, span.high, indexed),
    )


def numbers_query(
    tenant_id: int,
    query: Query,
    indexed: int,
    size: int,
    span: numbers.NumberRange,
    common: bool = False,
) -> CandidateQuery | None:
    """The candidates of ``query`` read through the numbers index: below the search progress,
    the events holding a number of ``span`` (distinct, by key); from it on, the tail.

    ``common``: the range holds many numbers (the store's probe said so). Then its numbers
    are walked in seq order instead (``event_numbers_seq``) until a chunk is found, which
    is ``None`` when the query also has conditions on columns (they would cut the walk's
    chunk short; the ordinary plan reads those columns' indexes instead).
    """
    columns, params = _columns(query)
    indexed, bounded_size = _bounded(query, indexed, size)
    size = size if bounded_size is None else bounded_size
    below, below_params = _below(query)
    descending, start = _order(query)
    onwards = _onwards(query)
    where = "".join(f" AND {c}" for c in [*columns, *below, "e.seq >= %s"])
    tail = Segment(_SELECT + where + onwards("e"), (tenant_id, *params, *below_params, indexed))
    in_range = (
        " FROM event_numbers AS n WHERE n.tenant_id = %s AND n.path = %s AND n.v >= %s"
        " AND n.v <= %s AND n.seq < %s"
    )
    range_params = (tenant_id, span.path_id, span.low, span.high, indexed)
    if columns:
        if common:
            return None
        # Every event of the range, then the columns' conditions, then the page's order.
        ranged = (
            "SELECT e.seq, e.time_us, e.body FROM (SELECT DISTINCT n.seq, n.received_us"
            + in_range
            + ") AS n JOIN events AS e ON e.tenant_id = %s AND e.seq = n.seq"
            " AND e.received_us = n.received_us WHERE true"
            + "".join(f" AND {c}" for c in columns)
            + onwards("e")
        )
        indexed_segment = Segment(
            ranged, (*range_params, tenant_id, *params), loose=True, replan=True
        )
    else:
        # The chunk is taken from the numbers (an event once, however many numbers of the
        # range it holds), and only its events are read. A rare range reads all its numbers
        # by (path, v) and sorts them by seq (the statement is fenced so that PostgreSQL
        # cannot walk instead). A common one is grouped by seq, which PostgreSQL reads in
        # order by walking the tenant's numbers (event_numbers_seq), the path and range
        # tested on each; its estimate of the range, the one that made it common, says that
        # this finds the chunk soonest. (Hiding the path from it, to force the walk, made it
        # expect a few matches in all, and read and sort every number of the range instead.)
        direction = "DESC" if descending else "ASC"
        if common:
            after = "<" if descending else ">"
            chunk = (
                "SELECT n.tenant_id, n.seq, min(n.received_us) AS received_us"
                + in_range
                + f" AND n.seq {after} %s GROUP BY n.tenant_id, n.seq"
                f" ORDER BY n.seq {direction} LIMIT %s"
            )
        else:
            chunk = (
                "WITH m AS MATERIALIZED (SELECT DISTINCT n.tenant_id, n.seq, n.received_us"
                + in_range
                + ") SELECT * FROM m AS n WHERE true"
                + onwards("n")
            )
        ranged = (
            f"SELECT e.seq, e.time_us, e.body FROM ({chunk}) AS n JOIN events AS e"
            " ON e.tenant_id = n.tenant_id AND e.seq = n.seq AND e.received_us = n.received_us"
            f" ORDER BY e.seq {direction}"
        )
        indexed_segment = Segment(ranged, range_params, loose=True, replan=True)
    if indexed >= size:
        return CandidateQuery((indexed_segment,), descending, start)
    segments = (tail, indexed_segment) if descending else (indexed_segment, tail)
    return CandidateQuery(segments, descending, start)


def compile_query(
    tenant_id: int, query: Query, indexed: int, size: int | None = None
) -> CandidateQuery:
    """The candidate statements for ``query`` within one tenant.

    ``indexed``: the tenant's search progress; events with a smaller seq are in
    ``event_search``, the others (the tail) are checked without its indexes. ``size``: the
    tenant's next seq as read with the progress, if known: where the index has caught up with
    it there is no tail to read (events committed since are as if committed after the query).
    """
    columns, params = _columns(query)
    indexed, size = _bounded(query, indexed, size)
    below, below_params = _below(query)
    # Conditions served by the GIN indexes of event_search (data paths, words), and the same
    # conditions as the walk tests them row by row (where a cheaper test says the same).
    gin: list[str] = []
    gin_params: list[object] = []
    tests: list[str] = []
    test_params: list[object] = []
    for cond in query.conditions:
        test = data_test(cond)
        if test is not None:
            gin.append("(s.data @? %s::jsonpath OR s.nested && %s::text[])")
            gin_params += [test, nested_prefixes(cond.path)]
            tests.append(gin[-1])
            test_params += gin_params[-2:]
    if query.text:
        gin.append("array_to_tsvector(string_to_array(s.words, ' ')) @@ %s::tsquery")
        gin_params.append(tsquery(query.text))
        # The same test on the words as text: building each row's tsvector costs ~20 times
        # more than looking for ' word ' (or ' prefix') in it.
        for term in query.text:
            if term.prefix:
                tests.append("strpos(' ' || s.words, %s) > 0")
                test_params.append(" " + term.word)
            else:
                tests.append("strpos(' ' || s.words || ' ', %s) > 0")
                test_params.append(f" {term.word} ")
    descending, start = _order(query)
    direction = "DESC" if descending else "ASC"
    after = "<" if descending else ">"
    onwards = _onwards(query)
    select = _SELECT
    order = onwards("e")
    if not gin:
        where = "".join(f" AND {c}" for c in [*columns, *below])
        return CandidateQuery(
            (Segment(select + where + order, (tenant_id, *params, *below_params)),),
            descending,
            start,
        )
    # The tail: every event from the search progress on, its indexed conditions checked by
    # the store on each candidate.
    where = "".join(f" AND {c}" for c in [*columns, *below, "e.seq >= %s"])
    tail = Segment(select + where + order, (tenant_id, *params, *below_params, indexed))
    # The candidates the GIN indexes find, up to a bound (the store's walk-or-index choice).
    candidates = (
        "SELECT s.seq FROM event_search AS s WHERE s.tenant_id = %s"
        + "".join(f" AND {c}" for c in [*gin, "s.seq < %s"])
        + f" AND s.seq {after} %s"
    )
    probe = f"{candidates} LIMIT %s"
    estimate = f"EXPLAIN (FORMAT JSON) {candidates}"
    probe_params = (tenant_id, *gin_params, indexed)
    # Driven from the search rows: PostgreSQL picks the GIN index for the conditions on data
    # and words, and fetches each match's event by key.
    planned = (
        "SELECT e.seq, e.time_us, e.body FROM event_search AS s JOIN events AS e"
        " ON e.tenant_id = s.tenant_id AND e.seq = s.seq AND e.received_us = s.received_us"
        " WHERE s.tenant_id = %s"
        + "".join(f" AND {c}" for c in [*gin, *columns, "s.seq < %s"])
        + onwards("s")
    )
    # The window is read in seq order first (a subquery with its own ORDER BY and LIMIT) and
    # the indexed conditions are only tested on its rows, in one pass that aggregates it: its
    # ends, its size and its matches. Without column conditions it reads search rows alone
    # (small, by their key) and then fetches the events of the matches only; with them, it
    # reads events first (by the index of a column condition) and tests their search rows.
    edge, top = ("min", "max") if descending else ("max", "min")

    if not columns:
        walk = (
            "SELECT a.edge, a.top, a.n, e.seq, e.time_us, e.body FROM ("
            f"SELECT {edge}(s.seq) AS edge, {top}(s.seq) AS top, count(*) AS n,"
            f" min(s.tenant_id) AS tenant_id, array_agg(s.seq) FILTER (WHERE {' AND '.join(tests)})"
            " AS hits FROM (SELECT s.tenant_id, s.seq, s.data, s.words, s.nested"
            " FROM event_search AS s WHERE s.tenant_id = %s AND s.seq < %s"
            + onwards("s")
            + ") AS s) AS a LEFT JOIN LATERAL (SELECT e.seq, e.time_us, e.body FROM events AS e"
            " WHERE e.tenant_id = a.tenant_id AND e.seq = ANY(a.hits)) AS e ON true"
            f" ORDER BY e.seq {direction}"
        )
        walk_params: tuple[object, ...] = (*test_params, tenant_id, indexed)
    else:
        walk = (
            "SELECT a.edge, a.top, a.n, h.seq, h.time_us, h.body FROM ("
            f"SELECT {edge}(w.seq) AS edge, {top}(w.seq) AS top, count(*) AS n,"
            " array_agg(w.seq) FILTER (WHERE w.hit) AS seqs,"
            " array_agg(w.time_us) FILTER (WHERE w.hit) AS times,"
            " array_agg(w.body) FILTER (WHERE w.hit) AS bodies FROM ("
            "SELECT e.seq, e.time_us, e.body, EXISTS (SELECT 1 FROM event_search AS s"
            " WHERE s.tenant_id = e.tenant_id AND s.seq = e.seq"
            + "".join(f" AND {t}" for t in tests)
            + ") AS hit FROM events AS e WHERE e.tenant_id = %s"
            + "".join(f" AND {c}" for c in [*columns, "e.seq < %s"])
            + onwards("e")
            + ") AS w) AS a LEFT JOIN LATERAL unnest(a.seqs, a.times, a.bodies)"
            f" AS h(seq, time_us, body) ON true ORDER BY h.seq {direction}"
        )
        walk_params = (*test_params, tenant_id, *params, indexed)
    indexed_segment = Segment(
        planned,
        (tenant_id, *gin_params, *params, indexed),
        walk,
        walk_params,
        probe,
        probe_params,
        estimate,
        loose=True,
        replan=True,
        tenant_id=tenant_id,
        words_decided=bool(query.text),
        below=indexed,
    )
    if size is not None and indexed >= size:
        return CandidateQuery((indexed_segment,), descending, start)
    segments = (tail, indexed_segment) if descending else (indexed_segment, tail)
    return CandidateQuery(segments, descending, start)

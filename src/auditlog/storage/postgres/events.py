"""The events part of the PostgreSQL store: appending groups of events, reading and querying them."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import psycopg

from auditlog.errors import Unavailable
from auditlog.model import times
from auditlog.model.event import stored_bytes
from auditlog.model.matching import body_matches
from auditlog.model.query import Query, above_horizon
from auditlog.storage import numbers
from auditlog.storage.base import AppendOutcome, AppendRequest, GroupPlan, Page
from auditlog.storage.postgres import arrays, querysql, rows
from auditlog.storage.postgres.base import FLUSH_BARRIER, NUMBER_CANDIDATES, Conn, PostgresBase

#: The SQLSTATE of ``auditlog_append`` finding an id taken (schema/001_initial.sql).
_ID_TAKEN = "AL409"
#: The group commit's one call (schema/008_append_columns.sql): tenants and their counts, the
#: commit time, the new rows as one array per column, and the ids the producers chose (all
#: bound in binary); it returns once the append is committed and flushed.
_APPEND = (
    "CALL auditlog_append_durably(%b::int4[], %b::int4[], %b::int8, %b::int4[], %b::int4[],"
    " %b::text[], %b::text[], %b::int8[], %b::text[], %b::text[], %b::text[], %b::text[],"
    " %b::bytea[], %b::bytea[], %b::int4[], %b::text[], NULL)"
)
#: The per-row arrays of ``_APPEND``, each as its encoder makes it: tenant index, offset, the
#: envelope columns (``rows.envelope``), head, tail.
_COLUMN_ARRAYS: tuple[Callable[[Any], bytes], ...] = (
    arrays.int4_array,
    arrays.int4_array,
    arrays.text_array,
    arrays.text_array,
    arrays.int8_array,
    arrays.text_array,
    arrays.text_array,
    arrays.text_array,
    arrays.text_array,
    arrays.bytea_array,
    arrays.bytea_array,
)
_APPEND_COLUMNS = len(_COLUMN_ARRAYS)
_COPY_EVENTS = f"COPY events ({', '.join(rows.COLUMNS)}) FROM STDIN (FORMAT BINARY)"
#: Most candidate rows fetched by one statement of a query.
_MAX_CHUNK = 5000
#: Rows of the first window a query with conditions on data or words walks (see _walk).
_PROBE_ROWS = 512
#: A loose segment's first chunk holds this fraction (1/n) of the page more.
_LOOSE_SPARE = 8
#: Rows the rest of a page may be expected within and be walked without asking the indexes.
_WALK_CHEAP = 4_096
#: Matches from which their density is trusted to say how far the rest of the page is.
_TRUSTED_MATCHES = 4
#: Most rows such a query walks when the rest of its page is expected beyond them.
_WALK_MAX = 20_000
#: Most rows a walk reads once the GIN indexes were found to hold a common value (see
#: _common): reading and sorting them all costs ~12 µs each (12 ms for 1,000,
#: 250 ms for the 20,000 of a value in 2 % of a million events), walking ~0.5 µs a row (25 ms).
_WALK_COMMON_MAX = 50_000
#: Candidates past which the GIN indexes are not asked for a page (see _common).
_COMMON_MATCHES = 1_000
#: PostgreSQL's estimate of the candidates from which they are not even counted.
_SURELY_COMMON = 10 * _COMMON_MATCHES
#: PostgreSQL's estimate under which the candidates are counted before any walk (see _walk).
_LIKELY_FEW = 2 * _COMMON_MATCHES
#: PostgreSQL's estimate of a range's numbers from which they are not even counted.
_SURELY_COMMON_NUMBERS = 10 * NUMBER_CANDIDATES


def _plan_rows(plan: Any) -> float:
    """The rows an ``EXPLAIN (FORMAT JSON)`` expects its statement to return (0 if unsure)."""
    try:
        return float(plan[0]["Plan"]["Plan Rows"])
    except (LookupError, TypeError, ValueError):
        return 0.0


class EventsPart(PostgresBase):
    """``append`` (one transaction per group), ``get_event`` and ``query`` (on the query pool)."""

    # -- writing -----------------------------------------------------------------------

    async def append(self, requests: Sequence[AppendRequest]) -> list[AppendOutcome]:
        async with self._connection("commit") as conn:
            tenant_ids: dict[str, int] = {}
            for tenant in sorted({r.tenant for r in requests}):
                found = await self._tenant_id(conn, tenant, create=True)
                assert found is not None
                tenant_ids[tenant] = found
            plan = GroupPlan(requests)
            try:
                if not await self._append_fast(conn, plan, tenant_ids):
                    # Nothing new to insert, but the events this group replays may have been
                    # committed by another process a moment ago, not yet flushed: this
                    # synchronous commit waits for the WAL to be flushed past its own commit
                    # record, so past theirs. It must write WAL before its commit (here a
                    # transactional logical message, a few bytes): PostgreSQL commits a
                    # transaction that wrote none asynchronously, even one holding a
                    # transaction id, and so flushes nothing.
                    await conn.execute(FLUSH_BARRIER)
            except psycopg.Error as exc:
                if exc.sqlstate != _ID_TAKEN:
                    raise
                # An id planned as new was committed by another process meanwhile.
                plan = GroupPlan(requests)
                async with conn.transaction():
                    await self._append_locked(conn, plan, tenant_ids)
        return plan.outcomes()

    async def _existing(
        self, conn: Conn, plan: GroupPlan, tenant_ids: dict[str, int]
    ) -> dict[tuple[str, str], bytes]:
        """The stored bodies of the ids the group's producers chose that are stored."""
        existing: dict[tuple[str, str], bytes] = {}
        for tenant, wanted in plan.wanted().items():
            if not wanted:
                continue
            cur = await conn.execute(
                "SELECT id, body FROM events WHERE tenant_id = %s AND id = ANY(%s)",
                (tenant_ids[tenant], list(wanted)),
            )
            for event_id, body in await cur.fetchall():
                existing[(tenant, str(event_id))] = bytes(body)
        return existing

    async def _append_fast(self, conn: Conn, plan: GroupPlan, tenant_ids: dict[str, int]) -> bool:
        """Plan outside the locks, then lock, check, insert, commit and flush in one call (one
        round trip); whether there was anything to insert (and so the flush was made).

        Stored events never change, so a replay or a conflict found before the locks stays
        one; only an id planned as new can be taken meanwhile, which ``auditlog_append``
        checks under the locks (and then fails with ``_ID_TAKEN``, committing nothing).
        """
        plan.plan(await self._existing(conn, plan, tenant_ids))
        if not plan.new:
            return False
        received_us = times.now_us()
        received_at = times.format_us(received_us)
        order = sorted({p.tenant for p in plan.new}, key=tenant_ids.__getitem__)
        index = {tenant: i for i, tenant in enumerate(order)}
        counts = [0] * len(order)
        parts: list[tuple[bytes, bytes]] = []
        # One list per column of the new rows (auditlog_append, schema/008_append_columns.sql).
        columns: list[list[Any]] = [[] for _ in range(_APPEND_COLUMNS)]
        given_tenants: list[int] = []
        given_ids: list[str] = []
        for p in plan.new:
            head, tail = rows.split_body(stored_bytes(p.event, p.tenant, 0, received_at))
            parts.append((head, tail))
            t = index[p.tenant]
            for column, value in zip(
                columns, (t, counts[t], *rows.envelope(p.event), head, tail), strict=True
            ):
                column.append(value)
            counts[t] += 1
            if "id" in p.event.given:
                given_tenants.append(tenant_ids[p.tenant])
                given_ids.append(p.event.id)
        cur = await conn.execute(
            _APPEND,
            (
                arrays.int4_array([tenant_ids[t] for t in order]),
                arrays.int4_array(counts),
                received_us,
                *(encode(column) for encode, column in zip(_COLUMN_ARRAYS, columns, strict=True)),
                arrays.int4_array(given_tenants),
                arrays.text_array(given_ids),
            ),
        )
        row = await cur.fetchone()
        assert row is not None
        next_seq = dict(zip(order, row[0], strict=True))
        for p, (head, tail) in zip(plan.new, parts, strict=True):
            seq = next_seq[p.tenant]
            next_seq[p.tenant] = seq + 1
            p.seq = seq
            p.body = b"%s%d%s" % (head, seq, tail)
        return True

    async def _append_locked(self, conn: Conn, plan: GroupPlan, tenant_ids: dict[str, int]) -> None:
        """Lock first, then plan and insert with COPY: several round trips under the locks,
        for the rare group whose fast path met an id committed meanwhile."""
        counts: dict[str, int] = {}
        for request in plan.requests:
            counts[request.tenant] = counts.get(request.tenant, 0) + len(request.events)
        # The serialisation point: lock each tenant's row, in one order so that groups for
        # several tenants cannot deadlock, reserving a seq for every event of the group. The
        # reservation is corrected below once replays are known.
        start: dict[str, int] = {}
        for tenant in sorted(counts, key=tenant_ids.__getitem__):
            cur = await conn.execute(
                "UPDATE tenants SET next_seq = next_seq + %s WHERE tenant_id = %s"
                " RETURNING next_seq",
                (counts[tenant], tenant_ids[tenant]),
            )
            row = await cur.fetchone()
            assert row is not None
            start[tenant] = int(row[0]) - counts[tenant]
        # Under the lock, every event of the tenant committed before is visible here.
        plan.plan(await self._existing(conn, plan, tenant_ids))
        next_seq = dict(start)
        received_us = times.now_us()
        plan.assign(next_seq, received_us)
        for tenant, seq in next_seq.items():
            if seq != start[tenant] + counts[tenant]:
                await conn.execute(
                    "UPDATE tenants SET next_seq = %s WHERE tenant_id = %s",
                    (seq, tenant_ids[tenant]),
                )
        if not plan.new:
            return
        async with conn.cursor() as cur, cur.copy(_COPY_EVENTS) as copy:
            copy.set_types(rows.TYPES)
            for p in plan.new:
                await copy.write_row(
                    rows.event_row(tenant_ids[p.tenant], p.seq, received_us, p.event, p.body)
                )

    # -- reading -----------------------------------------------------------------------

    async def get_event(self, tenant: str, event_id: str) -> bytes | None:
        if "\x00" in event_id:  # no stored id holds NUL, and PostgreSQL text cannot
            return None
        async with self._connection("reading an event") as conn:
            tenant_id = await self._tenant_id(conn, tenant, create=False)
            if tenant_id is None:
                return None
            cur = await conn.execute(
                "SELECT body FROM events WHERE tenant_id = %s AND id = %s AND seq >="
                " coalesce((SELECT horizon FROM horizons WHERE tenant_id = %s), 0) LIMIT 1",
                (tenant_id, event_id, tenant_id),
            )
            row = await cur.fetchone()
        return None if row is None else bytes(row[0])

    async def query(self, tenant: str, query: Query) -> Page:
        deadline = time.monotonic() + self._settings.query_timeout_ms / 1000
        found: list[tuple[int, bytes]] = []
        horizon = 0
        async with self._connection("query", read=True) as conn:
            if querysql.searches(query):
                cur = await conn.execute(
                    "SELECT t.tenant_id, coalesce(p.next_seq, 0), t.next_seq,"
                    " coalesce(h.horizon, 0) FROM tenants AS t"
                    " LEFT JOIN index_progress AS p ON p.tenant_id = t.tenant_id"
                    " LEFT JOIN horizons AS h ON h.tenant_id = t.tenant_id WHERE t.name = %s",
                    (tenant,),
                )
                row = await cur.fetchone()
                if row is None:
                    return Page((), None, False)
                tenant_id, indexed, size, horizon = (int(v) for v in row)
                query = above_horizon(query, horizon)
                compiled = await self._by_numbers(conn, tenant_id, query, indexed, size)
                if compiled is None:
                    compiled = querysql.compile_query(tenant_id, query, indexed, size)
            else:  # the events table alone: the tenant's id is all it needs (and never changes)
                known = await self._tenant_id(conn, tenant, create=False)
                if known is None:
                    return Page((), None, False)
                cur = await conn.execute(
                    "SELECT horizon FROM horizons WHERE tenant_id = %s", (known,)
                )
                row = await cur.fetchone()
                if row is not None:
                    horizon = int(row[0])
                    query = above_horizon(query, horizon)
                compiled = querysql.compile_query(known, query, 0)
            position = compiled.start
            for segment in compiled.segments:
                reached = position
                # What the store checks on each candidate: the words only where SQL did not.
                checked = replace(query, text=()) if segment.words_decided else query
                if segment.walk is not None:
                    walked = await self._walk(
                        conn, segment, checked, found, position, deadline, horizon
                    )
                    if walked is None:
                        if len(found) > query.limit:
                            break
                        continue
                    reached = walked
                if len(found) > query.limit:
                    break
                await self._fetch(conn, segment, checked, found, reached, deadline)
                if len(found) > query.limit:
                    break
                if found:
                    position = found[-1][0]
        more = len(found) > query.limit
        found = found[: query.limit]
        last = found[-1][0] if found else None
        return Page(tuple(body for _, body in found), last, more, horizon)

    async def _by_numbers(
        self, conn: Conn, tenant_id: int, query: Query, indexed: int, size: int
    ) -> querysql.CandidateQuery | None:
        """The candidates read through the numbers index, when the query has a numeric range
        that the index answers (the path holds no strings) with few numbers in it."""
        path = numbers.range_path(query.conditions)
        if path is None:
            return None
        cur = await conn.execute(
            "SELECT flag FROM path_flags WHERE tenant_id = %s AND path = %s",
            (tenant_id, numbers.path_id(path)),
        )
        flags = {str(flag) for (flag,) in await cur.fetchall()}
        if "s" in flags:
            return None
        span = numbers.number_range(query.conditions, single="m" not in flags)
        if span is None:
            return None
        probe = querysql.numbers_probe(tenant_id, span, indexed)
        # Counting a common range's numbers costs more than walking to its page (~1 µs a
        # number); PostgreSQL's estimate costs a plan and tells the surely common ones.
        cur = await conn.execute(probe.estimate, probe.params, prepare=False)
        plan = await cur.fetchone()
        common = plan is not None and _plan_rows(plan[0]) >= _SURELY_COMMON_NUMBERS
        if not common:
            cur = await conn.execute(
                probe.count, (*probe.params, self.number_candidates), prepare=False
            )
            row = await cur.fetchone()
            common = row is None or int(row[0]) >= self.number_candidates
        # A common range walks its numbers in seq order (or, with conditions on columns,
        # takes the ordinary plan: None).
        return querysql.numbers_query(tenant_id, query, indexed, size, span, common)

    @staticmethod
    def _keep(
        query: Query, found: list[tuple[int, bytes]], seq: int, time_us: int, body: bytes
    ) -> bool:
        """Add a candidate to the page if it matches; whether the page (plus one) is full."""
        if body_matches(body, time_us, query):
            found.append((seq, body))
        return len(found) > query.limit

    def _check_deadline(self, deadline: float) -> None:
        if time.monotonic() > deadline:
            raise Unavailable("query: the query took too long and was stopped", self._retry)

    async def _fetch(
        self,
        conn: Conn,
        segment: querysql.Segment,
        query: Query,
        found: list[tuple[int, bytes]],
        position: int,
        deadline: float,
    ) -> None:
        """Fill the page from a segment's planned statement, in growing chunks."""
        fetch = query.limit + 1
        if segment.loose:
            fetch += fetch // _LOOSE_SPARE
        while True:
            cur = await conn.execute(
                segment.sql, (*segment.params, position, fetch), prepare=not segment.replan
            )
            candidates = await cur.fetchall()
            for seq, time_us, body in candidates:
                if self._keep(query, found, int(seq), int(time_us), bytes(body)):
                    return
            if len(candidates) < fetch:
                return
            self._check_deadline(deadline)
            position = int(candidates[-1][0])
            fetch = min(fetch * 4, _MAX_CHUNK)

    async def _walk(
        self,
        conn: Conn,
        segment: querysql.Segment,
        query: Query,
        found: list[tuple[int, bytes]],
        position: int,
        deadline: float,
        horizon: int,
    ) -> int | None:
        """Walk the tenant's events in seq order while that finds the page sooner than the
        GIN indexes would.

        The indexes find every match at once, but then all of them are read and sorted to
        take the first page: fast for a rare value (~12 µs a match), slow for a common one.
        Walking in seq order tests each row (~1 µs) and finds a common value's page after a
        few thousand rows, a rare one's only after most of the log. PostgreSQL's estimate of
        the matches (a plan, from its sample of the columns) comes first:

        * at ``_SURELY_COMMON`` or more, the first window is as many rows as that density
          needs for the page (at most ``_WALK_CHEAP``), and the indexes are never counted;
        * under ``_LIKELY_FEW`` (a value outside the sample's most common ones, which a
          first window would most likely not meet), the indexes are asked at once how many
          matches there are (``_common``): with few, their candidates are read;
        * in between, the walk starts with a small window.

        The walk goes on while the rest of the page is expected soon, from the density of
        matches since the first one. Matches cluster (a run of other events sits at the head
        of many logs; a burst of matches may be followed by none), so when that expectation
        is poor (no match in a window, a window with under half the matches expected, the
        rest expected beyond ``_WALK_CHEAP`` rows from fewer than ``_TRUSTED_MATCHES``
        matches) the indexes are asked once, if they were not. Returns ``None`` when the
        page is full, the segment walked to its end or its few candidates read (``_read``),
        else the position from which the indexes should find the rest (past the walk's
        bound). ``horizon``: the tenant's first kept seq, where the segment begins.
        """
        assert segment.walk is not None
        walked = since_first = matched = 0
        bound = _WALK_MAX
        estimated = await self._estimated(conn, segment, position)
        window = _PROBE_ROWS
        asked = common = estimated >= _SURELY_COMMON
        if common:
            if query.order == "desc":
                ahead = min(position, segment.below) - horizon
            else:
                ahead = segment.below - max(position + 1, horizon)
            wanted = (query.limit + 1 - len(found)) * max(ahead, 1) / max(estimated, 1.0)
            window = min(max(int(wanted), _PROBE_ROWS), _WALK_CHEAP, bound)
        elif estimated < _LIKELY_FEW:
            asked = True
            if await self._read_if_few(conn, segment, query, found, position, deadline):
                return None
            common = True
        while True:
            cur = await conn.execute(segment.walk, (*segment.walk_params, position, window))
            rows = await cur.fetchall()
            reached, top, count = rows[0][0], rows[0][1], int(rows[0][2])
            hits = [(int(r[3]), int(r[4]), bytes(r[5])) for r in rows if r[3] is not None]
            expected_hits = window * matched / since_first if matched else 0.0
            if matched:
                since_first += count
            elif hits:
                # The rows from the first match on (exact where the window's seqs have no gaps).
                span = abs(int(top) - int(reached)) + 1
                since_first += -(-count * (abs(hits[0][0] - int(reached)) + 1) // span)
            for seq, time_us, body in hits:
                if self._keep(query, found, seq, time_us, body):
                    return None
            matched += len(hits)
            if count < window:
                return None  # the whole segment is walked
            walked += count
            position = int(reached)
            self._check_deadline(deadline)
            if matched == 0:
                expected = None
                poor = True
            else:
                expected = (query.limit + 1 - len(found)) * since_first // matched
                poor = len(hits) < expected_hits / 2 or (
                    matched < _TRUSTED_MATCHES and expected > _WALK_CHEAP
                )
            if walked >= bound or (expected is not None and walked + expected > bound):
                # Past the bound, the indexes take over unless they hold a common value:
                # reading and sorting all its candidates costs more than walking on.
                if bound >= _WALK_COMMON_MAX:
                    return position
                if not common and await self._read_if_few(
                    conn, segment, query, found, position, deadline
                ):
                    return None
                bound = _WALK_COMMON_MAX
            if poor and not asked:
                asked = True
                if await self._read_if_few(conn, segment, query, found, position, deadline):
                    return None
                common = True
            if expected is None:
                window = min(window * 4, bound - walked)
            else:
                window = min(max(expected + expected // 4 + 16, _PROBE_ROWS), bound - walked)

    async def _read_if_few(
        self,
        conn: Conn,
        segment: querysql.Segment,
        query: Query,
        found: list[tuple[int, bytes]],
        position: int,
        deadline: float,
    ) -> bool:
        """Ask the GIN indexes for the segment's candidates past ``position`` (``_common``);
        with few, fill the page from them, where the indexes found them. Whether it did."""
        few = await self._common(conn, segment, position)
        if few is None:
            return False
        await self._read(conn, segment, query, found, few, deadline)
        return True

    async def _estimated(self, conn: Conn, segment: querysql.Segment, position: int) -> float:
        """PostgreSQL's estimate of the segment's candidates past ``position`` (``EXPLAIN``:
        a plan, about 0.4 ms, nothing counted). It tells a common value from a rare one, if
        not how rare: for a word or a value outside the sample's most common ones it is a
        bound (half the least common one's frequency, or a fixed fraction for JSON paths)."""
        assert segment.estimate is not None
        cur = await conn.execute(segment.estimate, (*segment.probe_params, position), prepare=False)
        row = await cur.fetchone()
        return 0.0 if row is None else _plan_rows(row[0])

    async def _common(
        self, conn: Conn, segment: querysql.Segment, position: int
    ) -> list[int] | None:
        """``None`` when the GIN indexes find at least ``_COMMON_MATCHES`` candidates past
        ``position``: too many to read and sort for one page. Otherwise the seqs of every
        candidate, which the probe found already (their events are read by seq: building
        the index's bitmap again to read them would cost as much as the probe did).

        Counting them builds the index's whole bitmap of a value, which for a common one
        costs more than walking to its page (~8 ms for 20,000 matches): it is only asked
        where PostgreSQL's estimate was below ``_SURELY_COMMON`` (``_walk``). A value common
        in the table but not in this tenant's log is walked, up to ``_WALK_COMMON_MAX``
        rows, before the indexes take over (the bound of every walk once the estimate or
        this said common; ``_WALK_MAX`` otherwise).
        """
        assert segment.probe is not None
        # Planned for its values, as the segment's statement (querysql.Segment.replan).
        cur = await conn.execute(
            segment.probe, (*segment.probe_params, position, _COMMON_MATCHES), prepare=False
        )
        seqs = [int(seq) for (seq,) in await cur.fetchall()]
        return None if len(seqs) >= _COMMON_MATCHES else seqs

    async def _read(
        self,
        conn: Conn,
        segment: querysql.Segment,
        query: Query,
        found: list[tuple[int, bytes]],
        seqs: list[int],
        deadline: float,
    ) -> None:
        """Fill the page from a segment's every candidate (``seqs``, fewer than
        ``_COMMON_MATCHES``): their events in page order, a chunk at a time, each checked."""
        seqs.sort(reverse=query.order == "desc")
        start = 0
        while start < len(seqs):
            fetch = query.limit + 1 - len(found)
            fetch += fetch // _LOOSE_SPARE
            chunk = seqs[start : start + fetch]
            start += len(chunk)
            cur = await conn.execute(querysql.EVENTS_BY_SEQ, (segment.tenant_id, chunk))
            rows = {int(r[0]): (int(r[1]), bytes(r[2])) for r in await cur.fetchall()}
            for seq in chunk:
                if seq in rows and self._keep(query, found, seq, *rows[seq]):
                    return
            self._check_deadline(deadline)

"""Export (API.md §10): every matching event of a tenant, in ascending seq, as NDJSON or CSV.

The set is fixed when the export starts: the tenant's durable log size then (``log_size``,
answered as ``Auditlog-Log-Size``) bounds every read, so events committed during the export
are left out, and an export resumed with ``after_seq`` (and ``before_seq`` = that size) gives
exactly the rest. The events are read page by page, each page a query of its own (its own
short read transaction: no snapshot is held across pages, no lock is taken that a writer
waits on), and each page is turned into bytes and handed to the client before the next is
read, so the server holds one page whatever the size of the export.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass

from auditlog.errors import BadRequest, RateLimited
from auditlog.model.credentials import EVENTS_READ, Credential
from auditlog.model.csvrows import CsvWriter, parse_columns
from auditlog.model.query import Query
from auditlog.model.selection import parse_selection
from auditlog.service.auth import bind, require
from auditlog.service.chunks import Chunks
from auditlog.service.pruned import reaches_below
from auditlog.service.selfaudit import SelfAudit
from auditlog.storage.base import Store

FORMATS = {"ndjson": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}
OWN = ("format", "columns", "after_seq", "before_seq")
#: Events turned into CSV at a time. Rows are made on the event loop at ~13 µs an event
#: (bench/RESULTS.md §6), so a whole page (500) would hold every other request up for ~6 ms
#: at each step; a slice of 100 holds it ~1.3 ms, and each slice costs a chunk's round trip.
CSV_SLICE = 100


@dataclass(frozen=True, slots=True)
class Export:
    """An export begun: its media type, the log size that fixes it, and its bytes."""

    media_type: str
    extension: str
    log_size: int
    chunks: Chunks
    #: The tenant's horizon, when the export's range began below it (API.md §14): the events
    #: before it are pruned, and the export begins with the first kept one.
    pruned_before: int | None = None


class Exporter:
    """Starts exports for credentials; ``page_events`` events are read (and held) at a time.

    At most ``max_running`` exports run at once in this process; past that one is refused
    with 429 and ``Retry-After``.
    """

    def __init__(
        self,
        store: Store,
        audit: SelfAudit | None,
        page_events: int = 500,
        max_running: int = 16,
        retry_after: int = 1,
    ) -> None:
        self._store = store
        self._audit = audit
        self._page = page_events
        self._max_running = max_running
        self._retry_after = retry_after
        self.running = 0

    async def start(self, credential: Credential, params: Sequence[tuple[str, str]]) -> Export:
        """Check the parameters, fix the set, record the read, and return the export."""
        require(credential, EVENTS_READ)
        query, own = parse_selection(params, OWN)
        query = bind(credential, query)
        fmt = own.get("format", "ndjson")
        if fmt not in FORMATS:
            raise BadRequest(f"parameter 'format': {fmt!r} is not ndjson or csv")
        columns = parse_columns(own.get("columns"))
        if columns and fmt != "csv":
            raise BadRequest("parameter 'columns' applies to format=csv only")
        if self.running >= self._max_running:
            raise RateLimited(
                f"{self.running} exports are running, as many as this server runs at once; "
                "retry shortly",
                self._retry_after,
            )
        self.running += 1
        try:
            sizes = await self._store.durable_log_sizes(credential.tenant)
            log_size = sizes.get(credential.tenant, 0)
            horizon = await self._store.horizon(credential.tenant)
            bound = log_size if query.before_seq is None else min(log_size, query.before_seq)
            query = dataclasses.replace(query, before_seq=bound, limit=self._page)
            if self._audit is not None:
                shown = [[name, value] for name, value in params]
                await self._audit.read(
                    credential, "GET /v1/events/export", {"query": shown, "log_size": log_size}
                )
        except BaseException:
            self.running -= 1
            raise
        writer = CsvWriter(columns) if fmt == "csv" else None
        chunks = Chunks(self._chunks(credential.tenant, query, writer), self._finished)
        pruned = horizon if reaches_below(query, horizon) else None
        return Export(FORMATS[fmt], fmt, log_size, chunks, pruned)

    def _finished(self) -> None:
        self.running -= 1

    async def _chunks(
        self, tenant: str, query: Query, writer: CsvWriter | None
    ) -> AsyncGenerator[bytes, None]:
        if writer is not None:
            yield writer.header()
        while True:
            page = await self._store.query(tenant, query)
            if page.bodies:
                if writer is not None:
                    for start in range(0, len(page.bodies), CSV_SLICE):
                        yield writer.rows(page.bodies[start : start + CSV_SLICE])
                else:
                    yield b"\n".join(page.bodies) + b"\n"
            if not page.more or page.last_seq is None:
                return
            query = dataclasses.replace(query, after_seq=page.last_seq)

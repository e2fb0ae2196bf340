"""``GET /v1/events/export``: every matching event, streamed as NDJSON or CSV (API.md §10)."""

from __future__ import annotations

from auditlog.model.credentials import EVENTS_READ, Credential
from auditlog.model.csvrows import FIXED, MAX_COLUMNS
from auditlog.server.asgi import Request, StreamingResponse
from auditlog.server.handlers.events import PRUNED_BEFORE_DOC, pruned_before
from auditlog.server.openapi import Operation
from auditlog.server.openapi.parameters import FILTERS, query_param
from auditlog.server.routing import Route
from auditlog.service.export import Exporter
from auditlog.service.pruned import PRUNED_BEFORE_HEADER

LOG_SIZE_HEADER = "Auditlog-Log-Size"

_SEQ = {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}

_EXPORT = Operation(
    operation_id="exportEvents",
    summary="Export every matching event, in ascending seq",
    description=(
        "Streams every event of the caller's tenant that satisfies the filters of "
        "`GET /v1/events` (not `cursor`, `limit` nor `order`: 400), in ascending `seq`, with "
        "constant memory on the server whatever their number. The set is fixed when the "
        f"export starts: `{LOG_SIZE_HEADER}` gives the tenant's log size then, and no event "
        "committed later is included. An interrupted export resumes with `after_seq` (the "
        f"last seq received) and `before_seq` (the first answer's `{LOG_SIZE_HEADER}`), and "
        "gives exactly the rest. Where the tenant's retention pruned the start of its log, "
        "an export whose range begins below the first kept seq begins with it, and "
        f"`{PRUNED_BEFORE_HEADER}` says where that is.\n\n"
        "`format=ndjson` (the default): one stored event per line, byte for byte as "
        "`GET /v1/events` returns it. `format=csv` (RFC 4180, UTF-8, CRLF, a header row): "
        "the columns " + ", ".join(f"`{c}`" for c in FIXED) + " (`data` as compact JSON), "
        "and the field paths of `columns=` after them (a string as it is, any other value "
        "as compact JSON, several values as a JSON array, nothing when absent). A cell a "
        "spreadsheet would run as a formula (one starting with `=`, `+`, `-`, `@`, a tab or "
        "a carriage return) is written with a leading `'`.\n\n"
        "A complete export ends with the last chunk of the chunked body; a body cut short "
        "(the connection lost, storage failing midway) ends without it. The read is recorded "
        "in the tenant's log (`auditlog.log.read`)."
    ),
    tag="events",
    parameters=(
        query_param(
            "format",
            "`ndjson` (default) or `csv`.",
            {"type": "string", "enum": ["ndjson", "csv"], "default": "ndjson"},
        ),
        query_param(
            "columns",
            f"CSV only: comma-separated field paths added as columns (at most {MAX_COLUMNS}).",
            {"type": "string"},
            examples={"paths": {"value": "data.amount,data.location.city"}},
        ),
        query_param("after_seq", "Only events after this seq (resuming).", _SEQ),
        query_param(
            "before_seq",
            f"Only events before this seq: the `{LOG_SIZE_HEADER}` of the export resumed.",
            _SEQ,
        ),
        *FILTERS,
    ),
    responses={
        "200": {
            "description": "The events, streamed.",
            "headers": {
                LOG_SIZE_HEADER: {
                    "description": "The tenant's log size when the export started: it holds "
                    "only events with a smaller seq.",
                    "schema": {"type": "integer", "minimum": 0},
                },
                PRUNED_BEFORE_HEADER: PRUNED_BEFORE_DOC,
            },
            "content": {
                "application/x-ndjson": {"schema": {"type": "string"}},
                "text/csv": {"schema": {"type": "string"}},
            },
        }
    },
    errors=(400, 403, 503),
)


def routes(exporter: Exporter) -> list[Route]:
    async def export(request: Request, credential: Credential | None) -> StreamingResponse:
        assert credential is not None
        started = await exporter.start(credential, request.query_params())
        filename = f'attachment; filename="{credential.tenant}-events.{started.extension}"'
        return StreamingResponse(
            200,
            started.chunks,
            started.media_type,
            request.receive,
            headers=[
                (LOG_SIZE_HEADER.lower().encode(), str(started.log_size).encode()),
                (b"content-disposition", filename.encode()),
                (b"cache-control", b"no-store"),
                (b"x-content-type-options", b"nosniff"),
                *pruned_before(started.pruned_before),
            ],
        )

    return [Route("GET", "/v1/events/export", export, EVENTS_READ, "events.export", doc=_EXPORT)]

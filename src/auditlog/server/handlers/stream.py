"""``GET /v1/events/stream``: the tenant's events live, as Server-Sent Events (API.md §10)."""

from __future__ import annotations

from auditlog.model.credentials import EVENTS_READ, Credential
from auditlog.server.asgi import Request, StreamingResponse
from auditlog.server.openapi import JSON, Operation
from auditlog.server.openapi.parameters import FILTERS, query_param
from auditlog.server.routing import Route
from auditlog.service.live import LiveStreams

_EVENT: JSON = {
    "type": "object",
    "description": "One SSE event: `event: audit`, the stored event as its `data` (one line of "
    "JSON), its seq as its `id`. The stream's first block sets `retry` (milliseconds).",
    "properties": {
        "event": {"const": "audit"},
        "data": {"type": "string", "contentMediaType": "application/json"},
        "id": {"type": "string", "pattern": "^[0-9]+$"},
        "retry": {"type": "integer", "minimum": 0},
    },
    "required": ["event", "data", "id"],
}


_STREAM = Operation(
    operation_id="streamEvents",
    summary="The tenant's matching events as they are committed (Server-Sent Events)",
    description=(
        "A `text/event-stream` of every event of the caller's tenant that satisfies the "
        "filters of `GET /v1/events` (not `cursor`, `limit` nor `order`: 400), in `seq` "
        "order, as each is durably committed. Each is an SSE event with `id: <seq>`, "
        "`event: audit` and `data: <the stored event>` on one line.\n\n"
        "It begins with the events committed after the request, or, with the header "
        "`Last-Event-ID` (what an EventSource sends when it reconnects) or `after_seq`, "
        "after that seq: what was missed is replayed first, then the stream goes live, "
        "without a gap or a repeat between the two. The header wins over the parameter. "
        "Where the tenant's retention pruned the start of its log, a position before the "
        "first kept seq H replays from it, after a comment `: pruned before seq H`. A "
        "comment line (`: keep-alive`) goes out whenever nothing else has for "
        "`live_stream_keepalive_seconds` (15 s). A reader that falls more than "
        "`live_stream_buffer_bytes` (4 MiB) behind is disconnected (after a comment saying "
        "so, if it still reads); it reconnects with `Last-Event-ID` and loses nothing. The "
        "stream also ends when the server shuts down. A credential may hold "
        "`live_streams_per_credential` (10) streams open, a server "
        "`live_streams_per_process` (1000); past either, 429 with `Retry-After`. Opening a "
        "stream is recorded in the tenant's log (`auditlog.log.read`)."
    ),
    tag="events",
    parameters=(
        query_param(
            "after_seq",
            "Begin after this seq (as `Last-Event-ID` does).",
            {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
        ),
        {
            "name": "Last-Event-ID",
            "in": "header",
            "description": "The id (seq) of the last event received: begin after it.",
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
        },
        *FILTERS,
    ),
    responses={
        "200": {
            "description": "The event stream; it ends only when the reader is too slow or the "
            "server stops.",
            # Before OpenAPI 3.2 (itemSchema), the schema of an event stream is that of each
            # event, read as its fields; comments (keep-alives) are not events.
            "content": {"text/event-stream": {"schema": _EVENT}},
        }
    },
    errors=(400, 403, 503),
)


def routes(live: LiveStreams) -> list[Route]:
    async def stream(request: Request, credential: Credential | None) -> StreamingResponse:
        assert credential is not None
        opened = await live.open(
            credential, request.query_params(), request.headers.get("last-event-id")
        )
        return StreamingResponse(
            200,
            opened.chunks,
            "text/event-stream; charset=utf-8",
            request.receive,
            headers=[
                (b"cache-control", b"no-store"),
                (b"x-content-type-options", b"nosniff"),
                # Proxies that buffer responses (nginx) would hold the events back.
                (b"x-accel-buffering", b"no"),
            ],
            abort=opened.abort,
            scope=request.scope,
        )

    return [Route("GET", "/v1/events/stream", stream, EVENTS_READ, "events.stream", doc=_STREAM)]

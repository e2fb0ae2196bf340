"""``/v1/events``: write, get and query events."""

from __future__ import annotations

from auditlog.errors import BadRequest, UnsupportedMediaType
from auditlog.model.credentials import EVENTS_READ, EVENTS_WRITE, Credential
from auditlog.server.asgi import Request, Response
from auditlog.server.routing import Route
from auditlog.service.events import Events
from auditlog.service.proofs import LogProofs

_NDJSON = ("application/x-ndjson", "application/ndjson", "application/jsonlines")


def body_format(content_type: str | None) -> bool:
    """Whether a body of this Content-Type is NDJSON; 415 for types we do not read.

    JSON (``application/json`` or any ``+json`` type) and NDJSON are read; a missing
    Content-Type is read as JSON.
    """
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    if media in _NDJSON:
        return True
    if media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    ):
        return False
    raise UnsupportedMediaType(
        f"Content-Type {media!r} is not accepted; send application/json or application/x-ndjson"
    )


def wait_for_checkpoint(request: Request) -> bool:
    """Whether ``POST /v1/events`` asks to wait for a checkpoint (``?wait=checkpoint``).

    Other query parameters are ignored, as they always were; a ``wait`` with another value,
    or given twice, is 400.
    """
    values = [value for name, value in request.query_params() if name == "wait"]
    if not values:
        return False
    if len(values) > 1:
        raise BadRequest("parameter 'wait' is given more than once")
    if values[0] != "checkpoint":
        raise BadRequest(f"wait {values[0]!r} is not supported; expected 'checkpoint'")
    return True


def routes(events: Events, max_body_bytes: int, log: LogProofs | None = None) -> list[Route]:
    async def create(request: Request, credential: Credential | None) -> Response:
        assert credential is not None
        wait = log is not None and wait_for_checkpoint(request)
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding != "identity":
            raise UnsupportedMediaType(
                f"Content-Encoding {encoding!r} is not accepted; send the body uncompressed"
            )
        ndjson = body_format(request.headers.get("content-type"))
        events.admit(credential)
        body = await request.body(max_body_bytes)
        answer = await events.write(credential, body, ndjson)
        headers = [(b"location", answer.location.encode())] if answer.location else None
        if wait:
            assert log is not None
            return Response(
                answer.status, await log.cover(credential, answer.body), headers=headers
            )
        return Response(answer.status, answer.body, headers=headers)

    async def get(request: Request, credential: Credential | None) -> Response:
        assert credential is not None
        answer = await events.get(credential, request.path_params["id"])
        return Response(answer.status, answer.body)

    async def search(request: Request, credential: Credential | None) -> Response:
        assert credential is not None
        answer = await events.query(credential, request.query_params())
        return Response(answer.status, answer.body)

    return [
        Route("POST", "/v1/events", create, EVENTS_WRITE, "events.create"),
        Route("GET", "/v1/events", search, EVENTS_READ, "events.query"),
        Route("GET", "/v1/events/{id}", get, EVENTS_READ, "events.get"),
    ]

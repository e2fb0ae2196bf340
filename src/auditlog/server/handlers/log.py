"""``/v1/log``: the tenant's checkpoint, inclusion and consistency proofs, and public key."""

from __future__ import annotations

from auditlog.model.credentials import LOG_READ, Credential
from auditlog.server.asgi import Request, Response
from auditlog.server.routing import Route
from auditlog.service.proofs import LogProofs

TEXT = "text/plain; charset=utf-8"


def wants_text(accept: str | None) -> bool:
    """Whether an ``Accept`` header prefers ``text/plain`` to JSON (the default).

    Media ranges are weighed by ``q``; on a tie, or when neither is named, JSON is answered.
    """
    if not accept:
        return False
    text_q = json_q = -1.0
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        media = media.lower()
        if media == "text/plain":
            text_q = max(text_q, q)
        elif media in ("application/json", "application/*", "*/*"):
            json_q = max(json_q, q)
    return text_q > 0 and text_q > json_q


def routes(log: LogProofs) -> list[Route]:
    async def checkpoint(request: Request, credential: Credential | None) -> Response:
        assert credential is not None
        latest = await log.checkpoint(credential)
        if wants_text(request.headers.get("accept")):
            return Response(200, latest.note.encode("utf-8"), TEXT)
        return Response.json(200, log.checkpoint_json(credential.tenant, latest))

    async def inclusion(request: Request, credential: Credential | None) -> Response:
        assert credential is not None
        return Response.json(200, await log.inclusion(credential, request.query_params()))

    async def consistency(request: Request, credential: Credential | None) -> Response:
        assert credential is not None
        return Response.json(200, await log.consistency(credential, request.query_params()))

    async def public_key(request: Request, credential: Credential | None) -> Response:
        assert credential is not None
        key = await log.public_key(credential)
        if wants_text(request.headers.get("accept")):
            return Response(200, (key["vkey"] + "\n").encode("ascii"), TEXT)
        return Response.json(200, key)

    return [
        Route("GET", "/v1/log/checkpoint", checkpoint, LOG_READ, "log.checkpoint"),
        Route("GET", "/v1/log/proof/inclusion", inclusion, LOG_READ, "log.inclusion"),
        Route("GET", "/v1/log/proof/consistency", consistency, LOG_READ, "log.consistency"),
        Route("GET", "/v1/log/public-key", public_key, LOG_READ, "log.public_key"),
    ]

"""``/v1/auth``: who the caller is."""

from __future__ import annotations

from auditlog.model import times
from auditlog.model.credentials import Credential
from auditlog.server.asgi import Request, Response
from auditlog.server.routing import AUTHENTICATED, Route


def routes() -> list[Route]:
    async def whoami(request: Request, credential: Credential | None) -> Response:
        assert credential is not None
        expires = None if credential.expires_us is None else times.format_us(credential.expires_us)
        return Response.json(
            200,
            {
                "principal": credential.principal,
                "tenant": credential.tenant,
                "scopes": sorted(credential.scopes),
                "expires_at": expires,
                "credential": {
                    "kind": credential.kind,
                    "id": credential.credential_id,
                    "name": credential.name,
                },
            },
        )

    return [Route("GET", "/v1/auth/whoami", whoami, AUTHENTICATED, "auth.whoami")]

"""``/v1/auth``: logging in for a token, and who the caller is."""

from __future__ import annotations

from typing import Any

from auditlog.errors import BadRequest, UnsupportedMediaType
from auditlog.model import times
from auditlog.model.credentials import Credential
from auditlog.model.selection import filter_object
from auditlog.server.asgi import Request, Response
from auditlog.server.handlers.events import body_format
from auditlog.server.openapi import Operation, json_content, ref, schema_ref
from auditlog.server.routing import AUTHENTICATED, Route
from auditlog.service.login import Logins

#: A login body is two short strings; anything much larger is refused (413) unread.
LOGIN_BODY_BYTES = 8192
#: RFC 6749 §5.1: an answer holding a token must not be cached.
NO_STORE = [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")]


async def login_fields(request: Request, strict: bool) -> tuple[str, str]:
    """The ``username`` and ``password`` of a JSON login body; 400 (or 413, 415) otherwise.

    ``strict`` refuses any other field, as every ``/v1`` body does; the first version's
    ``/login`` ignored other fields, and so does its adapter.
    """
    content_type = request.headers.get("content-type")
    if content_type and body_format(content_type):
        raise UnsupportedMediaType("a login body is one JSON object; send application/json")
    body: Any = await request.json(LOGIN_BODY_BYTES)
    if not isinstance(body, dict):
        raise BadRequest('the body must be a JSON object {"username": ..., "password": ...}')
    for name in ("username", "password"):
        if name not in body:
            raise BadRequest(f"the body lacks {name!r}")
        if not isinstance(body[name], str):
            raise BadRequest(f"{name!r} must be a string")
    if strict:
        unknown = sorted(set(body) - {"username", "password"})
        if unknown:
            raise BadRequest(f"unknown field {unknown[0]!r}; expected username and password")
    return body["username"], body["password"]


# -- the documentation of the routes (OpenAPI) ------------------------------------------------

_TOKEN = Operation(
    operation_id="login",
    summary="Log in for a token",
    description="A person's username and password (made by `auditlog users add`) for a "
    "short-lived login token (a JWT signed with Ed25519) carrying the user's tenant and "
    "scopes. Needs no credential. A wrong password and an unknown username get the same "
    "401, in the same time. Failed logins are limited per username and per client "
    "address (429 with `Retry-After`); past the limit even the right password is refused "
    "until `Retry-After` has passed.",
    tag="auth",
    request_body={
        "required": True,
        "content": json_content(schema_ref("Login")),
    },
    responses={
        "200": {
            "description": "The token.",
            "headers": {"Cache-Control": ref("headers", "CacheControl")},
            "content": json_content(schema_ref("Token")),
        }
    },
    errors=(400, 401, 413, 415, 429, 503),
)

_WHOAMI = Operation(
    operation_id="whoami",
    summary="Who the caller is",
    description="The principal, tenant, scopes and expiry of the credential sent; any "
    "valid credential may ask, whatever its scopes.",
    tag="auth",
    responses={
        "200": {"description": "The caller.", "content": json_content(schema_ref("Whoami"))}
    },
    errors=(401, 503),
)


def routes(logins: Logins) -> list[Route]:
    async def token(request: Request, credential: Credential | None) -> Response:
        username, password = await login_fields(request, strict=True)
        issued = await logins.login(username, password, request.client)
        return Response.json(
            200,
            {
                "access_token": issued.token,
                "token_type": "Bearer",
                "expires_in": issued.expires_in,
            },
            headers=NO_STORE,
        )

    async def whoami(request: Request, credential: Credential | None) -> Response:
        assert credential is not None
        expires = None if credential.expires_us is None else times.format_us(credential.expires_us)
        answer: dict[str, object] = {
            "principal": credential.principal,
            "tenant": credential.tenant,
            "scopes": sorted(credential.scopes),
            "expires_at": expires,
            "credential": {
                "kind": credential.kind,
                "id": credential.credential_id,
                "name": credential.name,
            },
        }
        if credential.kind == "viewer":
            answer["filter"] = filter_object(credential.bound)
        return Response.json(200, answer)

    return [
        Route("POST", "/v1/auth/token", token, None, "auth.token", doc=_TOKEN),
        Route("GET", "/v1/auth/whoami", whoami, AUTHENTICATED, "auth.whoami", doc=_WHOAMI),
    ]

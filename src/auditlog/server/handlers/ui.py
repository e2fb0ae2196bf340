"""``/ui/``: the web console's files, served from the package (API.md §12).

The console is static: HTML, CSS and ES modules in ``auditlog/server/ui/``, read once at
start. It is a client of the public ``/v1`` API and nothing else; these routes only serve its
files, without a credential (the console asks for one itself).

Every answer carries a strict Content-Security-Policy: scripts, styles and connections from
this origin only, no inline script or style, no plugins, no framing but by the origins of
``ui_frame_ancestors`` (none by default), no form posting elsewhere; and
``X-Content-Type-Options``, ``Referrer-Policy: no-referrer`` (a viewer link's token must not
leak to another site) and a validator (``ETag``) so browsers revalidate after an upgrade.
"""

from __future__ import annotations

import hashlib
import re
from importlib import resources

from auditlog.errors import NotFound
from auditlog.model.credentials import Credential
from auditlog.server.asgi import Request, Response
from auditlog.server.openapi import Operation
from auditlog.server.openapi.parameters import path_param
from auditlog.server.routing import Route

#: A file of the console: a plain name, no dot first (no way out of the directory).
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}", re.ASCII)
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
}


def content_security_policy(frame_ancestors: str) -> str:
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; "
        f"form-action 'self'; frame-ancestors {frame_ancestors}"
    )


def load_files() -> dict[str, tuple[bytes, str]]:
    """Every file of the console by name, with its content type."""
    folder = resources.files("auditlog.server").joinpath("ui")
    files: dict[str, tuple[bytes, str]] = {}
    if not folder.is_dir():
        return files
    for entry in folder.iterdir():
        name = entry.name
        suffix = name[name.rfind(".") :] if "." in name else ""
        if entry.is_file() and _NAME.fullmatch(name) and suffix in _TYPES:
            files[name] = (entry.read_bytes(), _TYPES[suffix])
    return files


_INDEX = Operation(
    operation_id="console",
    summary="The web console",
    description="The console's page (HTML). It is a client of this API: it signs in with a "
    "username and password or an API key, or exchanges a viewer token given as `?token=`. "
    "No credential is needed to load it.",
    tag="operations",
    responses={"200": {"description": "The page.", "content": {"text/html": {}}}},
    errors=(),
)
_REDIRECT = Operation(
    operation_id="consoleRedirect",
    summary="The web console, without its slash",
    description="`308` to `/ui/`, with the same query string.",
    tag="operations",
    responses={"308": {"description": "Go to `/ui/`."}},
    errors=(),
)
_FILE = Operation(
    operation_id="consoleFile",
    summary="A file of the web console",
    description="A script, style sheet or image of the console; `404` for any other name.",
    tag="operations",
    parameters=(path_param("name", "The file's name."),),
    responses={"200": {"description": "The file."}},
    errors=(404,),
)


def routes(frame_ancestors: str) -> list[Route]:
    files = load_files()
    policy = content_security_policy(frame_ancestors).encode()
    tags = {name: hashlib.sha256(body).hexdigest()[:20] for name, (body, _) in files.items()}

    def answer(request: Request, name: str) -> Response:
        found = files.get(name)
        if found is None:
            raise NotFound(f"the console has no file {name!r}")
        body, content_type = found
        etag = f'"{tags[name]}"'.encode()
        headers = [
            (b"content-security-policy", policy),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"cache-control", b"no-cache"),
            (b"etag", etag),
        ]
        if request.headers.get("if-none-match", "").encode() == etag:
            response = Response(304, b"", content_type, headers)
            return response
        return Response(200, body, content_type, headers)

    async def index(request: Request, credential: Credential | None) -> Response:
        return answer(request, "index.html")

    async def file(request: Request, credential: Credential | None) -> Response:
        name = request.path_params["name"]
        if not _NAME.fullmatch(name):
            raise NotFound(f"the console has no file {name!r}")
        return answer(request, name)

    async def bare(request: Request, credential: Credential | None) -> Response:
        query = request.scope.get("query_string", b"")
        location = b"/ui/" + (b"?" + query if query else b"")
        return Response(308, b"", "text/plain", [(b"location", location)])

    return [
        Route("GET", "/ui", bare, None, "ui.redirect", doc=_REDIRECT),
        Route("GET", "/ui/", index, None, "ui.index", doc=_INDEX),
        Route("GET", "/ui/{name}", file, None, "ui.file", doc=_FILE),
    ]

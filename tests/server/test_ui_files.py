"""``/ui/``: the web console's files as the application serves them (API.md §12): every file
of the package's console directory, with a strict Content-Security-Policy and nothing else."""

from __future__ import annotations

import dataclasses
import re
from importlib import resources

import httpx
import pytest

from auditlog.config import ConfigError, load
from server.conftest import QUIET

pytestmark = pytest.mark.anyio

FILES = sorted(
    entry.name
    for entry in resources.files("auditlog.server").joinpath("ui").iterdir()
    if entry.is_file()
)
TYPES = {
    "html": "text/html; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "svg": "image/svg+xml",
}


def directives(response: httpx.Response) -> dict[str, str]:
    policy = response.headers["content-security-policy"]
    return {
        part.split(" ", 1)[0]: part.split(" ", 1)[1] if " " in part else ""
        for part in (p.strip() for p in policy.split(";"))
    }


def test_the_console_has_its_files() -> None:
    assert "index.html" in FILES
    assert any(name.endswith(".js") for name in FILES)
    assert all(name.rsplit(".", 1)[-1] in TYPES for name in FILES), FILES


@pytest.mark.parametrize("backend", ["memory"], indirect=True)
@pytest.mark.parametrize("name", FILES)
async def test_every_file_is_served_as_is_with_a_strict_policy(
    client: httpx.AsyncClient, name: str
) -> None:
    path = "/ui/" if name == "index.html" else f"/ui/{name}"
    response = await client.get(path)
    assert response.status_code == 200
    expected = resources.files("auditlog.server").joinpath("ui", name).read_bytes()
    assert response.content == expected
    assert response.headers["content-type"] == TYPES[name.rsplit(".", 1)[-1]]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    policy = directives(response)
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'"
    assert policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["base-uri"] == "'none'"
    assert "unsafe-inline" not in response.headers["content-security-policy"]
    # Revalidated by its validator.
    again = await client.get(path, headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""


@pytest.mark.parametrize("backend", ["memory"], indirect=True)
async def test_the_page_has_no_inline_script_or_style(client: httpx.AsyncClient) -> None:
    page = (await client.get("/ui/")).text
    for tag in re.findall(r"<script\b[^>]*>", page):
        assert "src=" in tag, tag
    assert "<style" not in page
    assert " style=" not in page
    assert not re.search(r"\son[a-z]+=", page)  # no inline event handlers
    # Only files of its own, by relative or absolute path of this origin.
    for reference in re.findall(r'(?:src|href)="([^"]+)"', page):
        assert not re.match(r"[a-z]+:|//", reference), reference


@pytest.mark.parametrize("backend", ["memory"], indirect=True)
@pytest.mark.parametrize(
    "path",
    [
        "/ui/nothing.js",
        "/ui/..%2Fapp.py",
        "/ui/%2e%2e%2fconfig.py",
        "/ui/.hidden",
        "/ui/__init__.py",
        "/ui/app.py",
        "/ui/index.html%00.js",
    ],
)
async def test_nothing_else_is_served(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 404, path
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("backend", ["memory"], indirect=True)
async def test_ui_without_its_slash_redirects_keeping_the_query(client: httpx.AsyncClient) -> None:
    response = await client.get("/ui?token=abc&x=1")
    assert response.status_code == 308
    assert response.headers["location"] == "/ui/?token=abc&x=1"
    assert (await client.get("/ui")).headers["location"] == "/ui/"


@pytest.mark.parametrize("backend", ["memory"], indirect=True)
@pytest.mark.parametrize(
    "settings",
    [dataclasses.replace(QUIET, ui_frame_ancestors="'self' https://app.example.com")],
    ids=["framed"],
)
async def test_the_frame_ancestors_come_from_the_setting(client: httpx.AsyncClient) -> None:
    response = await client.get("/ui/")
    assert directives(response)["frame-ancestors"] == "'self' https://app.example.com"


@pytest.mark.parametrize(
    "value", ["", "'none'; script-src *", "https://a.example\r\nX: y", "a,b", "'none' ;"]
)
def test_a_setting_that_would_break_the_policy_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="ui_frame_ancestors"):
        load(flags={"ui_frame_ancestors": value}, env={})

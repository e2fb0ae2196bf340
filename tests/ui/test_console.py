"""What the console is made of and how it is served: only files of the package, under a strict
Content-Security-Policy, with no inline script or style and no way for its modules to turn
text into markup or code; and nothing of it fetched from anywhere but the server.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from importlib import resources

import httpx
import pytest
from playwright.sync_api import Page

from ui.conftest import Console
from ui.steps import sign_in_with_key

pytestmark = pytest.mark.slow

FILES = sorted(
    entry.name
    for entry in resources.files("auditlog.server").joinpath("ui").iterdir()
    if entry.is_file()
)
MODULES = [name for name in FILES if name.endswith(".js")]


def source(name: str) -> str:
    return resources.files("auditlog.server").joinpath("ui", name).read_text(encoding="utf-8")


def test_every_file_is_served_under_a_strict_policy(console: Console) -> None:
    with httpx.Client(base_url=console.url) as client:
        for path in ["/ui/", *(f"/ui/{name}" for name in FILES)]:
            answer = client.get(path)
            assert answer.status_code == 200, path
            policy = answer.headers["content-security-policy"]
            directives = dict(
                [*part.split(" ", 1), ""][:2] for part in (p.strip() for p in policy.split(";"))
            )
            assert directives["script-src"] == "'self'", path
            assert directives["style-src"] == "'self'", path
            assert directives["default-src"] == "'none'", path
            assert directives["frame-ancestors"] == "'none'", path
            assert "unsafe" not in policy
            assert answer.headers["x-content-type-options"] == "nosniff"
            assert answer.headers["referrer-policy"] == "no-referrer"
        assert client.get("/ui/%2E%2E%2Fconfig.py").status_code == 404
        assert client.get("/ui/.hidden").status_code == 404
        assert client.get("/ui/nothing.js").status_code == 404


class Inline(HTMLParser):
    """Inline scripts, style elements, style attributes and event handler attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "script" and "src" not in names:
            self.found.append("an inline <script>")
        if tag == "style":
            self.found.append("a <style> element")
        self.found += [
            f"{name} on <{tag}>" for name in names if name == "style" or name.startswith("on")
        ]


def test_the_page_has_no_inline_script_or_style() -> None:
    parser = Inline()
    parser.feed(source("index.html"))
    assert parser.found == []


@pytest.mark.parametrize("name", MODULES)
def test_no_module_turns_text_into_markup_or_code(name: str) -> None:
    text = source(name)
    for sink in [r"\.innerHTML\b", r"\.outerHTML\s*=", r"insertAdjacentHTML", r"document\.write",
                 r"\beval\s*\(", r"new\s+Function\b", r"\.style\.", r"setAttribute\(\s*[\"']style",
                 r"setTimeout\(\s*[\"'`]", r"\blocalStorage\s*[.\[]", r"[\"'`]https?://"]:  # fmt: skip
        assert not re.search(sink, text), f"{name} uses {sink}"


def test_every_module_is_loaded_from_the_server_and_nothing_else(
    page: Page, console: Console
) -> None:
    loaded: list[str] = []
    page.on("request", lambda request: loaded.append(request.url))
    sign_in_with_key(page, console, console.key("ui-console", "events:read"))
    scripts = {url.rsplit("/", 1)[1] for url in loaded if url.endswith(".js")}
    assert scripts == set(MODULES)
    assert all(url.startswith(console.url + "/") for url in loaded)

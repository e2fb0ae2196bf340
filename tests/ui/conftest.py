"""The web console's tests: Playwright for Python driving Debian's Chromium against a real
``auditlog serve``.

* ``browser``: one Chromium per test module (``/usr/bin/chromium``; Playwright downloads no
  browser). Without Playwright or Chromium the tests skip and say why, except where the
  environment variable ``CI`` is set: there they fail.
* ``console``: one server for the session (SQLite in a temporary directory, on 127.0.0.1),
  with an admin key of the tenant ``acme`` and the login ``alice``; tests that change the
  server's settings or its stored bytes say so and use tenants, or servers, of their own.
* ``page``: a fresh browser context per test whose page reports every console error, uncaught
  exception, Content-Security-Policy violation and request to anywhere but the server; the test
  fails on any it did not expect (``page_problems.allow(...)``).
* ``artefacts``: where screenshots go (``$AUDITLOG_UI_ARTEFACTS`` or a temporary directory),
  printed at the end of the run; nothing of it is committed.

Every wait is bounded (``WAIT_MS``); nothing here measures speed.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from live_server import Server, auditlog, create_key, serving

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Playwright

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: The longest any single wait of these tests lasts, in milliseconds.
WAIT_MS = 10_000
PASSWORD = "correct horse battery staple"

_artefact_dirs: list[Path] = []


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if importlib.util.find_spec("playwright") is None:
        return "Playwright for Python is not installed (pip install -e '.[test]')"
    if not CHROMIUM.exists():
        return f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    return None


def require_browser() -> None:
    """Skip, saying why, when Playwright or Chromium is missing; in CI, fail instead."""
    reason = browser_missing()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: the browser tests must run in CI", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    # Per module, not per session: Playwright's sync API runs an event loop in this thread
    # while it is open, and the async tests of modules that follow need the thread's own.
    require_browser()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=WAIT_MS)  # assertions wait as long as any other step
    with sync_playwright() as instance:
        yield instance


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
    try:
        yield browser
    finally:
        browser.close()


# -- the server ---------------------------------------------------------------------------


@dataclass
class Console:
    """A running ``auditlog serve``, its data directory, and credentials made on it."""

    server: Server
    data: Path
    admin_key: str  # tenant acme, scope admin
    keys: dict[tuple[str, str], str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    def key(self, tenant: str, scopes: str) -> str:
        """An API key of ``tenant`` with ``scopes``, made once."""
        if (tenant, scopes) not in self.keys:
            self.keys[tenant, scopes] = create_key(self.data, tenant, scopes)
        return self.keys[tenant, scopes]

    def client(self, key: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {key or self.admin_key}"},
            timeout=30.0,
        )

    def write(self, events: list[dict[str, Any]], key: str | None = None) -> list[dict[str, Any]]:
        """Store ``events`` (one batch) and answer each as stored."""
        with self.client(key) as client:
            response = client.post("/v1/events", json=events)
            assert response.status_code in (200, 201), response.text
            stored = []
            for entry in response.json()["events"]:
                got = client.get(f"/v1/events/{entry['id']}")
                assert got.status_code == 200, got.text
                stored.append(got.json())
            return stored


def add_user(data: Path, username: str, tenant: str, scopes: str) -> None:
    done = auditlog(
        "users", "add", username, "--data", str(data), "--tenant", tenant, "--scopes", scopes,
        stdin=f"{PASSWORD}\n{PASSWORD}\n",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="session")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    require_browser()
    data = tmp_path_factory.mktemp("ui-data")
    admin = create_key(data, "acme", "admin")
    add_user(data, "alice", "acme", "events:read,log:read")
    log = tmp_path_factory.mktemp("ui-log") / "serve.log"
    with serving(data, log) as server:
        yield Console(server, data, admin)


# -- pages that report what went wrong ---------------------------------------------------

#: Reports each Content-Security-Policy violation to the test (the binding is Playwright's,
#: so the page's own policy cannot block it).
_CSP_WATCH = """
document.addEventListener("securitypolicyviolation", (e) => {
  window.__reportCsp(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber}`);
});
"""


class PageProblems:
    """What went wrong in a page: console errors, uncaught exceptions, CSP violations, and
    requests to anywhere but the server. ``allow(pattern)`` accepts console errors that a test
    causes on purpose (the browser logs every 4xx answer to a fetch as one)."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.console_errors: list[str] = []
        self.exceptions: list[str] = []
        self.csp: list[str] = []
        self.foreign: list[str] = []
        self.allowed: list[re.Pattern[str]] = []

    def allow(self, pattern: str) -> None:
        self.allowed.append(re.compile(pattern))

    def on_request(self, url: str) -> None:
        if not (url.startswith((self.origin + "/", "data:", "blob:")) or url == self.origin):
            self.foreign.append(url)

    def unexpected(self) -> list[str]:
        errors = [e for e in self.console_errors if not any(p.search(e) for p in self.allowed)]
        found = (
            [f"console error: {e}" for e in errors]
            + [f"uncaught: {e}" for e in self.exceptions]
            + [f"CSP violation: {e}" for e in self.csp]
            + [f"request beyond the server: {u}" for u in self.foreign]
        )
        if any("ERR_NETWORK_CHANGED" in e for e in errors):
            found.append(
                "(ERR_NETWORK_CHANGED: a network interface of this machine came or went during "
                "the test, as when another process starts or stops a container, and Chromium "
                "aborted the page's requests, even to 127.0.0.1; not the console's doing)"
            )
        return found


def watch(page: Page, problems: PageProblems) -> PageProblems:
    page.on(
        "console",
        lambda message: (
            problems.console_errors.append(message.text) if message.type == "error" else None
        ),
    )
    page.on("pageerror", lambda error: problems.exceptions.append(str(error)))
    page.on("request", lambda request: problems.on_request(request.url))
    page.expose_function("__reportCsp", lambda text: problems.csp.append(str(text)))
    page.add_init_script(_CSP_WATCH)
    return problems


@pytest.fixture
def page_problems(console: Console) -> PageProblems:
    """What the ``page`` fixture's page reports; a test calls ``allow`` on it."""
    return PageProblems(console.url)


@pytest.fixture
def page(browser: Browser, console: Console, page_problems: PageProblems) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    problems = watch(page, page_problems)
    try:
        yield page
        page.wait_for_timeout(50)  # let a last report arrive
        unexpected = problems.unexpected()
        assert not unexpected, "\n".join(unexpected)
    finally:
        context.close()


# -- artefacts -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def artefacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: ``$AUDITLOG_UI_ARTEFACTS``, or a temporary directory."""
    chosen = os.environ.get("AUDITLOG_UI_ARTEFACTS")
    path = Path(chosen) if chosen else tmp_path_factory.mktemp("ui-artefacts")
    path.mkdir(parents=True, exist_ok=True)
    _artefact_dirs.append(path)
    return path


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for path in _artefact_dirs:
        shots = sorted(path.glob("*.png"))
        if shots:
            terminalreporter.write_line(f"web console screenshots ({len(shots)}): {path}")

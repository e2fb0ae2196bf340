"""Steps the console's end-to-end tests share: signing in, searching, reading the results
table and the page's storage. Each step waits for what it expects, within the page's default
timeout (``WAIT_MS``); none measures time.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from playwright.sync_api import Page, expect

from ui.conftest import PASSWORD, Console

#: sessionStorage's key of the console's credential (session.js).
STORE_KEY = "auditlog.console.credential"


def open_console(page: Page, console: Console | str, query: str = "") -> None:
    """Load ``/ui/`` (with ``query``) of a console (or an origin) and wait for the sign-in
    screen or the console."""
    origin = console if isinstance(console, str) else console.url
    page.goto(f"{origin}/ui/{query}")
    page.wait_for_selector(".signin-page, .layout")


def sign_in_with_key(page: Page, console: Console | str, key: str, query: str = "") -> None:
    """Open the console and sign in with an API key; wait for the first results."""
    open_console(page, console, query)
    page.get_by_label("API key", exact=True).fill(key)
    page.get_by_role("button", name="Use this key").click()
    wait_results(page)


def sign_in_with_password(
    page: Page, console: Console, username: str = "alice", password: str = PASSWORD
) -> None:
    open_console(page, console)
    page.get_by_label("Username", exact=True).fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()
    wait_results(page)


def wait_results(page: Page) -> None:
    """Wait until the search shown has an answer (rows, the empty state, or an error)."""
    page.wait_for_selector(".layout")
    page.wait_for_function(
        """() => {
          const r = document.querySelector('.results');
          const s = document.getElementById('results-summary');
          return r && !r.hasAttribute('aria-busy') && s && s.textContent
            && s.textContent !== 'Searching…';
        }"""
    )


def search_for(page: Page, query: str) -> None:
    """Navigate the signed-in page to ``/ui/{query}`` and wait for its results."""
    page.goto(page.url.split("/ui/")[0] + "/ui/" + query)
    wait_results(page)


def submit_search(page: Page) -> None:
    """Press Enter in the full-text box (submits the form) and wait for the new results.

    The form's submit handler marks the results busy before it returns, so the wait that
    follows cannot see the previous answer."""
    page.get_by_label("Full text").press("Enter")
    wait_results(page)


def rows(page: Page) -> list[dict[str, str]]:
    """The results table's rows: each cell's text by its column's label."""
    result: list[dict[str, str]] = page.evaluate(
        """() => [...document.querySelectorAll('table.events tbody tr')].map((tr) =>
             Object.fromEntries([...tr.cells].map((td) => [td.dataset.label, td.textContent])))"""
    )
    return result


def row_types(page: Page) -> list[str]:
    return [row["Type"] for row in rows(page)]


def url_params(page: Page) -> list[tuple[str, str]]:
    """The page URL's query parameters, in order."""
    return parse_qsl(urlsplit(page.url).query, keep_blank_values=True)


def stored_credential(page: Page) -> dict[str, Any] | None:
    text = page.evaluate(f"() => sessionStorage.getItem({json.dumps(STORE_KEY)})")
    return None if text is None else dict(json.loads(text))


def local_storage_text(page: Page) -> str:
    """Everything in localStorage, keys and values, as one string."""
    text: str = page.evaluate("() => JSON.stringify(Object.entries(localStorage))")
    return text


def assert_secret_nowhere_but_session(page: Page, secret: str) -> None:
    """``secret`` is not in the URL, the history entries' URLs we can see, nor localStorage."""
    assert secret not in page.url
    assert secret not in local_storage_text(page)
    assert secret not in page.evaluate("() => document.documentElement.outerHTML")


def expect_signin_screen(page: Page) -> None:
    expect(page.locator(".signin-page")).to_be_visible()
    expect(page.get_by_label("API key", exact=True)).to_be_visible()


def events(n: int, tag: str, **fields: Any) -> list[dict[str, Any]]:
    """``n`` simple events of type ``{tag}.event``, numbered in ``data.n``."""
    return [{"type": f"{tag}.event", "data": {"n": i}, **fields} for i in range(n)]

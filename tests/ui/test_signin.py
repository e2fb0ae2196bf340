"""Signing in to the console (a login, an API key), what it shows of the credential, signing
out, and a login token's end: asked again before it expires, or the sign-in screen after.

The credential lives in the tab's sessionStorage and in memory only: never in the URL, in
localStorage, or the page's markup.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from live_server import Server, create_key, serving
from ui.conftest import PASSWORD, WAIT_MS, Console, PageProblems, add_user, watch
from ui.steps import (
    assert_secret_nowhere_but_session,
    expect_signin_screen,
    open_console,
    sign_in_with_key,
    sign_in_with_password,
    stored_credential,
    wait_results,
)

pytestmark = pytest.mark.slow


def whoami_shown(page: Page) -> dict[str, str]:
    """The identity list as {term: definition}."""
    shown: dict[str, str] = page.evaluate(
        """() => {
          const out = {};
          for (const dt of document.querySelectorAll('.whoami dt'))
            out[dt.textContent] = dt.nextElementSibling.textContent;
          return out;
        }"""
    )
    return shown


def sign_out(page: Page) -> None:
    page.get_by_role("button", name="Sign out").click()
    expect_signin_screen(page)


def test_a_login_signs_in_shows_whoami_and_signing_out_forgets_it(
    page: Page, console: Console
) -> None:
    sign_in_with_password(page, console)
    shown = whoami_shown(page)
    assert shown["Tenant"] == "acme"
    assert "alice" in shown["Signed in as"]
    assert shown["Scopes"] == "events:read, log:read"
    assert "Ends in" in shown
    stored = stored_credential(page)
    assert stored is not None
    assert stored["kind"] == "login"
    token = stored["token"]
    assert token.count(".") == 2  # a JWT
    assert "password" not in str(stored).lower()
    assert PASSWORD not in str(stored)
    assert_secret_nowhere_but_session(page, token)
    assert_secret_nowhere_but_session(page, PASSWORD)

    # A reload keeps the tab's session.
    page.reload()
    wait_results(page)
    assert whoami_shown(page)["Tenant"] == "acme"

    sign_out(page)
    expect(page.get_by_role("alert").first).to_contain_text("You have signed out")
    assert stored_credential(page) is None
    assert_secret_nowhere_but_session(page, token)
    page.reload()
    expect_signin_screen(page)
    assert stored_credential(page) is None


def test_an_api_key_signs_in_and_out(page: Page, console: Console) -> None:
    key = console.key("ui-signin", "events:read")
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    sign_in_with_key(page, console, key)
    shown = whoami_shown(page)
    assert shown["Tenant"] == "ui-signin"
    assert shown["Scopes"] == "events:read"
    assert shown["Signed in as"]
    assert "Ends in" not in shown  # a key does not expire
    stored = stored_credential(page)
    assert stored == {"token": key, "kind": "key", "expiresAt": None}
    assert_secret_nowhere_but_session(page, key)
    # Browsing the console (a search, a reload) never puts it in the URL either.
    page.get_by_label("Full text").fill("anything")
    page.get_by_label("Full text").press("Enter")
    wait_results(page)
    page.reload()
    wait_results(page)
    assert_secret_nowhere_but_session(page, key)
    # Nor does any request the page made carry it in its URL (only in a header).
    assert len(requested) > 5
    assert not [url for url in requested if key in url]
    sign_out(page)
    assert stored_credential(page) is None


def test_a_wrong_password_or_key_is_refused_with_what_to_do(
    page: Page, console: Console, page_problems: PageProblems
) -> None:
    page_problems.allow("401")
    open_console(page, console)
    page.get_by_label("Username", exact=True).fill("alice")
    page.get_by_label("Password", exact=True).fill("not the password")
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.locator(".signin").first.get_by_role("alert")).to_have_text(
        "The username or password is wrong. Check both and try again."
    )
    page.get_by_label("API key", exact=True).fill("alk_not_a_key")
    page.get_by_role("button", name="Use this key").click()
    expect(page.locator(".signin").nth(1).get_by_role("alert")).to_contain_text(
        "The service does not accept this key"
    )
    assert stored_credential(page) is None
    expect_signin_screen(page)


def test_a_key_without_events_read_is_told_what_it_lacks(
    page: Page, console: Console, page_problems: PageProblems
) -> None:
    page_problems.allow("403")
    key = console.key("ui-signin", "events:write")
    open_console(page, console)
    page.get_by_label("API key", exact=True).fill(key)
    page.get_by_role("button", name="Use this key").click()
    wait_results(page)
    expect(page.locator(".results .state")).to_contain_text("events:read")


# -- a login token's end -------------------------------------------------------------------

#: Seconds a login token lasts on the short-lived server: the console asks for the password
#: again at half of it (view-renew.js, app.js), ~6 s after signing in.
SHORT_LIFETIME = 12


@pytest.fixture(scope="module")
def short_lived(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("ui-short")
    create_key(data, "acme", "admin")
    add_user(data, "bob", "acme", "events:read")
    log = tmp_path_factory.mktemp("ui-short-log") / "serve.log"
    with serving(data, log, "--token-lifetime", str(SHORT_LIFETIME)) as server:
        yield server


@pytest.fixture
def short_page(browser: Browser, short_lived: Server) -> Iterator[tuple[Page, Console]]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    problems = watch(page, PageProblems(short_lived.url))
    problems.allow("401")
    try:
        yield page, Console(short_lived, Path("/nonexistent"), "")
        assert not problems.unexpected(), problems.unexpected()
    finally:
        context.close()


def test_the_password_is_asked_again_before_a_login_expires_and_renews_it(
    short_page: tuple[Page, Console],
) -> None:
    page, server = short_page
    sign_in_with_password(page, server, "bob")
    first = stored_credential(page)
    assert first is not None
    dialog = page.get_by_role("dialog", name="Stay signed in?")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("Username", exact=True)).to_have_value("bob")
    dialog.get_by_label("Password", exact=True).fill(PASSWORD)
    dialog.get_by_role("button", name="Stay signed in").click()
    expect(dialog).to_be_hidden()
    renewed = stored_credential(page)
    assert renewed is not None
    assert renewed["kind"] == "login"
    assert renewed["token"] != first["token"]
    assert renewed["expiresAt"] > first["expiresAt"]
    with httpx.Client(base_url=server.url) as client:
        answer = client.get(
            "/v1/auth/whoami", headers={"Authorization": f"Bearer {renewed['token']}"}
        )
        assert answer.status_code == 200
    assert_secret_nowhere_but_session(page, renewed["token"])


def test_a_login_not_renewed_ends_on_the_sign_in_screen_with_the_username_kept(
    short_page: tuple[Page, Console],
) -> None:
    page, server = short_page
    sign_in_with_password(page, server, "bob")
    dialog = page.get_by_role("dialog", name="Stay signed in?")
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")  # not now
    expect(dialog).to_be_hidden()
    notice = page.locator(".signin-page .notice")
    expect(notice).to_have_text(
        "Your sign-in has expired. Sign in again to go on where you were.",
        timeout=SHORT_LIFETIME * 1000 + WAIT_MS,
    )
    assert stored_credential(page) is None
    expect(page.get_by_label("Username", exact=True)).to_have_value("bob")
    expect(page.get_by_label("Password", exact=True)).to_be_focused()

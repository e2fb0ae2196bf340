"""Viewer links in the console (API.md §12): ``/ui/?token=...`` exchanges the token once for a
session of its own, takes it out of the address bar, and the link then fails anywhere else;
the session sees only events in the token's filter, whatever the URL asks, in its searches,
an event's detail, its export and its live tail; revoked or expired, it ends on the sign-in
screen. Tenant ``ui-viewer``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from ui.conftest import WAIT_MS, Console, PageProblems, watch
from ui.steps import (
    STORE_KEY,
    expect_signin_screen,
    rows,
    search_for,
    stored_credential,
    url_params,
    wait_results,
)

pytestmark = pytest.mark.slow

TENANT = "ui-viewer"
MINE = [
    {"id": f"v-mine-{i}", "type": "v.order", "subject": "cust-1", "data": {"n": i}}
    for i in range(3)
]
THEIRS = [
    {"id": f"v-theirs-{i}", "type": "v.order", "subject": "cust-2", "data": {"n": i}}
    for i in range(2)
]


@pytest.fixture(scope="module")
def admin(console: Console) -> str:
    key = console.key(TENANT, "admin")
    console.write(MINE + THEIRS, key)
    return key


def make_link(console: Console, admin: str, ttl: int = 600) -> str:
    """A viewer token for cust-1's events, as an admin makes it (POST /v1/viewer-tokens)."""
    with console.client(admin) as client:
        answer = client.post(
            "/v1/viewer-tokens", json={"filter": {"subject": "cust-1"}, "ttl_seconds": ttl}
        )
        assert answer.status_code == 201, answer.text
        token: str = answer.json()["token"]
        return token


def open_link(page: Page, console: Console, token: str, query: str = "") -> None:
    page.goto(f"{console.url}/ui/?token={token}{'&' + query if query else ''}")
    wait_results(page)


def ids(page: Page) -> set[str]:
    hrefs = page.evaluate(
        "() => [...document.querySelectorAll('table.events tbody td.type a')]"
        ".map((a) => new URL(a.href).searchParams.get('event'))"
    )
    return set(hrefs)


@pytest.fixture
def fresh(browser: Browser, console: Console) -> Iterator[Callable[[], Page]]:
    """Other browsers, each checked as the ``page`` fixture is (a 401 allowed)."""
    opened: list[tuple[Any, PageProblems]] = []

    def new() -> Page:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(WAIT_MS)
        page = context.new_page()
        problems = watch(page, PageProblems(console.url))
        problems.allow("401")
        opened.append((context, problems))
        return page

    try:
        yield new
        for _, problems in opened:
            assert not problems.unexpected(), problems.unexpected()
    finally:
        for context, _ in opened:
            context.close()


def test_a_link_is_exchanged_once_and_leaves_the_address_bar(
    page: Page, console: Console, admin: str, fresh: Callable[[], Page]
) -> None:
    token = make_link(console, admin)
    open_link(page, console, token, "type=v.order")
    assert "token" not in dict(url_params(page))
    assert token not in page.url
    assert url_params(page) == [("type", "v.order")]
    assert token not in page.evaluate(
        "() => JSON.stringify(sessionStorage) + JSON.stringify(localStorage)"
    )
    stored = stored_credential(page)
    assert stored is not None
    assert stored["kind"] == "viewer"
    assert stored["token"] != token
    expect(page.locator(".viewer-banner")).to_contain_text(
        "This session reads only events where subject = cust-1"
    )
    assert ids(page) == {e["id"] for e in MINE}
    # The token of the link no longer works anywhere: not through the API...
    with console.client(token) as client:
        assert client.get("/v1/events").status_code == 401
    # ...nor opened again, in another browser (as from its history).
    other = fresh()
    other.goto(f"{console.url}/ui/?token={token}")
    expect_signin_screen(other)
    expect(other.locator(".signin-page .notice")).to_have_text(
        "This viewer link has already been used or has expired. Ask whoever sent it for a new one."
    )
    assert "token" not in other.url
    assert other.evaluate(f"() => sessionStorage.getItem({json.dumps(STORE_KEY)})") is None
    # Reloading the first tab keeps its own session (not the link).
    page.reload()
    wait_results(page)
    assert ids(page) == {e["id"] for e in MINE}


@pytest.mark.parametrize(
    "query",
    [
        "",
        "subject=cust-2",
        "subject[in]=cust-1,cust-2",
        "subject[ne]=cust-1",
        "q=v",
        "type=v.order&subject[prefix]=cust",
    ],
)
def test_the_viewer_sees_only_its_filters_events_whatever_the_url_asks(
    page: Page, console: Console, admin: str, query: str
) -> None:
    open_link(page, console, make_link(console, admin), query)
    assert ids(page) <= {e["id"] for e in MINE}
    for row in rows(page):
        assert row["Subject"] == "cust-1"
    # A search changed in the console is bound the same way.
    page.get_by_label("Subject", exact=True).fill("cust-2")
    page.get_by_label("Subject", exact=True).press("Enter")
    wait_results(page)
    assert ids(page) <= {e["id"] for e in MINE}
    for row in rows(page):
        assert row["Subject"] == "cust-1"


def test_an_event_outside_the_filter_is_not_shown_by_id(
    page: Page, console: Console, admin: str, page_problems: PageProblems
) -> None:
    page_problems.allow("404")
    open_link(page, console, make_link(console, admin), "event=v-theirs-0")
    shown = page.get_by_role("dialog", name="Event not shown")
    expect(shown).to_contain_text(
        "No event with the id v-theirs-0 can be read with this credential"
    )
    search_for(page, "?event=v-mine-1")
    expect(page.locator("dialog.detail pre.json")).to_contain_text('"id":"v-mine-1"')


def test_the_viewers_export_and_tail_are_bound_too(
    page: Page, console: Console, admin: str
) -> None:
    open_link(page, console, make_link(console, admin), "subject=cust-2")
    assert ids(page) == set()
    expect(page.locator(".results .state")).to_contain_text(
        "This view only shows the events its link was made for."
    )
    with page.expect_download() as info:
        page.get_by_role("button", name="Export NDJSON").click()
    assert info.value.path().read_text() == ""
    search_for(page, "?type=v.order")
    with page.expect_download() as info:
        page.get_by_role("button", name="Export NDJSON").click()
    exported = [json.loads(line) for line in info.value.path().read_text().splitlines()]
    assert {e["id"] for e in exported} == {e["id"] for e in MINE}
    assert {e["subject"]["id"] for e in exported} == {"cust-1"}

    search_for(page, "?type=v.live")
    page.get_by_role("button", name="Live tail").click()
    expect(page.locator(".tail")).to_have_attribute("data-state", "live")
    console.write(
        [{"type": "v.live", "subject": "cust-2", "data": {"n": 1}},
         {"type": "v.live", "subject": "cust-1", "data": {"n": 2}},
         {"type": "v.live", "subject": "cust-2", "data": {"n": 3}},
         {"type": "v.live", "subject": "cust-1", "data": {"n": 4}}],
        admin,
    )  # fmt: skip
    expect(page.locator("table.events tbody tr")).to_have_count(2)
    assert [row["Data"] for row in rows(page)] == ["n=4", "n=2"]


def test_a_revoked_viewer_session_ends_on_the_sign_in_screen(
    page: Page, console: Console, admin: str, page_problems: PageProblems
) -> None:
    page_problems.allow("401")
    open_link(page, console, make_link(console, admin))
    session_token = stored_credential(page)
    assert session_token is not None
    with console.client(admin) as client:
        tokens = client.get("/v1/viewer-tokens").json()["tokens"]
        whoami = client.get(
            "/v1/auth/whoami", headers={"Authorization": f"Bearer {session_token['token']}"}
        ).json()
        assert whoami["credential"]["id"] in {t["id"] for t in tokens}
        assert client.delete(f"/v1/viewer-tokens/{whoami['credential']['id']}").status_code == 204
    page.get_by_label("Full text", exact=True).press("Enter")
    expect_signin_screen(page)
    expect(page.locator(".signin-page .notice")).to_contain_text(
        "The service no longer accepts this sign-in"
    )
    assert stored_credential(page) is None


def test_a_viewer_link_whose_time_is_up_ends_on_the_sign_in_screen(
    page: Page, console: Console, admin: str, page_problems: PageProblems
) -> None:
    page_problems.allow("401")
    page.goto(f"{console.url}/ui/?token={make_link(console, admin, ttl=4)}")
    expect(page.locator(".viewer-banner")).to_be_visible()
    # Within a second of its end (the console looks every second), or at the first refusal.
    expect(page.locator(".signin-page .notice")).to_have_text(
        re.compile("This viewer link's time is up|The service no longer accepts this sign-in")
    )
    assert stored_credential(page) is None


def test_a_link_opened_in_several_places_at_once_gives_one_session(
    console: Console, admin: str
) -> None:
    def exchange(token: str) -> int:
        with console.client(token) as client:
            return client.post("/v1/viewer-tokens/exchange").status_code

    with ThreadPoolExecutor(4) as pool:
        for _ in range(5):
            token = make_link(console, admin)
            codes = list(pool.map(exchange, [token] * 4))
            assert sorted(codes) == [201, 401, 401, 401]

"""An event's detail in the console: every field, ``data`` as a tree, the stored JSON (copied
to the clipboard), a permalink that opens the same event, and "filter by this value" from a
field, which adds the condition and searches again. Tenant ``ui-detail``.
"""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from ui.conftest import WAIT_MS, Console, PageProblems, watch
from ui.steps import open_console, sign_in_with_key, url_params, wait_results

pytestmark = pytest.mark.slow

TENANT = "ui-detail"
EVENT = {
    "id": "d-invoice-1",
    "type": "d.invoice.paid",
    "time": "2026-11-27T02:27:53.123456Z",
    "actor": {"id": "alice", "type": "user", "name": "Alice Liddell"},
    "subject": {"id": "inv-42", "type": "invoice", "name": "Invoice 42"},
    "source": "billing",
    "outcome": "success",
    "data": {
        "amount": 120.5,
        "currency": "EUR",
        "paid": True,
        "refund": None,
        "location": {"city": "Seattle", "geo": {"lat": 47.6, "lon": -122.3}},
        "tags": ["card", "manual"],
        "odd key!": "not a path",
        "note": "Paid by card",
    },
}
OTHER = {"id": "d-invoice-2", "type": "d.invoice.paid", "actor": "bob", "data": {"amount": 7}}


@pytest.fixture(scope="module")
def key(console: Console) -> str:
    console.write([EVENT, OTHER], console.key(TENANT, "events:write,events:read"))
    return console.key(TENANT, "events:read")


@pytest.fixture(scope="module")
def stored_text(console: Console, key: str) -> str:
    """The event's stored JSON as the API sends it."""
    with console.client(key) as client:
        return client.get(f"/v1/events/{EVENT['id']}").text


def dialog(page: Page) -> Locator:
    return page.get_by_role("dialog", name=str(EVENT["type"]))


def open_detail(page: Page) -> Locator:
    page.locator("table.events tbody tr", has_text="alice").locator("td.data").click()
    shown = dialog(page)
    expect(shown).to_be_visible()
    return shown


def fields(page: Page) -> dict[str, str]:
    shown: dict[str, str] = page.evaluate(
        """() => Object.fromEntries(
             [...document.querySelectorAll('dialog.detail dl.fields .field-row')].map((row) =>
               [row.querySelector('dt').textContent, row.querySelector('dd .value').textContent]))"""
    )
    return shown


def test_every_field_and_the_data_tree_are_shown(
    page: Page, console: Console, key: str, stored_text: str
) -> None:
    sign_in_with_key(page, console, key, "?type=d.invoice.paid")
    shown = open_detail(page)
    assert ("event", EVENT["id"]) in url_params(page)
    stored = httpx.Response(200, text=stored_text).json()
    assert fields(page) == {
        "id": EVENT["id"],
        "seq": str(stored["seq"]),
        "type": EVENT["type"],
        "time (UTC)": "2026-11-27 02:27:53.123456",
        "time as stored": "2026-11-27T02:27:53.123456Z",
        "received_at": stored["received_at"].replace("T", " ").removesuffix("Z"),
        "actor.id": "alice",
        "actor.type": "user",
        "actor.name": "Alice Liddell",
        "subject.id": "inv-42",
        "subject.type": "invoice",
        "subject.name": "Invoice 42",
        "source": "billing",
        "outcome": "success",
        "tenant": TENANT,
    }
    tree = shown.get_by_role("group", name="Data")
    leaves = tree.evaluate(
        """(root) => [...root.querySelectorAll('li')].filter((li) => !li.querySelector('li'))
             .map((li) => li.textContent.replace(/Filter$/, ''))"""
    )
    assert sorted(leaves) == sorted(
        [
            "amount 120.5",
            "currency EUR",
            "paid true",
            "refund null",
            "city Seattle",
            "lat 47.6",
            "lon -122.3",
            "[0] card",
            "[1] manual",
            "odd key! not a path",
            "note Paid by card",
        ]
    )
    # The nested objects say how much they hold, and the raw text is the stored bytes.
    expect(tree.locator("summary", has_text="location")).to_contain_text("2 fields")
    expect(tree.locator("summary", has_text="tags")).to_contain_text("2 items")
    expect(shown.locator("pre.json")).to_have_text(stored_text)
    # A key that cannot be a path segment has no filter button; the others do.
    expect(
        shown.get_by_role("button", name="Filter by data.location.geo.lat = 47.6")
    ).to_be_visible()
    expect(shown.get_by_role("button", name="Filter by data.tags = manual")).to_be_visible()
    expect(shown.get_by_role("button", name="Filter by data.odd key! = not a path")).to_have_count(
        0
    )

    shown.get_by_role("button", name="Close").click()
    expect(shown).to_be_hidden()
    expect(page).not_to_have_url(re.compile("event="))  # the dialog's close event follows
    assert url_params(page) == [("type", "d.invoice.paid")]


def test_copy_as_json_puts_the_stored_bytes_on_the_clipboard(
    browser: Browser, console: Console, key: str, stored_text: str
) -> None:
    context = browser.new_context(
        viewport={"width": 1280, "height": 900},
        permissions=["clipboard-read", "clipboard-write"],
    )
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    problems = watch(page, PageProblems(console.url))
    try:
        sign_in_with_key(page, console, key, "?type=d.invoice.paid")
        shown = open_detail(page)
        shown.get_by_role("button", name="Copy as JSON").click()
        expect(shown.locator(".detail-actions [role=status]")).to_have_text(
            "Stored JSON copied to the clipboard."
        )
        assert page.evaluate("() => navigator.clipboard.readText()") == stored_text
        shown.get_by_role("button", name="Copy permalink").click()
        expect(shown.locator(".detail-actions [role=status]")).to_have_text(
            "Link copied to the clipboard."
        )
        link = page.evaluate("() => navigator.clipboard.readText()")
        assert link == f"{console.url}/ui/?event={EVENT['id']}"
        assert not problems.unexpected(), problems.unexpected()
    finally:
        context.close()


def test_the_permalink_opens_the_same_event_after_signing_in(
    page: Page, console: Console, key: str, browser: Browser
) -> None:
    sign_in_with_key(page, console, key, "?type=d.invoice.paid&q=card")
    shown = open_detail(page)
    href = shown.get_by_role("link", name="Permalink").get_attribute("href")
    assert href == f"{console.url}/ui/?event={EVENT['id']}"
    # In this tab: the event's detail over every event.
    shown.get_by_role("link", name="Permalink").click()
    expect(dialog(page)).to_be_visible()
    expect(dialog(page).locator("pre.json")).to_contain_text(f'"id":"{EVENT["id"]}"')
    assert url_params(page) == [("event", EVENT["id"])]
    # In a fresh browser: signing in first, then the same event.
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT_MS)
    other = context.new_page()
    problems = watch(other, PageProblems(console.url))
    try:
        other.goto(href)
        other.get_by_label("API key", exact=True).fill(key)
        other.get_by_role("button", name="Use this key").click()
        expect(dialog(other)).to_be_visible()
        assert fields(other)["id"] == EVENT["id"]
        assert not problems.unexpected(), problems.unexpected()
    finally:
        context.close()


@pytest.mark.parametrize(
    ("button", "param", "found"),
    [
        ("Filter by data.location.city = Seattle", ("data.location.city", "Seattle"), 1),
        ("Filter by data.amount = 120.5", ("data.amount", "120.5"), 1),
        ("Filter by data.paid = true", ("data.paid", "true"), 1),
        ("Filter by data.tags = manual", ("data.tags", "manual"), 1),
        ("Filter by actor.id = alice", ("actor", "alice"), 1),
        ("Filter by subject.name = Invoice 42", ("subject.name", "Invoice 42"), 1),
        ("Filter by source = billing", ("source", "billing"), 1),
        ("Filter by type = d.invoice.paid", ("type", "d.invoice.paid"), 2),
    ],
)
def test_filter_by_a_value_adds_its_condition_and_searches_again(
    page: Page, console: Console, key: str, button: str, param: tuple[str, str], found: int
) -> None:
    sign_in_with_key(page, console, key, "?type=d.invoice.paid")
    assert page.locator("table.events tbody tr").count() == 2
    shown = open_detail(page)
    shown.get_by_role("button", name=button).click()
    expect(shown).to_be_hidden()
    wait_results(page)
    params = url_params(page)
    assert param in params
    assert "event" not in dict(params)
    assert ("type", "d.invoice.paid") in params
    expect(page.locator("table.events tbody tr")).to_have_count(found)
    expect(page.locator("table.events tbody tr", has_text="alice")).to_have_count(1)


def test_filter_by_a_value_narrows_a_search_of_several_values(
    page: Page, console: Console, key: str
) -> None:
    # The API ORs equalities on one path: the value must replace them, not join them.
    sign_in_with_key(page, console, key, "?type=d.invoice.paid&actor[in]=alice,bob")
    expect(page.locator("table.events tbody tr")).to_have_count(2)
    open_detail(page).get_by_role("button", name="Filter by actor.id = alice").click()
    wait_results(page)
    assert url_params(page) == [("type", "d.invoice.paid"), ("actor", "alice")]
    expect(page.locator("table.events tbody tr")).to_have_count(1)


def test_back_after_closing_a_detail_goes_to_the_search_before(
    page: Page, console: Console, key: str
) -> None:
    sign_in_with_key(page, console, key, "?type=d.invoice.paid")
    page.get_by_label("Actor", exact=True).fill("alice")
    page.get_by_label("Actor", exact=True).press("Enter")
    wait_results(page)
    shown = open_detail(page)
    page.go_back()  # Back closes an open detail
    expect(shown).to_be_hidden()
    assert url_params(page) == [("type", "d.invoice.paid"), ("actor", "alice")]
    shown = open_detail(page)
    shown.get_by_role("button", name="Close").click()
    expect(page).to_have_url(re.compile(r"actor=alice$"))
    page.go_back()
    wait_results(page)
    assert url_params(page) == [("type", "d.invoice.paid")]
    expect(dialog(page)).to_be_hidden()
    expect(page.locator("table.events tbody tr")).to_have_count(2)
    page.go_forward()
    wait_results(page)
    assert url_params(page) == [("type", "d.invoice.paid"), ("actor", "alice")]
    expect(dialog(page)).to_be_hidden()


def test_an_event_out_of_reach_says_so(
    page: Page, console: Console, key: str, page_problems: PageProblems
) -> None:
    page_problems.allow("404")
    open_console(page, console, "?event=no-such-event")
    page.get_by_label("API key", exact=True).fill(key)
    page.get_by_role("button", name="Use this key").click()
    shown = page.get_by_role("dialog", name="Event not shown")
    expect(shown.get_by_role("alert")).to_contain_text(
        "No event with the id no-such-event can be read with this credential"
    )
    page.keyboard.press("Escape")
    expect(shown).to_be_hidden()
    expect(page).to_have_url(re.compile(r"/ui/$"))  # the dialog's close event follows

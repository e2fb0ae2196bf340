"""Searching in the console: every filter kind from the form (the operator picker included),
the view kept in the URL (reload, back/forward, a fresh browser), order, pages by cursor, the
empty and error states, and times in UTC or local time.

The module's events are in a tenant of their own (``ui-search``), of types ``s.*``; the
service records each read of the log in the tenant's log too (``auditlog.log.read``), so the
searches here start from ``type[prefix]=s.``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Browser, Page, expect

from ui.conftest import WAIT_MS, Console, PageProblems, watch
from ui.steps import sign_in_with_key, submit_search, url_params, wait_results

pytestmark = pytest.mark.slow

TENANT = "ui-search"
BASE = "?type[prefix]=s."


def ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat().replace("+00:00", "Z")


def party(party_id: str, party_type: str) -> dict[str, str]:
    return {"id": party_id, "type": party_type}


def sample() -> list[dict[str, Any]]:
    return [
        {"id": "s-e1", "type": "s.login", "time": ago(minutes=5), "actor": party("alice", "user"),
         "subject": party("acct-1", "account"), "source": "web", "outcome": "success",
         "data": {"city": "Seattle", "amount": 100, "note": "paid by card"}},
        {"id": "s-e2", "type": "s.login", "time": ago(minutes=30), "actor": party("bob", "user"),
         "subject": party("acct-2", "account"), "source": "mobile", "outcome": "failure",
         "data": {"city": "Paris", "amount": 250}},
        {"id": "s-e3", "type": "s.logout", "time": ago(hours=3), "actor": party("alice", "user"),
         "subject": party("acct-2", "account"), "source": "web", "outcome": "unknown",
         "data": {"city": "Seattle", "amount": 1000, "tags": ["refund", "manual"]}},
        {"id": "s-e4", "type": "s.invoice", "time": ago(days=2), "actor": "carol",
         "subject": "inv-1", "source": "billing", "outcome": "success",
         "data": {"amount": 50, "nested": {"deep": {"x": 1}}}},
        {"id": "s-e5", "type": "s.invoice", "time": ago(days=10), "actor": "carol",
         "subject": "inv-2", "source": "billing", "data": {"amount": 75}},
        {"id": "s-e6", "type": "s.archive", "time": ago(days=40), "actor": "dave",
         "data": {"amount": 5}},
        {"id": "s-e7", "type": "s.archive", "time": "2020-01-01T10:00:00Z", "actor": "dave",
         "data": {"amount": 6}},
    ]  # fmt: skip


PAGED = [{"id": f"s-p{i}", "type": "s.page", "data": {"i": i}} for i in range(7)]
ALL = {f"s-e{i}" for i in range(1, 8)} | {f"s-p{i}" for i in range(7)}


@pytest.fixture(scope="module")
def key(console: Console) -> str:
    """The browser's key (read only); the module's events are written with another."""
    writer = console.key(TENANT, "events:write,events:read")
    console.write(sample(), writer)
    console.write(PAGED, writer)
    return console.key(TENANT, "events:read")


def stored_time(console: Console, key: str, event_id: str) -> str:
    with console.client(key) as client:
        return str(client.get(f"/v1/events/{event_id}").json()["time"])


def row_ids(page: Page) -> list[str]:
    """The ids of the rows shown, in order (from each row's detail link)."""
    hrefs: list[str] = page.evaluate(
        "() => [...document.querySelectorAll('table.events tbody td.type a')]"
        ".map((a) => a.getAttribute('href'))"
    )
    return [parse_qs(urlsplit(href).query)["event"][0] for href in hrefs]


def shown(page: Page) -> set[str]:
    return set(row_ids(page))


def add_condition(page: Page, path: str, op: str, value: str) -> None:
    page.get_by_role("button", name="Add condition").click()
    n = page.locator("li.condition").count()
    page.get_by_label(f"Field path ({n})").fill(path)
    page.get_by_label(f"Operator ({n})").select_option(op)
    if op == "exists":
        page.get_by_label(f"Exists ({n})").select_option(value)
    else:
        page.get_by_label(f"Value ({n})").fill(value)


Form = Callable[[Page], None]


def fill(label: str, value: str) -> Form:
    return lambda page: page.get_by_label(label, exact=True).fill(value)


def choose(label: str, value: str) -> Form:
    def step(page: Page) -> None:
        page.get_by_label(label, exact=True).select_option(value)

    return step


def conditions(*triples: tuple[str, str, str]) -> Form:
    def step(page: Page) -> None:
        for path, op, value in triples:
            add_condition(page, path, op, value)

    return step


def custom_range(since: str, until: str) -> Form:
    def step(page: Page) -> None:
        page.get_by_label("Time", exact=True).select_option("custom")
        page.get_by_label("From (UTC)").fill(since)
        page.get_by_label("Until, not included (UTC)").fill(until)

    return step


#: name: (what to do in the form, the URL's parameters it adds, the events found)
FILTERS: dict[str, tuple[Form, list[tuple[str, str]], set[str]]] = {
    "type": (fill("Type", "s.logout"), [("type", "s.logout")], {"s-e3"}),
    "actor": (fill("Actor", "alice"), [("actor", "alice")], {"s-e1", "s-e3"}),
    "subject": (fill("Subject", "acct-2"), [("subject", "acct-2")], {"s-e2", "s-e3"}),
    "source": (fill("Source", "billing"), [("source", "billing")], {"s-e4", "s-e5"}),
    "outcome": (choose("Outcome", "failure"), [("outcome", "failure")], {"s-e2"}),
    "text": (fill("Full text", "card"), [("q", "card")], {"s-e1"}),
    "text prefix": (fill("Full text", "refu*"), [("q", "refu*")], {"s-e3"}),
    "15 min": (choose("Time", "15m"), [("range", "15m")], {"s-e1"} | {p for p in ALL if "-p" in p}),
    "1 h": (choose("Time", "1h"), [("range", "1h")], {"s-e1", "s-e2"} | {p for p in ALL if "-p" in p}),
    "24 h": (choose("Time", "24h"), [("range", "24h")], ALL - {"s-e4", "s-e5", "s-e6", "s-e7"}),
    "7 d": (choose("Time", "7d"), [("range", "7d")], ALL - {"s-e5", "s-e6", "s-e7"}),
    "30 d": (choose("Time", "30d"), [("range", "30d")], ALL - {"s-e6", "s-e7"}),
    "custom": (
        custom_range("2020-01-01T09:00:00", "2020-01-01T11:00:00"),
        [("range", "custom"), ("since", "2020-01-01T09:00:00.000Z"),
         ("until", "2020-01-01T11:00:00.000Z")],
        {"s-e7"},
    ),
    "data equals": (conditions(("data.city", "eq", "Seattle")), [("data.city", "Seattle")],
                    {"s-e1", "s-e3"}),
    "data greater than": (conditions(("data.amount", "gt", "200")), [("data.amount[gt]", "200")],
                          {"s-e2", "s-e3"}),
    "two data conditions": (
        conditions(("data.city", "eq", "Seattle"), ("data.amount", "lt", "500")),
        [("data.city", "Seattle"), ("data.amount[lt]", "500")],
        {"s-e1"},
    ),
    "ne, in, prefix, exists, gte, lte": (
        conditions(("data.city", "ne", "Seattle"), ("data.amount", "in", "250,50,75"),
                   ("data.city", "prefix", "Par"), ("data.tags", "exists", "false"),
                   ("data.amount", "gte", "250"), ("data.amount", "lte", "250")),
        [("data.city[ne]", "Seattle"), ("data.amount[in]", "250,50,75"),
         ("data.city[prefix]", "Par"), ("data.tags[exists]", "false"),
         ("data.amount[gte]", "250"), ("data.amount[lte]", "250")],
        {"s-e2"},
    ),
    "a nested path": (conditions(("data.nested.deep.x", "eq", "1")),
                      [("data.nested.deep.x", "1")], {"s-e4"}),
    "an array element": (conditions(("data.tags", "eq", "manual")), [("data.tags", "manual")],
                         {"s-e3"}),
}  # fmt: skip


@pytest.fixture
def fresh(browser: Browser, console: Console) -> Iterator[Callable[[], Page]]:
    """New browser contexts (nothing shared with the test's page), each checked as ``page``."""
    opened: list[tuple[Any, PageProblems]] = []

    def new() -> Page:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(WAIT_MS)
        page = context.new_page()
        opened.append((context, watch(page, PageProblems(console.url))))
        return page

    try:
        yield new
        for _, problems in opened:
            assert not problems.unexpected(), problems.unexpected()
    finally:
        for context, _ in opened:
            context.close()


@pytest.mark.parametrize("name", list(FILTERS))
def test_each_filter_kind_from_the_form_is_kept_in_the_url_and_found_again(
    page: Page, console: Console, key: str, fresh: Callable[[], Page], name: str
) -> None:
    form, params, expected = FILTERS[name]
    sign_in_with_key(page, console, key, BASE)
    assert shown(page) == ALL
    form(page)
    submit_search(page)
    assert shown(page) == expected
    assert sorted(url_params(page)) == sorted([("type[prefix]", "s."), *params])
    # A reload shows the same view, in the form as in the results.
    page.reload()
    wait_results(page)
    assert shown(page) == expected
    assert sorted(url_params(page)) == sorted([("type[prefix]", "s."), *params])
    # So does the link, opened in another browser (after signing in there).
    other = fresh()
    other.goto(page.url)
    other.get_by_label("API key", exact=True).fill(key)
    other.get_by_label("API key", exact=True).press("Enter")
    wait_results(other)
    assert shown(other) == expected
    assert url_params(other) == url_params(page)


def test_the_form_shows_the_view_of_its_url(page: Page, console: Console, key: str) -> None:
    query = (
        "?q=card&type=s.login&actor=alice&subject=acct-1&source=web&outcome=success"
        "&range=24h&data.amount[lt]=500&data.tags[exists]=false&order=asc&limit=25"
    )
    sign_in_with_key(page, console, key, query)
    assert row_ids(page) == ["s-e1"]
    expect(page.get_by_label("Full text", exact=True)).to_have_value("card")
    for label, value in [("Type", "s.login"), ("Actor", "alice"), ("Subject", "acct-1"),
                         ("Source", "web"), ("Outcome", "success"), ("Time", "24h"),
                         ("Order", "asc"), ("Per page", "25")]:  # fmt: skip
        expect(page.get_by_label(label, exact=True)).to_have_value(value)
    expect(page.get_by_label("Field path (1)")).to_have_value("data.amount")
    expect(page.get_by_label("Operator (1)")).to_have_value("lt")
    expect(page.get_by_label("Value (1)")).to_have_value("500")
    expect(page.get_by_label("Field path (2)")).to_have_value("data.tags")
    expect(page.get_by_label("Operator (2)")).to_have_value("exists")
    expect(page.get_by_label("Exists (2)")).to_have_value("false")
    expect(page.get_by_label("Value (2)")).to_be_hidden()
    # Removing a condition and searching again leaves it out of the URL.
    page.get_by_role("button", name="Remove condition 2").click()
    submit_search(page)
    assert ("data.tags[exists]", "false") not in url_params(page)
    assert ("data.amount[lt]", "500") in url_params(page)


def test_back_and_forward_go_through_the_searches(page: Page, console: Console, key: str) -> None:
    sign_in_with_key(page, console, key, BASE)
    page.get_by_label("Type", exact=True).fill("s.logout")
    submit_search(page)
    page.get_by_label("Type", exact=True).fill("")
    page.get_by_label("Actor", exact=True).fill("carol")
    submit_search(page)
    assert shown(page) == {"s-e4", "s-e5"}
    page.go_back()
    wait_results(page)
    assert shown(page) == {"s-e3"}
    expect(page.get_by_label("Type", exact=True)).to_have_value("s.logout")
    expect(page.get_by_label("Actor", exact=True)).to_have_value("")
    page.go_back()
    wait_results(page)
    assert shown(page) == ALL
    page.go_forward()
    wait_results(page)
    page.go_forward()
    wait_results(page)
    assert shown(page) == {"s-e4", "s-e5"}
    expect(page.get_by_label("Actor", exact=True)).to_have_value("carol")


def test_newest_or_oldest_first_and_pages_by_cursor(page: Page, console: Console, key: str) -> None:
    sign_in_with_key(page, console, key, "?type=s.page&limit=3")
    pages = [["s-p6", "s-p5", "s-p4"], ["s-p3", "s-p2", "s-p1"], ["s-p0"]]
    next_button = page.get_by_role("button", name="Next page")
    assert row_ids(page) == pages[0]
    expect(page.get_by_role("button", name="Previous page")).to_be_disabled()
    next_button.click()
    wait_results(page)
    assert row_ids(page) == pages[1]
    assert dict(url_params(page))["cursor"]
    page.reload()  # the cursor is in the URL: the same page again
    wait_results(page)
    assert row_ids(page) == pages[1]
    next_button.click()
    wait_results(page)
    assert row_ids(page) == pages[2]
    expect(next_button).to_be_disabled()
    page.get_by_role("button", name="Previous page").click()
    wait_results(page)
    assert row_ids(page) == pages[1]
    page.get_by_role("button", name="First page").click()
    wait_results(page)
    assert row_ids(page) == pages[0]
    assert "cursor" not in dict(url_params(page))

    page.get_by_label("Order", exact=True).select_option("asc")
    submit_search(page)
    assert row_ids(page) == ["s-p0", "s-p1", "s-p2"]
    assert ("order", "asc") in url_params(page)
    next_button.click()
    wait_results(page)
    assert row_ids(page) == ["s-p3", "s-p4", "s-p5"]


def test_the_table_shows_each_events_columns(page: Page, console: Console, key: str) -> None:
    sign_in_with_key(page, console, key, "?type=s.login&actor=bob")
    cells = page.evaluate(
        "() => [...document.querySelectorAll('table.events tbody tr:first-child td')]"
        ".map((td) => [td.dataset.label, td.textContent])"
    )
    by = dict(cells)
    assert [label for label, _ in cells] == ["Time", "Type", "Actor", "Subject", "Outcome", "Data"]
    assert by["Type"] == "s.login"
    assert by["Actor"] == "bob"
    assert by["Subject"] == "acct-2"
    assert by["Outcome"] == "failure"
    assert by["Data"] == "amount=250 city=Paris"
    stored = stored_time(console, key, "s-e2")
    assert by["Time"] == stored.replace("T", " ").removesuffix("Z")
    expect(page.locator("table.events th").first).to_have_text("Time (UTC)")


def test_no_match_says_what_to_do(page: Page, console: Console, key: str) -> None:
    sign_in_with_key(page, console, key, "?type=s.nothing")
    state = page.locator(".results .state")
    expect(state).to_contain_text("No event matches this search. Widen the time range")
    expect(page.locator("#results-summary")).to_have_text("No events match.")
    state.get_by_role("button", name="Clear filters").click()
    wait_results(page)
    assert url_params(page) == []
    expect(page.get_by_label("Type", exact=True)).to_have_value("")


def test_a_condition_the_service_refuses_shows_its_detail(
    page: Page, console: Console, key: str, page_problems: PageProblems
) -> None:
    page_problems.allow("400")
    sign_in_with_key(page, console, key, BASE)
    add_condition(page, "time", "gt", "yesterday")
    submit_search(page)
    alert = page.locator(".results .state").get_by_role("alert")
    expect(alert).to_have_text(
        "The service refused this search: parameter 'time[gt]': 'yesterday' is not an RFC 3339 "
        "time such as 2026-11-27T02:27:53.123456Z, or Unix seconds. Change the filter it names "
        "and search again."
    )
    expect(page.locator("table.events")).to_be_hidden()
    # One the console can tell itself is said beside the form, before asking.
    page.get_by_label("Field path (2)").fill("not a path")
    page.get_by_label("Full text", exact=True).press("Enter")
    expect(page.locator("form.search ul.error")).to_contain_text(
        "Condition 2: “not a path” is not a field path"
    )


def test_times_switch_between_utc_and_local_time(
    browser: Browser, console: Console, key: str
) -> None:
    context = browser.new_context(timezone_id="Asia/Tokyo", viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    problems = watch(page, PageProblems(console.url))
    try:
        sign_in_with_key(page, console, key, "?type=s.login&actor=bob")
        stored = stored_time(console, key, "s-e2")
        time_cell = page.locator("table.events tbody td.time").first
        expect(time_cell).to_have_text(stored.replace("T", " ").removesuffix("Z"))
        page.get_by_role("button", name="Times are in UTC; show them in local time").click()
        wait_results(page)
        assert ("tz", "local") in url_params(page)
        expect(page.locator("table.events th").first).to_have_text("Time (local, Asia/Tokyo)")
        utc = datetime.fromisoformat(stored.replace("Z", "+00:00"))
        local = utc + timedelta(hours=9)
        expected = local.strftime("%Y-%m-%d %H:%M:%S.%f") + " +09:00"
        expect(time_cell).to_have_text(expected)
        page.reload()  # kept in the URL
        wait_results(page)
        expect(time_cell).to_have_text(expected)
        page.get_by_role("button", name="Times are in local time; show them in UTC").click()
        expect(time_cell).to_have_text(stored.replace("T", " ").removesuffix("Z"))
        assert not problems.unexpected(), problems.unexpected()
    finally:
        context.close()

"""Events whose every field that can hold text holds markup and script are shown as that text
in the console: in the results table, the detail (its fields, its data tree, its stored JSON),
the live tail, the search form and URL, a refused search's message. No payload runs (the flag
each would set stays unset; ``alert`` is never called) and the page reports no CSP violation
(the ``page`` fixture fails the test on any). Tenant ``ui-xss``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from playwright.sync_api import Page, expect

from ui.conftest import Console, PageProblems
from ui.steps import rows, search_for, sign_in_with_key, wait_results

pytestmark = pytest.mark.slow

TENANT = "ui-xss"

PAYLOADS = [
    '<img src=x onerror="window.__xss=1">',
    "<script>window.__xss=2</script>",
    "javascript:window.__xss=3",
    '"><svg onload="window.__xss=4">',
    '<a href="javascript:window.__xss=5">click</a>',
    '\'"><iframe srcdoc="<script>parent.__xss=6</script>">',
    "{{constructor.constructor('window.__xss=7')()}}",
    "<style>body{display:none}</style>",
]

#: Set before any script of the page: the flag, and alert/confirm/prompt that set it.
FLAG = """
window.__xss = undefined;
for (const name of ["alert", "confirm", "prompt"]) {
  window[name] = () => { window.__xss = name; };
}
"""


def payload_event(i: int, payload: str, kind: str = "x.xss") -> dict[str, Any]:
    return {
        "id": f"{kind}-{i}",
        "type": f"{kind} {payload}",
        "actor": {"id": payload, "type": payload, "name": payload},
        "subject": {"id": payload, "type": payload, "name": payload},
        "source": payload,
        "outcome": "failure",
        "data": {
            payload: payload,
            "nested": {payload: [payload, {"deep": payload}]},
            "text": f"before {payload} after",
        },
    }


EVENTS = [payload_event(i, p) for i, p in enumerate(PAYLOADS)]


@pytest.fixture(scope="module")
def key(console: Console) -> str:
    console.write(EVENTS, writer(console))
    return console.key(TENANT, "events:read")


def writer(console: Console) -> str:
    return console.key(TENANT, "events:write,events:read")


@pytest.fixture
def guarded(page: Page) -> Page:
    page.add_init_script(FLAG)
    return page


def assert_nothing_ran(page: Page) -> None:
    assert page.evaluate("() => window.__xss") is None
    assert page.evaluate("() => window.parent.__xss") is None
    # No element a payload spells was made anywhere in the page.
    made = page.evaluate(
        "() => [...document.querySelectorAll('main img, main svg, main script, main iframe,"
        " main style, dialog img, dialog svg, dialog script, dialog iframe, dialog style,"
        ' a[href^="javascript" i]\')].map((e) => e.outerHTML)'
    )
    assert made == []
    assert page.evaluate("() => getComputedStyle(document.body).display") != "none"


def test_payloads_in_the_table_are_shown_as_text(guarded: Page, console: Console, key: str) -> None:
    page = guarded
    sign_in_with_key(page, console, key, "?type[prefix]=x.xss&order=asc")
    shown = rows(page)
    assert len(shown) == len(PAYLOADS)
    for row, payload in zip(shown, PAYLOADS, strict=True):
        assert row["Type"] == f"x.xss {payload}"
        assert row["Actor"] == f"{payload}"  # name equals id: shown once
        assert row["Subject"] == f"{payload}"
        assert payload in row["Data"]
    assert_nothing_ran(page)


@pytest.mark.parametrize("index", range(len(PAYLOADS)))
def test_payloads_in_the_detail_are_shown_as_text(
    guarded: Page, console: Console, key: str, index: int
) -> None:
    page = guarded
    payload = PAYLOADS[index]
    sign_in_with_key(page, console, key, f"?event=x.xss-{index}")
    dialog = page.locator("dialog.detail")
    expect(dialog.locator("#detail-title")).to_have_text(f"x.xss {payload}")
    values = dialog.locator("dl.fields .value").all_text_contents()
    assert values.count(payload) == 7  # actor and subject id, type, name; source
    tree = dialog.get_by_role("group", name="Data")
    keys = tree.locator(".key").all_text_contents()
    assert keys.count(payload) == 2
    leaves = tree.locator(".leaf .value").all_text_contents()
    assert leaves.count(payload) == 3
    assert f"before {payload} after" in leaves
    with console.client(key) as client:
        stored = client.get(f"/v1/events/x.xss-{index}").text
    expect(dialog.locator("pre.json")).to_have_text(stored)
    # Its permalink and filter buttons hold it as text too, and filtering by it works.
    dialog.get_by_role("button", name=f"Filter by source = {payload}").click()
    wait_results(page)
    assert [row["Type"] for row in rows(page)] == [f"x.xss {payload}"]
    expect(page.get_by_label("Source", exact=True)).to_have_value(payload)
    assert_nothing_ran(page)


def test_payloads_in_the_search_form_url_and_error_are_text(
    guarded: Page, console: Console, key: str, page_problems: PageProblems
) -> None:
    page = guarded
    page_problems.allow("400")
    sign_in_with_key(page, console, key, "?type[prefix]=x.xss")
    for payload in PAYLOADS:
        search_for(page, f"?type[prefix]=x.xss&actor={quote(payload)}&q=after")
        expect(page.get_by_label("Actor", exact=True)).to_have_value(payload)
        assert len(rows(page)) == 1
        # A refused search echoes the value in the service's detail: shown as text.
        search_for(page, f"?time[gt]={quote(payload)}")
        alert = page.locator(".results .state [role=alert]")
        expect(alert).to_contain_text(payload)
        expect(page.get_by_label("Value (1)")).to_have_value(payload)
        assert_nothing_ran(page)


def test_payloads_arriving_in_the_live_tail_are_text(
    guarded: Page, console: Console, key: str
) -> None:
    page = guarded
    sign_in_with_key(page, console, key, "?type[prefix]=x.live")
    page.get_by_role("button", name="Live tail").click()
    expect(page.locator(".tail")).to_have_attribute("data-state", "live")
    console.write([payload_event(i, p, "x.live") for i, p in enumerate(PAYLOADS)], writer(console))
    expect(page.locator("table.events tbody tr.new")).to_have_count(len(PAYLOADS))
    types = [row["Type"] for row in rows(page)]
    assert sorted(types) == sorted(f"x.live {p}" for p in PAYLOADS)
    page.locator("table.events tbody tr.new").first.locator("td.data").click()
    expect(page.locator("dialog.detail")).to_be_visible()
    expect(page.locator("dialog.detail #detail-title")).to_have_text(f"x.live {PAYLOADS[-1]}")
    assert_nothing_ran(page)


def test_a_payload_in_a_viewer_links_filter_is_text_in_its_banner(
    guarded: Page, console: Console, key: str
) -> None:
    del key  # the module's events, written
    page = guarded
    payload = PAYLOADS[0]
    with console.client(console.key(TENANT, "admin")) as client:
        answer = client.post("/v1/viewer-tokens", json={"filter": {"source": payload}})
        assert answer.status_code == 201, answer.text
        token = answer.json()["token"]
    page.goto(f"{console.url}/ui/?token={token}")
    wait_results(page)
    expect(page.locator(".viewer-banner")).to_contain_text(f"source = {payload}")
    # Only the events of that source: this module's and its live tail's.
    assert {row["Type"] for row in rows(page)} <= {f"x.live {payload}", f"x.xss {payload}"}
    assert f"x.xss {payload}" in [row["Type"] for row in rows(page)]
    assert_nothing_ran(page)

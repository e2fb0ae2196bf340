"""Live tail and export in the console (API.md §10): events written by the test appear at the
top while the search's filters hold, pausing stops them and resuming brings what came
meanwhile; the current search exported as CSV and NDJSON, downloaded and parsed back, is the
search's events. Tenants ``ui-tail`` and ``ui-export``.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from ui.conftest import Console
from ui.steps import sign_in_with_key

pytestmark = pytest.mark.slow


def first_rows(page: Page, n: int) -> list[str]:
    """The Type and Data cells of the first ``n`` rows, and whether each is marked new."""
    shown: list[str] = page.evaluate(
        """(n) => [...document.querySelectorAll('table.events tbody tr')].slice(0, n)
             .map((tr) => `${tr.dataset.live === '1' ? 'new ' : ''}${tr.cells[1].textContent}`
               + ` ${tr.cells[5].textContent}`)""",
        n,
    )
    return shown


def test_the_live_tail_shows_new_matching_events_at_the_top_and_pauses(
    page: Page, console: Console
) -> None:
    writer = console.key("ui-tail", "events:write,events:read")
    console.write([{"type": "t.tail", "data": {"n": 0}}], writer)
    sign_in_with_key(page, console, console.key("ui-tail", "events:read"), "?type=t.tail")
    assert first_rows(page, 5) == ["t.tail n=0"]
    tail = page.locator(".tail")
    page.get_by_role("button", name="Live tail").click()
    expect(tail).to_have_attribute("data-state", "live")

    # An event outside the filters, then one inside: only the second shows, at the top.
    console.write([{"type": "t.other", "data": {"n": 1}}], writer)
    console.write([{"type": "t.tail", "data": {"n": 2}}], writer)
    expect(page.locator("table.events tbody tr")).to_have_count(2)
    assert first_rows(page, 5) == ["new t.tail n=2", "t.tail n=0"]
    console.write(
        [{"type": "t.tail", "data": {"n": 3}}, {"type": "t.tail", "data": {"n": 4}}], writer
    )
    expect(page.locator("table.events tbody tr")).to_have_count(4)
    assert first_rows(page, 5) == [
        "new t.tail n=4",
        "new t.tail n=3",
        "new t.tail n=2",
        "t.tail n=0",
    ]
    expect(page.locator("#results-summary")).to_have_text(
        "1 event on this page and 3 new since (marked)."
    )

    # Paused: nothing arrives; resumed: what came meanwhile arrives, in order.
    page.get_by_role("button", name="Pause live tail").click()
    expect(tail).to_have_attribute("data-state", "paused")
    console.write(
        [{"type": "t.tail", "data": {"n": 5}}, {"type": "t.other", "data": {"n": 6}}], writer
    )
    expect(page.locator("table.events tbody tr")).to_have_count(4)
    page.get_by_role("button", name="Resume live tail").click()
    expect(tail).to_have_attribute("data-state", "live")
    expect(page.locator("table.events tbody tr")).to_have_count(5)
    console.write([{"type": "t.tail", "data": {"n": 7}}], writer)
    expect(page.locator("table.events tbody tr")).to_have_count(6)
    assert first_rows(page, 3) == ["new t.tail n=7", "new t.tail n=5", "new t.tail n=4"]


def test_the_live_tail_follows_a_changed_search(page: Page, console: Console) -> None:
    writer = console.key("ui-tail", "events:write,events:read")
    sign_in_with_key(page, console, console.key("ui-tail", "events:read"), "?type=t.follow.a")
    page.get_by_role("button", name="Live tail").click()
    expect(page.locator(".tail")).to_have_attribute("data-state", "live")
    page.get_by_label("Type", exact=True).fill("t.follow.b")
    page.get_by_label("Type", exact=True).press("Enter")
    expect(page.locator("#results-summary")).to_have_text("No events match.")
    expect(page.locator(".tail")).to_have_attribute("data-state", "live")
    console.write([{"type": "t.follow.a", "data": {"n": 1}}], writer)
    console.write([{"type": "t.follow.b", "data": {"n": 2}}], writer)
    expect(page.locator("table.events tbody tr")).to_have_count(1)
    assert first_rows(page, 2) == ["new t.follow.b n=2"]


# -- export --------------------------------------------------------------------------------

EXPORTED = [
    {"id": "x-1", "type": "x.export", "actor": {"id": "alice", "type": "user", "name": "A, \"L\""},
     "subject": {"id": "inv-1", "type": "invoice", "name": "=HYPERLINK(\"x\")"},
     "source": "billing", "outcome": "success",
     "data": {"amount": 120, "note": "line one\nline two", "tags": ["a", "b"]}},
    {"id": "x-2", "type": "x.export", "actor": "bob", "data": {"amount": 7}},
    {"id": "x-3", "type": "x.export", "actor": "bob", "outcome": "failure", "data": {}},
    {"id": "x-4", "type": "x.other", "actor": "bob", "data": {"amount": 7}},
]  # fmt: skip


@pytest.fixture(scope="module")
def export_key(console: Console) -> str:
    console.write(EXPORTED, console.key("ui-export", "events:write,events:read"))
    return console.key("ui-export", "events:read")


def searched(console: Console, key: str, params: dict[str, str]) -> list[dict[str, Any]]:
    """The search's events through the API, oldest first (as an export gives them)."""
    with console.client(key) as client:
        answer = client.get("/v1/events", params={**params, "order": "asc"})
        assert answer.status_code == 200
        events: list[dict[str, Any]] = answer.json()["events"]
        return events


def download(page: Page, button: str) -> str:
    with page.expect_download() as info:
        page.get_by_role("button", name=button).click()
    path = info.value.path()
    return path.read_text(encoding="utf-8")


def csv_cell(value: Any) -> str:
    """A value as the CSV export writes it: with a leading ' where a spreadsheet would run it."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def test_the_search_exported_as_ndjson_is_its_events(
    page: Page, console: Console, export_key: str
) -> None:
    sign_in_with_key(page, console, export_key, "?type=x.export")
    text = download(page, "Export NDJSON")
    expected = searched(console, export_key, {"type": "x.export"})
    assert [json.loads(line) for line in text.splitlines()] == expected
    assert [e["id"] for e in expected] == ["x-1", "x-2", "x-3"]
    expect(page.locator(".export-state")).to_contain_text("3 events")


def test_the_search_exported_as_csv_is_its_events(
    page: Page, console: Console, export_key: str
) -> None:
    sign_in_with_key(page, console, export_key, "?type=x.export&actor=bob")
    text = download(page, "Export CSV")
    expected = searched(console, export_key, {"type": "x.export", "actor": "bob"})
    table = list(csv.reader(io.StringIO(text, newline="")))
    header, body = table[0], table[1:]
    assert header == [
        "seq",
        "id",
        "time",
        "received_at",
        "type",
        "actor.id",
        "actor.type",
        "actor.name",
        "subject.id",
        "subject.type",
        "subject.name",
        "source",
        "outcome",
        "data",
    ]
    assert len(body) == len(expected) == 2
    for row, event in zip(body, expected, strict=True):
        cells = dict(zip(header, row, strict=True))
        assert json.loads(cells.pop("data")) == event["data"]
        for column, cell in cells.items():
            value: Any = event
            for part in column.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            assert cell == csv_cell(value), column


def test_csv_quotes_and_guards_what_it_must(page: Page, console: Console, export_key: str) -> None:
    sign_in_with_key(page, console, export_key, "?type=x.export&actor=alice")
    text = download(page, "Export CSV")
    (row,) = list(csv.DictReader(io.StringIO(text, newline="")))
    assert row["actor.name"] == 'A, "L"'
    assert row["subject.name"] == '\'=HYPERLINK("x")'
    assert json.loads(row["data"]) == EXPORTED[0]["data"]

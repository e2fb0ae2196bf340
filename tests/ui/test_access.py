"""Accessibility of the console: the main flow with the keyboard alone, an accessible name on
every control, text contrast of at least 4.5:1 (WCAG AA) measured on the rendered page in the
light and the dark colour scheme, no horizontal scrolling at 360 px and a layout that holds at
1920 px; and screenshots of the main screens at 1280 and 360 px into the ``artefacts``
directory. Tenant ``ui-access``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from ui.conftest import PASSWORD, WAIT_MS, Console, PageProblems, watch
from ui.steps import open_console, sign_in_with_key, wait_results

pytestmark = pytest.mark.slow

TENANT = "ui-access"
EVENTS = [
    {"id": f"a-{i}", "type": "a.invoice.paid" if i % 2 else "a.user.login",
     "actor": {"id": f"user-{i}", "type": "user", "name": f"User number {i}"},
     "subject": {"id": f"inv-{i}", "type": "invoice"}, "source": "billing",
     "outcome": ["success", "failure", "unknown"][i % 3],
     "data": {"amount": 100 + i, "currency": "EUR", "location": {"city": "Seattle"},
              "note": "A rather long note that a narrow screen has to wrap somewhere " * 2}}
    for i in range(12)
]  # fmt: skip


@pytest.fixture(scope="module")
def key(console: Console) -> str:
    admin = console.key(TENANT, "admin")
    console.write(EVENTS, admin)
    return admin


@pytest.fixture
def make_page(browser: Browser, console: Console) -> Iterator[Any]:
    """Pages in contexts of a given size and colour scheme, each checked as ``page`` is."""
    opened: list[tuple[Any, PageProblems]] = []

    def new(width: int = 1280, height: int = 900, scheme: str = "light") -> Page:
        context = browser.new_context(
            viewport={"width": width, "height": height},
            color_scheme=scheme,  # type: ignore[arg-type]
        )
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


def focused(page: Page) -> str:
    """What has the focus: tag, name and accessible label, for the test's messages."""
    text: str = page.evaluate(
        """() => { const e = document.activeElement; return e ? `${e.tagName.toLowerCase()}`
             + `${e.name ? '[name=' + e.name + ']' : ''} ${e.getAttribute('aria-label') || ''}`
             + ` ${(e.textContent || '').trim().slice(0, 40)}` : '' }"""
    )
    return text


def tab_to(page: Page, selector: str, limit: int = 60) -> None:
    """Press Tab until the element matching ``selector`` has the focus."""
    for _ in range(limit):
        if page.evaluate(f"() => document.activeElement.matches({selector!r})"):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {selector}; the focus is on {focused(page)}")


def test_the_main_flow_works_with_the_keyboard_alone(
    page: Page, console: Console, key: str
) -> None:
    open_console(page, console)
    tab_to(page, "input[name=api-key]")
    page.keyboard.type(key)
    page.keyboard.press("Enter")
    wait_results(page)
    # "/" goes to the full-text box; typing and Enter search.
    page.keyboard.press("/")
    tab_to(page, "input[name=q]")
    page.keyboard.type("Seattle")
    tab_to(page, "input[name=type]")
    page.keyboard.type("a.invoice.paid")
    page.keyboard.press("Enter")
    wait_results(page)
    expect(page.locator("table.events tbody tr")).to_have_count(6)
    assert "type=a.invoice.paid" in page.url
    # To a row's link, Enter opens its detail; the focus goes into the dialog.
    tab_to(page, "table.events tbody a")
    page.keyboard.press("Enter")
    dialog = page.locator("dialog.detail")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button", name="Close")).to_be_focused()
    # The integrity check is reached from within the dialog; Escape closes it.
    tab_to(page, "section.integrity button")
    page.keyboard.press("Enter")
    expect(dialog.locator("section.integrity")).to_have_attribute("data-result", "verified")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    # Focus comes back to the page, and the Close button works from the keyboard too.
    tab_to(page, "table.events tbody a")
    page.keyboard.press("Enter")
    expect(dialog.get_by_role("button", name="Close")).to_be_focused()
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    expect(page).not_to_have_url(re.compile("event="))  # the dialog's close event follows
    # And signing out.
    tab_to(page, "#identity button:not([aria-pressed])")
    page.keyboard.press("Enter")
    expect(page.locator(".signin-page")).to_be_visible()


def test_signing_in_with_a_password_works_with_the_keyboard_alone(
    page: Page, console: Console
) -> None:
    open_console(page, console)
    expect(page.get_by_label("Username", exact=True)).to_be_focused()  # where the page starts
    page.keyboard.press("Enter")  # empty: told what to do, and the focus stays
    expect(page.locator(".signin").first.get_by_role("alert")).to_have_text(
        "Enter both your username and your password."
    )
    page.keyboard.type("alice")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password", exact=True)).to_be_focused()
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    wait_results(page)
    expect(page.locator(".whoami")).to_contain_text("alice")


#: Every control without an accessible name: its label(s), aria-label(ledby), or its text.
UNNAMED = """() => [...document.querySelectorAll(
    'input, select, textarea, button, a[href], [tabindex]:not([tabindex="-1"])')].filter((e) => {
  if (e.type === 'hidden') return false;
  const labelled = (e.getAttribute('aria-labelledby') || '').split(/\\s+/).filter(Boolean)
    .map((id) => document.getElementById(id)).some((l) => l && l.textContent.trim());
  const labels = [...(e.labels || [])].some((l) => l.textContent.trim());
  const aria = (e.getAttribute('aria-label') || '').trim();
  const own = ['BUTTON', 'A'].includes(e.tagName) && e.textContent.trim();
  return !(labelled || labels || aria || own || (e.title || '').trim());
}).map((e) => e.outerHTML.slice(0, 120))"""


def test_every_control_has_an_accessible_name(page: Page, console: Console, key: str) -> None:
    open_console(page, console)
    assert page.evaluate(UNNAMED) == []
    sign_in_with_key(
        page, console, key, "?data.amount[gt]=100&range=custom&since=2020-01-01T00:00:00Z"
    )
    page.get_by_role("button", name="Add condition").click()
    assert page.evaluate(UNNAMED) == []
    # The names read as they should for the controls a screen reader user needs most.
    for role, name in [("searchbox", "Full text"), ("combobox", "Time"), ("button", "Search"),
                       ("button", "Live tail"), ("button", "Export CSV"),
                       ("combobox", "Field path (2)"), ("combobox", "Operator (2)"),
                       ("textbox", "Value (2)"), ("button", "Remove condition 2")]:  # fmt: skip
        expect(page.get_by_role(role, name=name, exact=True)).to_have_count(1)  # type: ignore[arg-type]
    page.locator("table.events tbody td.data").first.click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    assert page.evaluate(UNNAMED) == []
    expect(dialog.get_by_role("button", name="Close", exact=True)).to_have_count(1)
    expect(dialog.get_by_role("button", name="Copy as JSON", exact=True)).to_have_count(1)


#: Each element showing text of its own: its colour, the background under it (alpha blended
#: up through its ancestors) and the contrast ratio (WCAG 2 relative luminance).
CONTRAST = """() => {
  const parse = (c) => { const m = c.match(/rgba?\\(([^)]+)\\)/); if (!m) return null;
    const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; };
  const over = (top, bottom) => { const a = top[3];
    return [0, 1, 2].map((i) => top[i] * a + bottom[i] * (1 - a)).concat([1]); };
  const background = (el) => { const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c[3] > 0) { layers.push(c); if (c[3] >= 1) break; } }
    let color = [255, 255, 255, 1];
    const html = parse(getComputedStyle(document.documentElement).backgroundColor);
    if (html && html[3] > 0) color = over(html, color);
    for (const c of layers.reverse()) color = over(c, color);
    return color; };
  const lum = (c) => { const [r, g, b] = c.slice(0, 3).map((v) => { v /= 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const out = [];
  for (const el of document.querySelectorAll('body *')) {
    if (!el.checkVisibility || !el.checkVisibility()) continue;
    if (el.closest('[disabled], .visually-hidden, option')) continue;
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own) continue;
    const style = getComputedStyle(el);
    const bg = background(el);
    const fg = over(parse(style.color), bg);
    const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    out.push({ text: el.textContent.trim().slice(0, 40), tag: el.tagName, cls: el.className,
               ratio: (a + 0.05) / (b + 0.05), color: style.color,
               background: `rgb(${bg.slice(0, 3).map(Math.round).join(',')})` });
  }
  return out;
}"""


def low_contrast(page: Page) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = page.evaluate(CONTRAST)
    assert found, "no text measured"
    return [item for item in found if item["ratio"] < 4.5]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_text_contrast_passes_wcag_aa(
    make_page: Any, console: Console, key: str, scheme: str
) -> None:
    page: Page = make_page(scheme=scheme)
    open_console(page, console)
    page.get_by_role("button", name="Use this key").click()  # an error shown, too
    assert low_contrast(page) == []
    page.get_by_label("API key", exact=True).fill(key)
    page.get_by_role("button", name="Use this key").click()
    wait_results(page)
    assert low_contrast(page) == []
    page.locator("table.events tbody td.data").first.click()
    dialog = page.locator("dialog.detail")
    dialog.get_by_role("button", name="Check this event against the signed log").click()
    expect(dialog.locator("section.integrity")).to_have_attribute("data-result", "verified")
    assert low_contrast(page) == []


def test_the_two_schemes_differ(make_page: Any, console: Console) -> None:
    colours = []
    for scheme in ("light", "dark"):
        page: Page = make_page(scheme=scheme)
        open_console(page, console)
        colours.append(page.evaluate("() => getComputedStyle(document.body).backgroundColor"))
    assert colours[0] != colours[1]


@pytest.mark.parametrize("width", [360, 1920])
def test_no_horizontal_scrolling_at_360_and_1920_px(
    make_page: Any, console: Console, key: str, width: int
) -> None:
    page: Page = make_page(width=width, height=800)

    def fits() -> None:
        wide = page.evaluate("() => document.documentElement.scrollWidth")
        assert wide <= width, f"the page is {wide} px wide at {width} px"

    open_console(page, console, "?source=billing")
    fits()
    page.get_by_label("API key", exact=True).fill(key)
    page.get_by_role("button", name="Use this key").click()
    wait_results(page)
    fits()
    expect(page.locator("table.events tbody tr")).to_have_count(12)
    # Every row and the search button are within the viewport's width.
    right = page.evaluate(
        "() => Math.max(...[...document.querySelectorAll('table.events tbody tr, form.search"
        " button')].map((e) => e.getBoundingClientRect().right))"
    )
    assert right <= width
    page.locator("table.events tbody td.data").first.click()
    expect(page.locator("dialog.detail")).to_be_visible()
    fits()
    box = page.locator("dialog.detail").bounding_box()
    assert box is not None
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= width


SCREENS = ["signin", "results", "detail", "integrity", "tail"]


@pytest.mark.parametrize("width", [1280, 360])
def test_screenshots_of_the_main_screens(
    make_page: Any, console: Console, key: str, artefacts: Path, width: int
) -> None:
    page: Page = make_page(width=width, height=900)
    open_console(page, console, "?source=billing")
    page.screenshot(path=artefacts / f"signin-{width}.png", full_page=True)
    page.get_by_label("API key", exact=True).fill(key)
    page.get_by_role("button", name="Use this key").click()
    wait_results(page)
    page.screenshot(path=artefacts / f"results-{width}.png", full_page=True)
    page.locator("table.events tbody td.data").first.click()
    dialog = page.locator("dialog.detail")
    expect(dialog).to_be_visible()
    page.screenshot(path=artefacts / f"detail-{width}.png")
    dialog.get_by_role("button", name="Check this event against the signed log").click()
    expect(dialog.locator("section.integrity")).to_have_attribute("data-result", "verified")
    dialog.locator("section.integrity").scroll_into_view_if_needed()
    page.screenshot(path=artefacts / f"integrity-{width}.png")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    page.get_by_role("button", name="Live tail").click()
    expect(page.locator(".tail")).to_have_attribute("data-state", "live")
    console.write(
        [{"type": "a.user.login", "actor": "tail-user", "source": "billing", "data": {"n": 1}}], key
    )
    expect(page.locator("table.events tbody tr.new")).to_have_count(1)
    page.screenshot(path=artefacts / f"tail-{width}.png", full_page=True)
    for screen in SCREENS:
        assert (artefacts / f"{screen}-{width}.png").stat().st_size > 0

"""The integrity check in the browser (API.md §5, §12): an event of an intact log checks out
against the signed checkpoint, showing what was checked (the verifier key, the checkpoint's
signature, the event's leaf hash, the proof up to the root); after the test changes that
event's stored bytes in the SQLite file, the same check fails and says where.

This breaks a log, so it runs on a server of its own.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import Browser, Locator, Page, Playwright, Route, expect

from auditlog.model.canonical import canonical_bytes
from live_server import create_key, serving
from ui.conftest import CHROMIUM, LAUNCH_ARGS, WAIT_MS, Console, PageProblems, watch
from ui.steps import sign_in_with_key

pytestmark = pytest.mark.slow

TENANT = "ui-proof"
#: The tenant's first id in a fresh database, and how a seq is kept in the events' key
#: (tests/cli/test_verify.py).
SEQ_BITS = 40


@dataclass
class Proofs:
    console: Console
    key: str


@pytest.fixture(scope="module")
def proofs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proofs]:
    data = tmp_path_factory.mktemp("ui-proof")
    admin = create_key(data, TENANT, "admin")
    log = tmp_path_factory.mktemp("ui-proof-log") / "serve.log"
    with serving(data, log) as server:
        console = Console(server, data, admin)
        console.write(
            [
                {"id": f"p-{i}", "type": "p.event", "data": {"n": i, "note": f"n {i}"}}
                for i in range(9)
            ]
        )
        yield Proofs(console, console.key(TENANT, "events:read,log:read"))


@pytest.fixture
def proof_page(browser: Browser, proofs: Proofs) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    problems = watch(page, PageProblems(proofs.console.url))
    try:
        yield page
        assert not problems.unexpected(), problems.unexpected()
    finally:
        context.close()


def check(page: Page, proofs: Proofs, event_id: str) -> Locator:
    """Open the event's detail, run the check, and answer the integrity section once done."""
    sign_in_with_key(page, proofs.console, proofs.key, f"?event={event_id}")
    section = page.locator("dialog.detail section.integrity")
    expect(section).to_be_visible()
    section.get_by_role("button", name="Check this event against the signed log").click()
    expect(section).to_have_attribute("data-result", re.compile("verified|failed"))
    return section


def steps(section: Locator) -> dict[str, tuple[str, str]]:
    """Each step shown: {name: (passed/failed, its detail)}."""
    shown: dict[str, tuple[str, str]] = {}
    for text in section.locator("ul.steps li").all_text_contents():
        mark, rest = text.split(" ", 2)[1], text.split(" ", 2)[2]
        name, detail = rest.split(": ", 1)
        shown[name] = (mark, detail)
    return shown


def stored_body(proofs: Proofs, seq: int) -> bytes:
    db = sqlite3.connect(proofs.console.data / "auditlog.db")
    try:
        key = key_of(db, seq)
        (body,) = db.execute("SELECT body FROM events WHERE key = ?", (key,)).fetchone()
        return bytes(body)
    finally:
        db.close()


def key_of(db: sqlite3.Connection, seq: int) -> int:
    (tenant_id,) = db.execute("SELECT tenant_id FROM tenants WHERE name = ?", (TENANT,)).fetchone()
    return int(tenant_id) << SEQ_BITS | seq


def test_an_event_of_an_intact_log_checks_out_and_shows_what_was_checked(
    proof_page: Page, proofs: Proofs
) -> None:
    section = check(proof_page, proofs, "p-3")
    expect(section).to_have_attribute("data-result", "verified")
    expect(section.locator(".verdict")).to_contain_text(
        "Verified: this event, byte for byte, is entry"
    )
    shown = steps(section)
    assert set(shown) == {"Verifier key", "Checkpoint signature", "Event bytes", "Inclusion proof"}
    assert all(mark == "passed" for mark, _ in shown.values()), shown
    assert "Ed25519" in shown["Checkpoint signature"][1]
    with proofs.console.client(proofs.key) as client:
        event = client.get("/v1/events/p-3").json()
        inclusion = client.get(
            "/v1/log/proof/inclusion", params={"seq": event["seq"], "tree_size": event["seq"] + 1}
        )
        assert inclusion.status_code == 200
        vkey = client.get("/v1/log/public-key").json()["vkey"]
    assert inclusion.json()["leaf_hash"] in shown["Event bytes"][1]
    assert "the checkpoint's root" in shown["Inclusion proof"][1]
    expect(section.locator("code.vkey")).to_have_text(vkey)


def test_a_pinned_key_that_is_not_the_logs_fails_the_signature(
    proof_page: Page, proofs: Proofs
) -> None:
    sign_in_with_key(proof_page, proofs.console, proofs.key, "?event=p-1")
    section = proof_page.locator("dialog.detail section.integrity")
    with proofs.console.client(proofs.key) as client:
        vkey = client.get("/v1/log/public-key").json()["vkey"]
    name, key_id, key = vkey.split("+", 2)  # the base64 key may hold "+" itself
    forged = f"{name}+{key_id}+{key[:4]}{'A' if key[4] != 'A' else 'B'}{key[5:]}"
    section.get_by_label("Verifier key you trust (optional)").fill(forged)
    section.get_by_role("button", name="Check this event against the signed log").click()
    expect(section).to_have_attribute("data-result", re.compile("failed|error"))


def test_an_event_whose_stored_bytes_were_changed_fails_and_says_where(
    proof_page: Page, proofs: Proofs
) -> None:
    with proofs.console.client(proofs.key) as client:
        event = client.get("/v1/events/p-5").json()
    seq = event["seq"]
    original = stored_body(proofs, seq)
    tampered = dict(event, data={**event["data"], "n": 500})
    db = sqlite3.connect(proofs.console.data / "auditlog.db", isolation_level=None)
    try:
        db.execute(
            "UPDATE events SET body = ? WHERE key = ?", (canonical_bytes(tampered), key_of(db, seq))
        )
    finally:
        db.close()
    assert stored_body(proofs, seq) != original

    section = check(proof_page, proofs, "p-5")
    expect(section).to_have_attribute("data-result", "failed")
    expect(section.locator(".verdict")).to_contain_text("NOT verified")
    shown = steps(section)
    assert shown["Verifier key"][0] == "passed"
    assert shown["Checkpoint signature"][0] == "passed"
    assert shown["Event bytes"][0] == "failed"
    assert f"but the log's leaf {seq} is" in shown["Event bytes"][1]
    assert "the event is not what the log holds" in shown["Event bytes"][1]
    assert shown["Inclusion proof"][0] == "failed"
    assert "not to the checkpoint's root" in shown["Inclusion proof"][1]
    # The detail shows what the service now serves: the changed value.
    expect(proof_page.locator("dialog.detail pre.json")).to_contain_text('"n":500')

    # Its neighbours still check out: the failure is that event's alone.
    proof_page.goto(f"{proofs.console.url}/ui/?event=p-4")
    section = proof_page.locator("dialog.detail section.integrity")
    expect(proof_page.locator("dialog.detail pre.json")).to_contain_text('"id":"p-4"')
    section.get_by_role("button", name="Check this event against the signed log").click()
    expect(section).to_have_attribute("data-result", "verified")


def test_without_log_read_the_check_says_why_it_cannot_be_made(
    proof_page: Page, proofs: Proofs
) -> None:
    reader = proofs.console.key(TENANT, "events:read")
    sign_in_with_key(proof_page, proofs.console, reader, "?event=p-2")
    section = proof_page.locator("dialog.detail section.integrity")
    section.get_by_role("button", name="Check this event against the signed log").click()
    expect(section).to_have_attribute("data-result", "unavailable")
    expect(section).to_contain_text("lacks the scope log:read")


def test_over_plain_http_to_another_host_it_says_webcrypto_is_absent(
    playwright: Playwright, proofs: Proofs
) -> None:
    # A name that resolves to the server but is not "localhost": not a secure context, so the
    # browser offers no WebCrypto, and the console says so rather than showing a check.
    host = "auditlog-console.test"
    browser = playwright.chromium.launch(
        executable_path=str(CHROMIUM),
        args=[*LAUNCH_ARGS, f"--host-resolver-rules=MAP {host} 127.0.0.1"],
    )
    try:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(WAIT_MS)
        page = context.new_page()
        origin = proofs.console.url.replace("127.0.0.1", host)
        problems = watch(page, PageProblems(origin))
        sign_in_with_key(page, origin, proofs.key, "?event=p-2")
        assert page.evaluate("() => window.isSecureContext") is False
        section = page.locator("dialog.detail section.integrity")
        section.get_by_role("button", name="Check this event against the signed log").click()
        expect(section).to_have_attribute("data-result", "unavailable")
        expect(section).to_contain_text("offers no WebCrypto to this page")
        expect(section.locator("ul.steps")).to_have_count(0)
        assert not problems.unexpected(), problems.unexpected()
    finally:
        browser.close()


def test_the_check_waits_for_the_event_to_load(proof_page: Page, proofs: Proofs) -> None:
    """While the event is still loading the button is disabled, so a click then is not lost:
    it is made once the event is shown (the event's read held back by 1.5 s here)."""
    release = {"at": 0.0}

    def slow_event(route: Route) -> None:
        proof_page.wait_for_timeout(1500)
        release["at"] = 1.0
        route.continue_()

    proof_page.route(re.compile(r".*/v1/events/p-2$"), slow_event)
    sign_in_with_key(proof_page, proofs.console, proofs.key, "?event=p-2")
    section = proof_page.locator("dialog.detail section.integrity")
    button = section.get_by_role("button", name="Check this event against the signed log")
    expect(button).to_be_disabled()
    button.click()
    expect(section).to_have_attribute("data-result", "verified")
    assert release["at"] == 1.0

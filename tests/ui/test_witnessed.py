"""The witnesses in the browser's integrity check (API.md §13): an event of a witnessed log
shows the witnesses that cosigned the tenants checkpoint holding it, each cosignature checked
in the browser, and the witness that did not; a cosignature changed on its way to the browser
is a failure that names it; an event after the newest witnessed checkpoint is "not witnessed
yet"; a service without witnesses says so without an error.

The service runs with a witness policy of three witnesses: two ``auditlog witness serve``
processes on free ports of 127.0.0.1 and a third whose port nothing listens on. The log's
signing key is a file of the test's, so the tenants log's key, which the witnesses' own policy
names, is known before the service starts. Every process is stopped by its pid.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, Route, expect

from auditlog.integrity import note as notes
from auditlog.witness import keys
from live_server import START_TIMEOUT, STOP_TIMEOUT, create_key, environment, free_port, serving
from ui.conftest import WAIT_MS, Console, PageProblems, watch
from ui.steps import sign_in_with_key

pytestmark = pytest.mark.slow

TENANT = "ui-witnessed"
ORIGIN = "ui-witness.test"
SEED = bytes(range(1, 33))
CHECK = "Check this event against the signed log"


@dataclass
class Witnessed:
    console: Console
    key: str
    witnesses: list[str]  # the policy's names: two that run, then one that does not


@contextlib.contextmanager
def witness_process(tmp: Path, name: str, policy: Path, port: int) -> Iterator[None]:
    """``auditlog witness serve`` for ``name`` on ``port``, stopped by its pid."""
    key_file = tmp / f"{name}.key"
    output = tmp / f"{name}.log"
    with open(output, "wb") as out:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "auditlog", "witness", "serve",
                "--key-file", str(key_file), "--policy", str(policy),
                "--port", str(port), "--state", str(tmp / f"{name}-state"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=environment(),
        )  # fmt: skip
    try:
        deadline = time.monotonic() + START_TIMEOUT
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=2.0) as client:
            while True:
                assert process.poll() is None, output.read_text()
                assert time.monotonic() < deadline, output.read_text()
                with contextlib.suppress(httpx.TransportError):
                    if client.get("/").status_code == 200:
                        break
                time.sleep(0.05)
        yield
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=STOP_TIMEOUT)


def wait_witnessed(console: Console, key: str, size: int) -> dict[str, Any]:
    """GET /v1/log/witnessed once its tenant checkpoint has at least ``size`` events."""
    deadline = time.monotonic() + WAIT_MS / 1000
    with console.client(key) as client:
        while True:
            answer = client.get("/v1/log/witnessed")
            if answer.status_code == 200:
                found: dict[str, Any] = answer.json()
                if int(found["checkpoint"].split("\n")[1]) >= size:
                    return found
            else:
                assert answer.status_code == 404, answer.text
            assert time.monotonic() < deadline, f"not witnessed in time: {answer.text}"
            time.sleep(0.1)


@pytest.fixture(scope="module")
def witnessed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Witnessed]:
    tmp = tmp_path_factory.mktemp("ui-witnessed")
    seed_file = tmp / "log.key"
    seed_file.write_text(base64.b64encode(SEED).decode("ascii") + "\n")
    seed_file.chmod(0o600)
    tenants_vkey = notes.Signer(ORIGIN, SEED).verifier.vkey
    witness_policy = tmp / "witness-policy.txt"
    witness_policy.write_text(f"log {tenants_vkey}\nquorum none\n")

    names = ["w1.ui.test", "w2.ui.test", "w3.ui.test"]
    ports = [free_port() for _ in names]
    lines = [f"log {tenants_vkey}"]
    for name, port in zip(names, ports, strict=True):
        cosigner = keys.make(tmp / f"{name}.key", name)
        lines.append(f"witness {name} {cosigner.key.vkey} http://127.0.0.1:{port}")
    lines += [f"group q 2 {' '.join(names)}", "quorum q"]
    policy = tmp / "policy.txt"
    policy.write_text("\n".join(lines) + "\n")

    data = tmp / "data"
    data.mkdir()
    admin = create_key(data, TENANT, "admin")
    with (
        witness_process(tmp, names[0], witness_policy, ports[0]),
        witness_process(tmp, names[1], witness_policy, ports[1]),
        serving(
            data, tmp / "serve.log",
            "--log-origin", ORIGIN,
            "--log-signing-key-file", str(seed_file),
            "--witness-policy", str(policy),
            "--witness-timeout-ms", "1000",
        ) as server,
    ):  # fmt: skip
        console = Console(server, data, admin)
        reader = console.key(TENANT, "events:read,log:read")
        with console.client(reader) as client:
            assert client.get("/v1/log/witnesses").json()["tenants_vkey"] == tenants_vkey
        console.write([{"id": f"w-{i}", "type": "w.event", "data": {"n": i}} for i in range(6)])
        yield Witnessed(console, reader, names)


@pytest.fixture
def witness_page(browser: Browser, witnessed: Witnessed) -> Iterator[tuple[Page, PageProblems]]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    problems = watch(page, PageProblems(witnessed.console.url))
    try:
        yield page, problems
        page.wait_for_timeout(50)
        assert not problems.unexpected(), problems.unexpected()
    finally:
        context.close()


def run_check(page: Page, origin: Console, key: str, event_id: str) -> Locator:
    """Open the event's detail, run the check, and answer the integrity section once done."""
    sign_in_with_key(page, origin, key, f"?event={event_id}")
    section = page.locator("dialog.detail section.integrity")
    expect(section).to_be_visible()
    section.get_by_role("button", name=CHECK).click()
    expect(section).to_have_attribute("data-result", re.compile("verified|failed"))
    return section


def witness_steps(section: Locator) -> dict[str, tuple[str, str]]:
    """Each step of the witnesses' part: {label: (passed/failed, its detail)}."""
    shown: dict[str, tuple[str, str]] = {}
    for text in section.locator("ul.witness-steps li").all_text_contents():
        _, mark, rest = text.split(" ", 2)
        label, detail = rest.split(": ", 1)
        shown[label] = (mark, detail)
    return shown


def event_seq(witnessed: Witnessed, event_id: str) -> int:
    with witnessed.console.client(witnessed.key) as client:
        seq: int = client.get(f"/v1/events/{event_id}").json()["seq"]
        return seq


def test_a_witnessed_event_shows_who_cosigned_it_and_who_did_not(
    witness_page: tuple[Page, PageProblems], witnessed: Witnessed, artefacts: Path
) -> None:
    page, _ = witness_page
    seq = event_seq(witnessed, "w-4")
    wait_witnessed(witnessed.console, witnessed.key, seq + 1)
    section = run_check(page, witnessed.console, witnessed.key, "w-4")
    expect(section).to_have_attribute("data-result", "verified")
    expect(section).to_have_attribute("data-witnessed", "witnessed")
    w1, w2, w3 = witnessed.witnesses
    # The log goes on growing (the service records reads of its own), so the sizes are those
    # of the moment: the event is in the tenant checkpoint shown.
    verdict = section.locator(".witness-verdict").text_content() or ""
    shown_sizes = re.fullmatch(
        r"Witnessed: tenant checkpoint of size (\d+) in tenants checkpoint of size (\d+), "
        + re.escape(f"cosigned by {w1}, {w2} (quorum: group q 2 {w1} {w2} {w3}; quorum q)."),
        verdict,
    )
    assert shown_sizes, verdict
    assert int(shown_sizes.group(1)) > seq
    answer = wait_witnessed(witnessed.console, witnessed.key, int(shown_sizes.group(1)))
    assert answer["tenants_size"] >= int(shown_sizes.group(2))
    cosigners = section.locator("ul.cosigners li").all_text_contents()
    assert [c.split(" ")[0] for c in cosigners] == [w1, w2]
    assert all(
        re.fullmatch(r"\S+ cosigned at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", c) for c in cosigners
    )
    shown = witness_steps(section)
    assert set(shown) == {
        "Witnessed checkpoint",
        "Event in the witnessed checkpoint",
        "Tenants checkpoint signature",
        "Tenant checkpoint in the tenants log",
        f"Cosignature of {w1}",
        f"Cosignature of {w2}",
        "Quorum",
    }
    assert all(mark == "passed" for mark, _ in shown.values()), shown
    assert re.search(
        r"is leaf \d+ of the tenants log", shown["Tenant checkpoint in the tenants log"][1]
    )
    assert shown["Quorum"][1].endswith(f"met by {w1}, {w2}")
    missing = section.locator("ul.not-cosigned li")
    expect(missing).to_have_count(1)
    expect(missing).to_contain_text(f"{w3} did not cosign it")
    expect(missing).to_contain_text("its last error")
    with witnessed.console.client(witnessed.key) as client:
        tenants_vkey = client.get("/v1/log/witnesses").json()["tenants_vkey"]
    expect(section.locator(".witnesses code.vkey")).to_have_text(tenants_vkey)
    section.locator(".witnesses").scroll_into_view_if_needed()
    page.screenshot(path=artefacts / "witnessed-1280.png")


def test_a_changed_cosignature_is_a_failure_that_names_its_witness(
    witness_page: tuple[Page, PageProblems], witnessed: Witnessed
) -> None:
    page, _ = witness_page
    wait_witnessed(witnessed.console, witnessed.key, event_seq(witnessed, "w-2") + 1)
    w1, w2, _ = witnessed.witnesses

    def flip(route: Route) -> None:
        response = route.fetch()
        body = response.json()
        lines = body["tenants_checkpoint"].split("\n")
        for i, line in enumerate(lines):
            if line.startswith(f"\u2014 {w1} "):
                raw = bytearray(base64.b64decode(line.split(" ")[2]))
                raw[-1] ^= 0x01  # a bit of the Ed25519 signature
                lines[i] = f"\u2014 {w1} {base64.b64encode(bytes(raw)).decode('ascii')}"
                break
        else:
            raise AssertionError(f"no line of {w1}: {body['tenants_checkpoint']}")
        body["tenants_checkpoint"] = "\n".join(lines)
        route.fulfill(response=response, body=json.dumps(body))

    page.route("**/v1/log/witnessed", flip)
    section = run_check(page, witnessed.console, witnessed.key, "w-2")
    expect(section).to_have_attribute("data-result", "failed")
    expect(section).to_have_attribute("data-witnessed", "failed")
    expect(section.locator(".verdict")).to_contain_text("NOT verified")
    expect(section.locator(".verdict")).to_contain_text(f"Cosignature of {w1}")
    verdict = section.locator(".witness-verdict.bad")
    expect(verdict).to_contain_text(f"NOT witnessed: Cosignature of {w1}, Quorum failed")
    shown = witness_steps(section)
    assert shown[f"Cosignature of {w1}"][0] == "failed"
    assert "does not verify" in shown[f"Cosignature of {w1}"][1]
    assert shown[f"Cosignature of {w2}"][0] == "passed"
    assert shown["Tenants checkpoint signature"][0] == "passed"
    assert shown["Quorum"] == (
        "failed",
        f"group q 2 {w1} {w2} {witnessed.witnesses[2]}; quorum q: NOT met by {w2}",
    )
    # Red, as the event's failed verdict.
    colour = "(e) => getComputedStyle(e).color"
    assert verdict.evaluate(colour) == section.locator(".verdict.bad").evaluate(colour)


def test_a_changed_tenant_checkpoint_fails_its_inclusion_in_the_tenants_log(
    witness_page: tuple[Page, PageProblems], witnessed: Witnessed
) -> None:
    page, _ = witness_page
    wait_witnessed(witnessed.console, witnessed.key, event_seq(witnessed, "w-1") + 1)

    def other_leaf(route: Route) -> None:
        response = route.fetch()
        body = response.json()
        body["leaf_index"] = body["leaf_index"] ^ 1 if body["tenants_size"] > 1 else 0
        route.fulfill(response=response, body=json.dumps(body))

    page.route("**/v1/log/witnessed", other_leaf)
    section = run_check(page, witnessed.console, witnessed.key, "w-1")
    expect(section).to_have_attribute("data-witnessed", "failed")
    shown = witness_steps(section)
    assert shown["Tenant checkpoint in the tenants log"][0] == "failed", shown
    assert shown["Witnessed checkpoint"][0] == "passed"


def test_an_event_after_the_witnessed_checkpoint_is_not_witnessed_yet(
    witness_page: tuple[Page, PageProblems], witnessed: Witnessed
) -> None:
    page, _ = witness_page
    earlier = wait_witnessed(witnessed.console, witnessed.key, 1)
    size = int(earlier["checkpoint"].split("\n")[1])
    (late,) = witnessed.console.write([{"id": "w-late", "type": "w.event", "data": {"n": 99}}])
    assert late["seq"] >= size
    # The service answers the witnessed checkpoint of before the write, as it would within
    # the second after it.
    page.route(
        "**/v1/log/witnessed",
        lambda route: route.fulfill(
            status=200, content_type="application/json", body=json.dumps(earlier)
        ),
    )
    section = run_check(page, witnessed.console, witnessed.key, "w-late")
    expect(section).to_have_attribute("data-result", "verified")
    expect(section).to_have_attribute("data-witnessed", "pending")
    note = section.locator(".witnesses .witness-note")
    expect(note).to_have_text(
        f"Not witnessed yet: this event (seq {late['seq']}) is after the newest witnessed "
        f"checkpoint of this log (size {size}). Witnesses cosign about a second after an event "
        "is written; check again in a moment."
    )
    expect(section.locator(".witnesses .error, .witnesses .witness-verdict")).to_have_count(0)


def test_a_service_without_witnesses_says_so_without_an_error(page: Page, console: Console) -> None:
    key = console.key("acme", "events:read,log:read")
    (event,) = console.write([{"type": "nw.event", "data": {"n": 1}}])
    section = run_check(page, console, key, event["id"])
    expect(section).to_have_attribute("data-result", "verified")
    expect(section).to_have_attribute("data-witnessed", "none")
    note = section.locator(".witnesses .witness-note")
    expect(note).to_contain_text("This service has no witnesses")
    expect(section.locator(".witnesses .error, .witnesses .witness-verdict")).to_have_count(0)
    expect(section.locator("[role=alert]")).to_have_count(0)

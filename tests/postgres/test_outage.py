"""The database goes away under a running service, and comes back.

A private PostgreSQL cluster (``cluster.py``; never the shared server) holds the log of one
``auditlog serve``. A writer thread sends a steady trickle of single events and small batches,
every event with an id of its own, and records every answer. The cluster is stopped as a crash
(``pg_ctl stop -m immediate``) and started again, then stopped cleanly (``-m fast``) and started
again, on the same port, the service running on throughout. Checked:

* while the database is down, every write answers 503 with Retry-After, and so do queries,
  reads by id, the checkpoint and ``/readyz``; nothing answers 500, nothing is acknowledged;
* once it is back, without a restart of the service, writes succeed again and ``/readyz`` is
  200 within a bounded time;
* every acknowledged event is stored exactly once, as answered; every stored event is one that
  was sent, a batch whole or not at all; ``seq`` has no gap;
* a request answered 503 may or may not have been stored (its commit may have landed with the
  reply lost): sent again with the same ids it is answered 201 or 200, and after that every
  event sent is stored exactly once;
* the checkpoints catch up and ``auditlog verify`` finds the log intact.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from live_server import LOAD, Storage, auditlog, create_key, is_own_record, serving
from postgres.cluster import Cluster, cluster
from reliability.ledger import stored_log

pytestmark = [pytest.mark.slow, LOAD]

TENANT = "acme"
REQUEST_TIMEOUT = 15.0
#: Seconds the service has to serve again once the database is back.
RECOVERY_TIMEOUT = 30.0
#: Seconds the database stays down while requests are checked.
DOWN_SECONDS = 1.5
WRITE_PAUSE = 0.02
BATCH = 3


@dataclass
class Sent:
    """One write request of the writer and its answer."""

    events: list[dict[str, Any]]
    batch: bool
    #: The writer's phase when the request was sent and when its answer came.
    phase_sent: int
    phase_answered: int = -1
    status: int | None = None
    body: bytes = b""
    retry_after: str | None = None
    error: str = ""

    @property
    def acknowledged(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def ids(self) -> list[str]:
        return [e["id"] for e in self.events]


@dataclass
class Phases:
    """What the test is doing to the database; odd phases are the database being down."""

    number: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next(self) -> None:
        with self.lock:
            self.number += 1

    def down(self, number: int) -> bool:
        return number % 2 == 1


def post(client: httpx.Client, sent: Sent) -> None:
    body: Any = sent.events if sent.batch else sent.events[0]
    try:
        response = client.post("/v1/events", json=body)
    except httpx.HTTPError as exc:
        sent.error = repr(exc)
        return
    sent.status = response.status_code
    sent.body = response.content
    sent.retry_after = response.headers.get("retry-after")


class Writer:
    """A thread that writes a steady trickle, alternating single events and batches."""

    def __init__(self, url: str, headers: dict[str, str], phases: Phases) -> None:
        self.client = httpx.Client(base_url=url, headers=headers, timeout=REQUEST_TIMEOUT)
        self.phases = phases
        self.sent: list[Sent] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="writer")
        self.failure: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=REQUEST_TIMEOUT * 2)
        assert not self._thread.is_alive(), "the writer did not stop"
        self.client.close()

    def answers(self) -> list[Sent]:
        with self._lock:
            return [s for s in self.sent if s.status is not None or s.error]

    def _run(self) -> None:
        try:
            number = 0
            while not self._stop.is_set():
                batch = number % 2 == 1
                size = BATCH if batch else 1
                events = [
                    {"id": f"w-{number}-{i}", "type": "writer.tick", "data": {"n": number, "i": i}}
                    for i in range(size)
                ]
                sent = Sent(events, batch, self.phases.number)
                with self._lock:
                    self.sent.append(sent)
                post(self.client, sent)
                sent.phase_answered = self.phases.number
                number += 1
                self._stop.wait(WRITE_PAUSE)
        except BaseException as exc:
            self.failure = exc
            raise


def wait_for(what: str, condition: Any, timeout: float, log: Any) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} within {timeout} s\n{log()}")


def assert_unavailable(response: httpx.Response, what: str) -> None:
    assert response.status_code == 503, (what, response.status_code, response.text)
    assert response.headers.get("retry-after", "").isdigit(), (what, response.headers)
    assert response.headers["content-type"].startswith("application/problem+json"), what


def check_down(client: httpx.Client, writer: Writer, known_id: str, probe: str) -> None:
    """While the database is down: every route that needs it answers 503, and so do the
    writer's requests. (Each waits for a connection up to the connect timeout: they are sent
    side by side.)"""
    start = len(writer.answers())
    deadline = time.monotonic() + DOWN_SECONDS
    rounds = 0
    with ThreadPoolExecutor(8, thread_name_prefix="probe") as pool:
        while rounds == 0 or time.monotonic() < deadline:
            rounds += 1
            single = {"id": f"{probe}-{rounds}", "type": "probe"}
            batch = [{"id": f"{probe}-{rounds}-b", "type": "probe"}]
            requests: dict[str, Callable[[], httpx.Response]] = {
                "readyz": partial(client.get, "/readyz"),
                "write": partial(client.post, "/v1/events", json=single),
                "batch": partial(client.post, "/v1/events", json=batch),
                "query": partial(client.get, "/v1/events", params={"type": "writer.tick"}),
                "read by id": partial(client.get, f"/v1/events/{known_id}"),
                "checkpoint": partial(client.get, "/v1/log/checkpoint"),
            }
            answers = {what: pool.submit(send) for what, send in requests.items()}
            for what, answer in answers.items():
                assert_unavailable(answer.result(timeout=REQUEST_TIMEOUT * 2), what)
            assert client.get("/healthz").status_code == 200
            time.sleep(0.1)
    # The writer went on writing and was refused too (checked with the rest at the end).
    wait_for(
        "the writer got no answer while the database was down",
        lambda: len(writer.answers()) > start + 2,
        REQUEST_TIMEOUT,
        lambda: "",
    )


def wait_recovered(
    client: httpx.Client, writer: Writer, probe: str, acknowledged: set[str], log: Any
) -> None:
    """Once the database is back, the service serves again, by itself."""
    tries = iter(range(1_000_000))

    def written() -> bool:
        event_id = f"{probe}-{next(tries)}"
        response = client.post("/v1/events", json={"id": event_id, "type": "probe"})
        assert response.status_code in (201, 503), (response.status_code, response.text)
        if response.status_code == 201:
            acknowledged.add(event_id)
        return response.status_code == 201

    wait_for("writes did not succeed again", written, RECOVERY_TIMEOUT, log)
    wait_for(
        "/readyz did not answer 200 again",
        lambda: client.get("/readyz").status_code == 200,
        RECOVERY_TIMEOUT,
        log,
    )
    start = len(writer.answers())
    wait_for(
        "the writer was not acknowledged again",
        lambda: sum(s.acknowledged for s in writer.answers()[start:]) >= 5,
        RECOVERY_TIMEOUT,
        log,
    )


def check_log(raw: list[bytes], sent: list[Sent], probes_ok: set[str]) -> dict[str, int]:
    """The stored log against what was sent and answered; the places of the ids stored."""
    log = [orjson.loads(body) for body in raw]
    assert [e["seq"] for e in log] == list(range(len(log))), "seqs have a gap"
    ids = Counter(e["id"] for e in log)
    assert [i for i, n in ids.items() if n > 1] == [], "ids stored more than once"
    at = {e["id"]: e["seq"] for e in log}
    sent_ids = {i for s in sent for i in s.ids}
    strangers = [e["id"] for e in log if not is_own_record(e) and e["id"] not in sent_ids]
    # Probes answered 503 may have landed as well, like the writer's.
    assert {i for i in strangers if not i.startswith("probe-")} == set(), strangers
    assert probes_ok <= set(strangers)
    for s in sent:
        stored = [i in at for i in s.ids]
        assert all(stored) or not any(stored), f"a batch stored in part: {s}"
        if s.acknowledged:
            assert all(stored), f"acknowledged, not stored: {s}"
            if s.batch:
                answered = orjson.loads(s.body)["events"]
                assert answered == [{"id": i, "seq": at[i]} for i in s.ids], s
            else:
                assert raw[at[s.ids[0]]] == s.body, s
        for event in s.events:
            if event["id"] in at:
                stored_event = log[at[event["id"]]]
                assert stored_event["data"] == event["data"], (stored_event, event)
    return at


def test_database_crash_and_restart_under_a_running_service(tmp_path: Path) -> None:
    with cluster() as db:
        run_outages(db, tmp_path)


def run_outages(db: Cluster, tmp_path: Path) -> None:
    storage = Storage.at(db.url)
    token = create_key(storage, TENANT, "events:write,events:read,log:read")
    headers = {"Authorization": f"Bearer {token}"}
    flags = ("--no-audit-reads", "--postgres-connect-timeout", "1", "--retry-after", "1")
    phases = Phases()
    probes_ok: set[str] = set()
    with (
        serving(storage, tmp_path / "serve.log", *flags) as server,
        httpx.Client(base_url=server.url, headers=headers, timeout=REQUEST_TIMEOUT) as client,
    ):
        writer = Writer(server.url, headers, phases)
        writer.start()
        try:
            wait_for(
                "the writer was not acknowledged",
                lambda: sum(s.acknowledged for s in writer.answers()) >= 10,
                RECOVERY_TIMEOUT,
                server.log,
            )
            for mode in ("immediate", "fast"):
                known = next(s for s in writer.answers() if s.acknowledged).ids[0]
                db.stop(mode)
                phases.next()  # down
                check_down(client, writer, known, f"probe-down-{mode}")
                phases.next()  # coming back
                db.start()
                wait_recovered(client, writer, f"probe-up-{mode}", probes_ok, server.log)
        finally:
            writer.stop()
        assert writer.failure is None
        sent = writer.sent
        for s in sent:
            assert not s.error, s  # the service stayed up: every request got an answer
            assert s.status in (201, 503), s
            if s.status == 503:
                assert s.retry_after is not None, s
                assert s.retry_after.isdigit(), s
            if phases.down(s.phase_sent) and s.phase_answered == s.phase_sent:
                assert s.status == 503, f"answered while the database was down: {s}"
        refused = [s for s in sent if s.status == 503]
        assert refused, "the outages should have refused some of the writer's requests"
        assert sum(s.acknowledged for s in sent) >= 20

        # Acknowledged events stored once as answered; nothing stored that was not sent.
        check_log(stored_log(client), sent, probes_ok)

        # What was refused is sent again with the same ids: it was stored before (200) or is
        # now (201); then every event sent is stored exactly once.
        for s in refused:
            again = Sent(s.events, s.batch, phases.number)
            post(client, again)
            assert again.status in (200, 201), again
            s.status, s.body = again.status, again.body
        raw = stored_log(client)
        at = check_log(raw, sent, probes_ok)
        assert {i for s in sent for i in s.ids} <= set(at)

        # The checkpoints catch up, and the log verifies.
        wait_for(
            "the checkpoint did not cover the log",
            lambda: client.get("/v1/log/checkpoint").json().get("tree_size") == len(raw),
            RECOVERY_TIMEOUT,
            server.log,
        )
        assert server.terminate() == 0
        log = server.log()
        assert "Traceback" not in log, log
    verified = auditlog("verify", *storage.flags)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.strip().splitlines()[-1].startswith("intact"), verified.stdout

"""Log streams delivered by real ``auditlog serve`` processes to real receivers on 127.0.0.1.

* A webhook receiver (``reliability.webhooks``) that fails for a while (500, no answer
  within the timeout, 429 with ``Retry-After: 2`` and with ``Retry-After: 0``, which must not
  mean "at once", a closed connection) and then recovers gets every event at least once and
  in seq order, each batch right after the last accepted one or a repeat of the same batch,
  every signature valid by the receiver's own HMAC code; the stream's state and ``/metrics``
  show the failures, then the progress.
* A server killed with SIGKILL while the receiver holds a batch (and writes are under way),
  and started again on the same data, delivers the rest once the dead process's lease has
  run out.
* Two servers on one PostgreSQL schema, both taking writes, never deliver one stream at once
  (the receiver finds no two requests of the stream open together, and which process sent
  each); the one delivering is killed and the other takes over and delivers the rest.
* Filters (by type; by words and a range): only matching events are delivered, and the
  stream's position moves past the others; pause stops delivery, resume goes on from where it stopped, delete stops it.
* The database (a private PostgreSQL cluster) crashes while a batch is on its way, and comes
  back: delivery goes on, with nothing but warnings in the log.
* Syslog to Debian's rsyslogd run by the test, and Splunk HEC to a fake collector: the
  events arrive, and read back equal the stored ones.

Every wait polls with a deadline; nothing is asserted about how long anything took (except
that a wait asked for by ``Retry-After`` was not cut short). Leases are short (3 s, timeout
1 s) so that a dead process's streams move soon.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

import pgtest
from live_server import STOP_TIMEOUT, Server, Storage, create_key, serving, serving_many
from postgres.cluster import cluster
from reliability.webhooks import (
    CLOSE,
    FAIL,
    HOLD,
    HOOK,
    OK,
    SLOW,
    Request,
    Throttle,
    WebhookReceiver,
    check_in_order,
    check_no_overlap,
    signature_ok,
)
from service.delivery.receiver import Receiver
from service.delivery.test_splunk_hec import epoch, hec_objects
from service.delivery.test_syslog import check_message, rsyslogd

pytestmark = pytest.mark.slow

TENANT = "acme"
SCOPES = "events:write,events:read,admin"
#: Bound on every wait for something to happen.
WAIT = 60.0
#: How long a test watches for deliveries that must not happen (a bound, not a measurement).
QUIET = 1.5
FLAGS = (
    "--no-audit-reads",  # reading the log back adds nothing to it
    "--stream-lease-seconds", "3",
    "--stream-timeout-seconds", "1",
    "--stream-backoff-max-seconds", "1",
    "--stream-batch-events", "5",
    "--stream-linger-ms", "20",
)  # fmt: skip

T = TypeVar("T")


def wait_for(check: Callable[[], T | None], what: str, timeout: float = WAIT) -> T:
    """``check()``'s first true value; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout} s")
        time.sleep(0.05)


class Api:
    """The tenant's admin client of one server."""

    def __init__(self, server: Server, token: str) -> None:
        self.server = server
        self.client = httpx.Client(
            base_url=server.url, headers={"authorization": f"Bearer {token}"}, timeout=30.0
        )

    def close(self) -> None:
        self.client.close()

    def write(self, count: int, tag: str, **fields: Any) -> list[int]:
        """``count`` events in one batch; their seqs."""
        events = [
            {"type": "user.login", "actor": f"user-{i}", "data": {"tag": tag, "n": i}, **fields}
            for i in range(count)
        ]
        answer = self.client.post("/v1/events", json=events)
        assert answer.status_code == 201, answer.text
        return [int(e["seq"]) for e in answer.json()["events"]]

    def events(self, **filters: str) -> list[dict[str, Any]]:
        """The whole log (or what matches ``filters``, §3's parameters), in seq order."""
        found: list[dict[str, Any]] = []
        params = {**filters, "order": "asc", "limit": "1000"}
        while True:
            answer = self.client.get("/v1/events", params=params)
            assert answer.status_code == 200, answer.text
            page = answer.json()
            found.extend(page["events"])
            if page["next_cursor"] is None:
                return found
            params["cursor"] = page["next_cursor"]

    def create_stream(self, destination: dict[str, Any], **fields: Any) -> dict[str, Any]:
        answer = self.client.post("/v1/streams", json={"destination": destination, **fields})
        assert answer.status_code == 201, answer.text
        created: dict[str, Any] = answer.json()
        return created

    def stream(self, stream_id: str) -> dict[str, Any]:
        answer = self.client.get(f"/v1/streams/{stream_id}")
        assert answer.status_code == 200, answer.text
        view: dict[str, Any] = answer.json()
        return view

    def change(self, stream_id: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = self.client.patch(f"/v1/streams/{stream_id}", json=body)
        assert answer.status_code == 200, answer.text
        view: dict[str, Any] = answer.json()
        return view

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        answer = self.client.get("/metrics")
        assert answer.status_code == 200, answer.text
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(answer.text)
            for s in family.samples
        }

    def caught_up(self, stream_id: str) -> dict[str, Any] | None:
        """The stream's view once it has dealt with every event of the log, else None."""
        last = self.events()[-1]["seq"]
        view = self.stream(stream_id)
        if view["delivered_seq"] == last and view["lag_events"] == 0:
            return view
        return None


def metric(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def check_received(
    requests: list[Request],
    secret: str,
    stored: list[dict[str, Any]],
    *,
    strict: bool,
    path: str = "/hook",
) -> None:
    """Every request signed with ``secret``; ``stored`` (the events the stream must deliver)
    each received at least once, in order, equal to what the log holds."""
    assert requests
    for request in requests:
        assert request.path == path
        assert request.headers["content-type"] == "application/json"
        assert signature_ok(secret, request), f"request {request.number}: a bad signature"
    check_in_order(requests, [e["seq"] for e in stored], strict=strict)
    by_seq = {e["seq"]: e for e in stored}
    for request in requests:
        for event in request.events:
            assert event == by_seq[event["seq"]]


def webhook_to(receiver: WebhookReceiver) -> dict[str, Any]:
    return {"kind": "webhook", "url": receiver.url()}


# -- a receiver that fails for a while --------------------------------------------------------


def test_a_receiver_failing_for_a_while_gets_every_event_in_order_once_it_recovers(
    storage: Storage, tmp_path: Path
) -> None:
    token = create_key(storage, TENANT, SCOPES)
    with (
        WebhookReceiver() as receiver,
        serving(storage, tmp_path / "serve.log", *FLAGS) as server,
    ):
        api = Api(server, token)
        try:
            api.write(12, "before")
            receiver.script(FAIL, SLOW, Throttle(2), Throttle(0), CLOSE)
            receiver.failing = True  # then 500, until it recovers
            created = api.create_stream(webhook_to(receiver), name="siem", start="beginning")
            stream_id, secret = created["id"], created["secret"]
            labels = {"stream": stream_id, "kind": "webhook"}
            assert created["delivered_seq"] is None

            # Failing: the failures are counted and the last one kept, nothing delivered.
            failing = wait_for(
                lambda: (view := api.stream(stream_id))["failures"] >= 6 and view,
                "six failed attempts",
            )
            assert failing["delivered_seq"] is None
            assert failing["lag_events"] > 0
            assert failing["last_error"] == (
                f"http://127.0.0.1:{receiver.port} answered 500 Internal Server Error"
            )
            assert failing["last_error_at"] is not None
            assert failing["last_success_at"] is None
            samples = api.metrics()
            for reason in ("http_5xx", "timeout", "http_429", "closed"):
                assert metric(
                    samples, "auditlog_stream_delivery_failures_total", **labels, reason=reason
                ), reason
            assert metric(samples, "auditlog_stream_failing", **labels) == 1
            lag = metric(samples, "auditlog_stream_lag_events", **labels)
            assert lag is not None
            assert lag > 0
            api.write(9, "while failing")

            receiver.failing = False
            api.write(7, "after")
            done = wait_for(lambda: api.caught_up(stream_id), "every event delivered")
            stored = api.events()
            samples = api.metrics()
        finally:
            api.close()
    requests = receiver.received()
    check_received(requests, secret, stored, strict=True)
    check_no_overlap(requests)  # a request given up on was closed before the next began
    refused = [r for r in requests if not r.accepted]
    assert [r.action for r in refused[:5]] == [FAIL, SLOW, Throttle(2), Throttle(0), CLOSE]
    assert done["failures"] == len(refused)
    assert done["deliveries"] == len(stored)
    assert done["last_success_at"] is not None
    assert done["last_error"] == failing["last_error"]
    # Retry-After was honoured: no attempt before it was up, though the backoff is 1 s at
    # most; and "Retry-After: 0" was not taken for "at once" (the backoff's first step, from
    # half a second, still came first).
    throttled = [r for r in requests if isinstance(r.action, Throttle)]
    for request, least in zip(throttled, (2.0, 0.5), strict=True):
        after = requests[request.number + 1]
        assert request.end is not None
        assert after.start - request.end >= least - 0.05, request.action
    assert metric(samples, "auditlog_stream_events_delivered_total", **labels) == len(stored)
    assert metric(samples, "auditlog_stream_lag_events", **labels) == 0
    assert metric(samples, "auditlog_stream_failing", **labels) == 0
    assert metric(samples, "auditlog_stream_last_success_timestamp_seconds", **labels)
    failures = sum(
        value
        for (name, pairs), value in samples.items()
        if name == "auditlog_stream_delivery_failures_total" and ("stream", stream_id) in pairs
    )
    assert failures == len(refused)


class Writers:
    """A thread per server writing small batches through it until stopped, or until its
    server is gone (an answer its server died before giving may be stored or not: the tests
    read the log back)."""

    def __init__(self, servers: list[Server], token: str) -> None:
        self.stopping = threading.Event()
        self.errors: list[str] = []
        self.written = 0
        self._threads = [
            threading.Thread(target=self._write, args=(Api(s, token),), daemon=True)
            for s in servers
        ]

    def __enter__(self) -> Writers:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for thread in self._threads:
            thread.join(WAIT)
        assert not any(t.is_alive() for t in self._threads), "a writer did not stop"

    def _write(self, api: Api) -> None:
        try:
            for number in range(1_000_000):
                if self.stopping.is_set():
                    return
                try:
                    self.written += len(api.write(1 + number % 4, f"{api.server.port}-{number}"))
                except (httpx.TransportError, AssertionError) as exc:
                    # Killed by the test? (Its sockets close before it can be reaped.)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        api.server.process.wait(STOP_TIMEOUT)
                        return
                    self.errors.append(f"{api.server.url}: {exc}")
                    return
                time.sleep(0.01)
        finally:
            api.close()


# -- a crash mid-delivery -----------------------------------------------------------------


def test_delivery_goes_on_after_the_server_is_killed_while_the_receiver_holds_a_batch(
    storage: Storage, tmp_path: Path
) -> None:
    token = create_key(storage, TENANT, SCOPES)
    killed = threading.Event()
    with WebhookReceiver() as receiver:
        with serving(storage, tmp_path / "serve1.log", *FLAGS) as first:
            api = Api(first, token)
            try:
                api.write(23, "before")

                def kill(request: Request) -> None:
                    first.kill()
                    killed.set()

                receiver.hook = kill
                receiver.script(OK, OK, HOLD)
                created = api.create_stream(webhook_to(receiver), start="beginning")
                with Writers([first], token):  # writes under way when it dies
                    wait_for(killed.is_set, "the server killed mid-delivery")
            finally:
                api.close()
        held = next(r for r in receiver.received() if r.action == HOLD)
        assert held.end is not None  # it ended with its sender
        with serving(storage, tmp_path / "serve2.log", *FLAGS) as second:
            api = Api(second, token)
            try:
                with Writers([second], token) as writers:
                    count = len(receiver.received())
                    wait_for(lambda: len(receiver.received()) >= count + 6, "delivering again")
                assert writers.errors == []
                api.write(8, "after")
                done = wait_for(lambda: api.caught_up(created["id"]), "every event delivered")
                stored = api.events()
            finally:
                api.close()
    requests = receiver.received()
    check_received(requests, created["secret"], stored, strict=False)
    # The held batch was never recorded as delivered: it was sent again.
    assert any(held.seqs[0] in r.seqs for r in requests[held.number + 1 :])
    assert done["delivered_seq"] == stored[-1]["seq"]


# -- two processes, one stream -------------------------------------------------------------


def test_two_processes_never_deliver_a_stream_at_once_and_the_survivor_takes_over(
    tmp_path: Path,
) -> None:
    storage = Storage.at(pgtest.private_url())
    token = create_key(storage, TENANT, SCOPES)
    killed: list[Server] = []
    with (
        WebhookReceiver() as receiver,
        serving_many(storage, tmp_path, 2, *FLAGS) as servers,
    ):
        receiver.senders = tuple(s.process.pid for s in servers)
        apis = [Api(s, token) for s in servers]
        try:
            apis[0].write(6, "a")
            apis[1].write(6, "b")
            created = apis[0].create_stream(webhook_to(receiver), start="beginning")
            stream_id = created["id"]

            def kill(request: Request) -> None:
                victim = next(s for s in servers if s.process.pid == request.sender)
                victim.kill()
                killed.append(victim)

            receiver.hook = kill
            with Writers(servers, token) as writers:  # through both, all along
                wait_for(lambda: len(receiver.received()) >= 6, "deliveries under way")
                receiver.script(HOLD)
                wait_for(lambda: killed, "the delivering process killed mid-delivery")
                count = len(receiver.received())
                wait_for(lambda: len(receiver.received()) >= count + 6, "the other delivering")
            assert writers.errors == []
            (survivor,) = [a for a in apis if a.server is not killed[0]]
            survivor.write(9, "after")
            wait_for(lambda: survivor.caught_up(stream_id), "the rest delivered by the other")
            stored = survivor.events()
        finally:
            for api in apis:
                api.close()
    requests = receiver.received()
    check_no_overlap(requests)
    check_received(requests, created["secret"], stored, strict=False)
    held = next(r for r in requests if r.action == HOLD)
    senders = [r.sender for r in requests]
    dead = killed[0].process.pid
    (other,) = [pid for pid in receiver.senders if pid != dead]
    assert senders == [dead] * (held.number + 1) + [other] * (len(requests) - held.number - 1)


def test_delivery_goes_on_after_the_database_crashes_while_a_batch_is_on_its_way(
    tmp_path: Path,
) -> None:
    with cluster() as db:
        storage = Storage.at(db.url)
        token = create_key(storage, TENANT, SCOPES)
        flags = (
            *FLAGS,
            "--stream-timeout-seconds", "2",  # the receiver stops the database first
            "--stream-lease-seconds", "6",
            "--postgres-connect-timeout", "1",
            "--retry-after", "1",
        )  # fmt: skip
        with (
            WebhookReceiver() as receiver,
            serving(storage, tmp_path / "serve.log", *flags) as server,
        ):
            api = Api(server, token)
            try:
                api.write(12, "before")
                down = threading.Event()

                def crash(request: Request) -> None:
                    db.stop("immediate")
                    down.set()

                receiver.hook = crash
                receiver.script(OK, HOOK)  # accepted, with the database gone
                created = api.create_stream(webhook_to(receiver), start="beginning")
                wait_for(down.is_set, "the database stopped mid-delivery")
                count = len(receiver.received())
                time.sleep(QUIET)  # recording the delivery fails meanwhile, and is retried
                db.start()
                wait_for(lambda: written(api, 7, "after"), "a write once the database is back")
                done = wait_for(lambda: api.caught_up(created["id"]), "every event delivered")
                stored = api.events()
            finally:
                api.close()
            assert server.terminate() == 0
            log = server.log()
    requests = receiver.received()
    check_received(requests, created["secret"], stored, strict=False)
    assert len(requests) > count
    assert done["delivered_seq"] == stored[-1]["seq"]
    assert "Traceback" not in log, log


def written(api: Api, count: int, tag: str) -> bool:
    """Whether a write of ``count`` events was acknowledged (a 503 is not)."""
    try:
        api.write(count, tag)
    except AssertionError:
        return False
    return True


# -- filters, pause, resume, delete --------------------------------------------------------


def test_filters_deliver_only_matching_events_and_the_position_moves_past_the_others(
    storage: Storage, tmp_path: Path
) -> None:
    token = create_key(storage, TENANT, SCOPES)
    words = {"q": "zebra", "data.n[gte]": "2"}  # full text and a range, as §3 has them
    with (
        WebhookReceiver() as receiver,
        serving(storage, tmp_path / "serve.log", *FLAGS) as server,
    ):
        api = Api(server, token)
        try:
            by_type = api.create_stream(
                webhook_to(receiver), filter={"type": "user.login"}, start="beginning"
            )
            by_words = api.create_stream(
                {"kind": "webhook", "url": receiver.url("/words")}, filter=words, start="now"
            )
            api.write(7, "a zebra crossing")
            api.write(4, "b zebra", type="file.read")
            api.write(3, "c")
            for number in range(4):
                api.write(3 + number, f"zebras and a zebra {number}")
            api.write(6, "d", type="file.read")  # the log ends with events that match neither
            done = wait_for(lambda: api.caught_up(by_type["id"]), "the position at the end")
            done_words = wait_for(lambda: api.caught_up(by_words["id"]), "the other's too")
            stored = api.events()
            matching_words = api.events(**words)
        finally:
            api.close()
    requests = receiver.received()
    matching = [e for e in stored if e["type"] == "user.login"]
    assert len(matching) == 28
    check_received(
        [r for r in requests if r.stream_id == by_type["id"]],
        by_type["secret"],
        matching,
        strict=True,
    )
    assert done["deliveries"] == len(matching)
    assert done["delivered_seq"] == stored[-1]["seq"]
    assert stored[-1]["type"] == "file.read"
    assert len(matching_words) == 5 + 2 + (1 + 2 + 3 + 4)
    check_received(
        [r for r in requests if r.stream_id == by_words["id"]],
        by_words["secret"],
        matching_words,
        strict=True,
        path="/words",
    )
    assert done_words["deliveries"] == len(matching_words)
    assert done_words["delivered_seq"] == stored[-1]["seq"]


def test_pause_stops_delivery_resume_goes_on_from_where_it_was_and_delete_stops_it(
    storage: Storage, tmp_path: Path
) -> None:
    token = create_key(storage, TENANT, SCOPES)
    with (
        WebhookReceiver() as receiver,
        serving(storage, tmp_path / "serve.log", *FLAGS) as server,
    ):
        api = Api(server, token)
        try:
            created = api.create_stream(webhook_to(receiver), start="beginning")
            stream_id = created["id"]
            api.write(8, "before")
            wait_for(lambda: api.caught_up(stream_id), "the first events delivered")

            assert api.change(stream_id, {"paused": True})["paused"] is True
            paused_at = len(receiver.received())
            during = api.write(6, "paused")
            time.sleep(QUIET)
            late = [r for r in receiver.received()[paused_at:] if set(r.seqs) & set(during)]
            assert late == [], "delivered while paused"
            view = api.stream(stream_id)
            assert view["paused"] is True
            assert view["lag_events"] >= len(during)
            position = view["delivered_seq"]

            # Counted before the resume: the first delivery may land before change() returns.
            resumed_at = len(receiver.received())
            assert api.change(stream_id, {"paused": False})["paused"] is False
            wait_for(lambda: api.caught_up(stream_id), "the rest delivered")
            first_after = receiver.received()[resumed_at]
            assert first_after.seqs[0] == position + 1  # where it was: nothing skipped

            answer = api.client.delete(f"/v1/streams/{stream_id}")
            assert answer.status_code == 204, answer.text
            deleted_at = len(receiver.received())
            api.write(5, "deleted")
            time.sleep(QUIET)
            assert receiver.received()[deleted_at:] == []
            assert api.client.get(f"/v1/streams/{stream_id}").status_code == 404
            stored = api.events()
        finally:
            api.close()
    # Everything before the deletion took effect, at least once and in order: up to the
    # deletion's own record, which is committed first and may have gone out before it.
    deletion = next(e for e in stored if e["type"] == "auditlog.stream.deleted")
    requests = receiver.received()
    sent = any(deletion["seq"] in r.seqs for r in requests)
    expected = [e for e in stored if e["seq"] < deletion["seq"] + sent]
    check_received(requests, created["secret"], expected, strict=False)


# -- syslog and Splunk HEC -----------------------------------------------------------------

HEC_TOKEN = "0b3d1c9e-8f1a-4c55-9d0e-5f8c2b7a4e61"


def test_syslog_to_rsyslogd_and_splunk_hec_receive_the_stored_events(tmp_path: Path) -> None:
    storage = Storage.sqlite(tmp_path / "data")
    token = create_key(storage, TENANT, SCOPES)
    with (
        rsyslogd(tmp_path / "rsyslog") as collector,
        Receiver() as hec,
        serving(storage, tmp_path / "serve.log", *FLAGS) as server,
    ):
        api = Api(server, token)
        try:
            syslog = api.create_stream(
                {
                    "kind": "syslog",
                    "url": f"tcp://127.0.0.1:{collector.port}",
                    "hostname": "audit-test",
                    "app_name": "acme-audit",
                },
                start="beginning",
            )
            splunk = api.create_stream(
                {
                    "kind": "splunk_hec",
                    "url": hec.url,
                    "token": HEC_TOKEN,
                    "sourcetype": "auditlog:test",
                    "index": "audit",
                },
                start="beginning",
            )
            api.write(6, "plain")
            api.write(2, "failed", outcome="failure", type="user.login.failed")
            api.write(3, "unicode", type="compte créé", data={"ville": "Zürich", "clé": "🔐"})
            api.write(1, "large", data={"blob": "x" * 20_000})
            for stream in (syslog, splunk):
                wait_for(lambda s=stream: api.caught_up(s["id"]), f"{stream['id']} caught up")
            stored = api.events()
            messages = collector.messages(len(stored))
        finally:
            api.close()
    by_seq = {e["seq"]: e for e in stored}
    received = [orjson.loads(m["msg"]) for m in messages]
    assert [e["seq"] for e in received] == [e["seq"] for e in stored]
    for message, event in zip(messages, received, strict=True):
        assert event == by_seq[event["seq"]]
        check_message(
            message, message["msg"].encode("utf-8"), hostname="audit-test", app_name="acme-audit"
        )

    objects = []
    for request in hec.requests:
        assert request.path == "/services/collector/event"
        assert request.headers["authorization"] == f"Splunk {HEC_TOKEN}"
        objects.extend(hec_objects(request.body))
    events = [o["event"] for o in objects]
    assert [e["seq"] for e in events] == [e["seq"] for e in stored]
    for obj, event in zip(objects, events, strict=True):
        assert event == by_seq[event["seq"]]
        assert obj["time"] == epoch(event["time"])
        assert obj["sourcetype"] == "auditlog:test"
        assert obj["index"] == "audit"

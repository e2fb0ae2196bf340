"""Three ``auditlog serve`` processes on one PostgreSQL database, written to all at once.

The three start together on an empty schema (so their migrations meet), the API keys are made
with the command line while they run, and producer threads write through all three to three
tenants: single events with and without ids, batches (JSON arrays) with and without ids, and
deliberate repeats of a request with ids through another process, one after the other and at
the same moment. Then:

* each first send was answered 201 and its repeat 200 with the same event (singles: the same
  bytes; batches: the same ids and seqs), whichever process answered which;
* every acknowledged event is stored exactly once, as answered: a single event's stored bytes
  are the bytes of its 201, a batch's events have the ids and seqs answered and the content sent;
  nothing else is stored but the service's own records;
* each tenant's ``seq`` runs 0..n-1 without a gap;
* the listing and a few queries (by type, by a data path, full text, with an operator, with
  repeated parameters) walk the same pages with the same cursors on every process, also when
  a walk moves from one process to the next, and find what the log holds;
* once the checkpoints cover every event, ``auditlog verify`` finds the log intact.

Reads are not audited (``--no-audit-reads``), so the only records of the service's own are the
keys' creation.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

import pgtest
from live_server import LOAD, Server, Storage, auditlog, create_key, is_own_record, serving_many
from reliability.ledger import split_listing, stored_log

pytestmark = [pytest.mark.slow, LOAD]

SERVERS = 3
TENANTS = ("acme", "globex", "initech")
WORKERS = 6
#: Requests each producer thread makes (about 2,500 events in all).
OPERATIONS = 70
MAX_BATCH = 60
SEED = 11
REQUEST_TIMEOUT = 30.0
CHECKPOINT_TIMEOUT = 30.0
PAGE = 50

TYPES = ("user.login", "invoice.billed", "account.created", "file.read")
CITIES = ("Oslo", "Lima", "Seattle", "Kyoto")
WORDS = ("alpha", "bravo", "charlie", "delta", "zebra")
ACTORS = ("alice", "bob", "carol")


@dataclass
class Answer:
    """One POST /v1/events and what it was answered (status None: no answer came)."""

    server: int
    status: int | None
    body: bytes
    error: str = ""


@dataclass
class Exchange:
    """One request, sent once or repeated through another process."""

    tenant: str
    events: list[dict[str, Any]]
    batch: bool
    answers: list[Answer]

    def describe(self) -> str:
        sent = [e.get("id", "(no id)") for e in self.events]
        return f"{self.tenant} {'batch' if self.batch else 'single'} {sent[:3]}: {self.answers}"


class Producers:
    """Producer threads writing through every server; each records its exchanges."""

    def __init__(self, servers: list[Server], tokens: dict[str, str]) -> None:
        self.urls = [server.url for server in servers]
        self.headers = {t: {"Authorization": f"Bearer {token}"} for t, token in tokens.items()}
        self.exchanges: list[Exchange] = []
        self.failures: list[str] = []
        self._lock = threading.Lock()

    def run(self) -> None:
        threads = [
            threading.Thread(target=self._worker, args=(w,), name=f"producer-{w}")
            for w in range(WORKERS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not any(t.is_alive() for t in threads), "a producer did not finish"

    def _post(self, client: httpx.Client, server: int, tenant: str, body: Any) -> Answer:
        try:
            response = client.post("/v1/events", json=body, headers=self.headers[tenant])
        except httpx.HTTPError as exc:
            return Answer(server, None, b"", repr(exc))
        return Answer(server, response.status_code, response.content)

    def _worker(self, worker: int) -> None:
        try:
            self._produce(worker)
        except BaseException as exc:
            with self._lock:
                self.failures.append(f"producer {worker}: {exc!r}")
            raise

    def _produce(self, worker: int) -> None:
        rng = random.Random(SEED * 1000 + worker)
        made = 0

        def event(with_id: bool) -> dict[str, Any]:
            nonlocal made
            made += 1
            out: dict[str, Any] = {
                "type": rng.choice(TYPES),
                "actor": rng.choice(ACTORS),
                "data": {
                    "amount": rng.randrange(1000),
                    "location": {"city": rng.choice(CITIES)},
                    "note": " ".join(rng.sample(WORDS, 2)),
                    "producer": worker,
                    "n": made,
                },
            }
            if with_id:
                out["id"] = f"p{worker}-{made}"
            return out

        def clients() -> list[httpx.Client]:
            return [httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT) for url in self.urls]

        mine, theirs = clients(), clients()  # theirs: used by the racing thread only
        racer = ThreadPoolExecutor(1, thread_name_prefix=f"racer-{worker}")
        done: list[Exchange] = []
        try:
            for _ in range(OPERATIONS):
                tenant = rng.choice(TENANTS)
                first, second = rng.sample(range(SERVERS), 2)
                kind = rng.choices(
                    ("single", "single-id", "repeat", "race", "batch", "batch-id"),
                    weights=(3, 2, 2, 2, 1, 1),
                )[0]
                if kind in ("batch", "batch-id"):
                    size = rng.randint(1, MAX_BATCH)
                    with_ids = kind == "batch-id"
                    events = [event(with_ids or rng.random() < 0.5) for _ in range(size)]
                    body: Any = events
                else:
                    events = [event(kind != "single")]
                    body = events[0]
                if kind == "race":
                    # The same id through two processes at the same moment.
                    barrier = threading.Barrier(2, timeout=REQUEST_TIMEOUT)

                    def other(
                        barrier: threading.Barrier, body: Any, second: int, tenant: str
                    ) -> Answer:
                        barrier.wait()
                        return self._post(theirs[second], second, tenant, body)

                    racing = racer.submit(other, barrier, body, second, tenant)
                    barrier.wait()
                    answers = [self._post(mine[first], first, tenant, body)]
                    answers.append(racing.result(timeout=REQUEST_TIMEOUT * 2))
                else:
                    answers = [self._post(mine[first], first, tenant, body)]
                    if kind == "repeat" or (kind == "batch-id" and rng.random() < 0.5):
                        answers.append(self._post(mine[second], second, tenant, body))
                done.append(Exchange(tenant, events, isinstance(body, list), answers))
        finally:
            racer.shutdown(wait=True)
            for client in (*mine, *theirs):
                client.close()
            with self._lock:
                self.exchanges.extend(done)


@dataclass
class Acknowledged:
    """An event as acknowledged: its seq, and the bytes answered (singles) or sent (batches)."""

    seq: int
    answered: bytes | None
    sent: dict[str, Any]


def check_answers(exchanges: list[Exchange]) -> dict[str, dict[str, Acknowledged]]:
    """Each first send answered 201, each repeat 200 with the same event; what was acknowledged,
    by tenant and id."""
    acknowledged: dict[str, dict[str, Acknowledged]] = {t: {} for t in TENANTS}
    for exchange in exchanges:
        statuses = sorted(a.status or 0 for a in exchange.answers)
        expected = [201] if len(exchange.answers) == 1 else [200, 201]
        assert statuses == expected, exchange.describe()
        created = next(a for a in exchange.answers if a.status == 201)
        for answer in exchange.answers:
            if exchange.batch:
                # A repeat names the same events at the same seqs.
                assert orjson.loads(answer.body) == orjson.loads(created.body), exchange.describe()
            else:
                # A repeat answers the stored event, byte for byte.
                assert answer.body == created.body, exchange.describe()
        tenant_acks = acknowledged[exchange.tenant]
        if exchange.batch:
            items = orjson.loads(created.body)["events"]
            assert len(items) == len(exchange.events), exchange.describe()
            for item, sent in zip(items, exchange.events, strict=True):
                assert item["id"] == sent.get("id", item["id"]), exchange.describe()
                assert item["id"] not in tenant_acks, f"id {item['id']} acknowledged twice"
                tenant_acks[item["id"]] = Acknowledged(item["seq"], None, sent)
        else:
            stored = orjson.loads(created.body)
            assert stored["id"] not in tenant_acks, f"id {stored['id']} acknowledged twice"
            tenant_acks[stored["id"]] = Acknowledged(
                stored["seq"], created.body, exchange.events[0]
            )
    return acknowledged


def check_stored(
    tenant: str, raw: list[bytes], acknowledged: dict[str, Acknowledged]
) -> list[dict[str, Any]]:
    """The tenant's stored log holds every acknowledged event once, as answered, and nothing
    else but the service's own records, at seqs 0..n-1; the log, parsed."""
    log = [orjson.loads(body) for body in raw]
    assert [e["seq"] for e in log] == list(range(len(log))), f"{tenant}: seqs have a gap"
    ids = [e["id"] for e in log]
    assert len(set(ids)) == len(ids), f"{tenant}: an id is stored more than once"
    assert {e["tenant"] for e in log} == {tenant}
    theirs = [e for e in log if not is_own_record(e)]
    assert len(theirs) == len(acknowledged), (tenant, len(theirs), len(acknowledged))
    for event_id, ack in acknowledged.items():
        stored = log[ack.seq]
        assert stored["id"] == event_id, (tenant, ack.seq, stored, ack)
        if ack.answered is not None:
            assert raw[ack.seq] == ack.answered, (tenant, raw[ack.seq], ack.answered)
        for field in ("type", "data"):
            assert stored[field] == ack.sent[field], (tenant, stored, ack.sent)
        assert stored["actor"] == {"id": ack.sent["actor"]}, (tenant, stored, ack.sent)
    return log


Match = Callable[[dict[str, Any]], bool]


def _data(event: dict[str, Any]) -> dict[str, Any]:
    return event["data"] if not is_own_record(event) else {}


QUERIES: list[tuple[dict[str, str | list[str]], Match]] = [
    ({"type": "invoice.billed"}, lambda e: e["type"] == "invoice.billed"),
    (
        {"data.location.city": "Oslo", "order": "asc"},
        lambda e: _data(e).get("location", {}).get("city") == "Oslo",
    ),
    ({"q": "zebra"}, lambda e: "zebra" in str(_data(e).get("note", "")).split()),
    ({"data.amount[lt]": "150"}, lambda e: int(_data(e).get("amount", 1000)) < 150),
    (
        {"actor": "alice", "type": ["user.login", "file.read"], "order": "asc"},
        lambda e: e["actor"]["id"] == "alice" and e["type"] in ("user.login", "file.read"),
    ),
]


def walk(clients: list[httpx.Client], params: dict[str, str | list[str]]) -> list[bytes]:
    """Every page of a query, the n-th page asked of ``clients[n % len(clients)]``."""
    pages: list[bytes] = []
    cursor: str | None = None
    for number in range(10_000):
        query = {**params, "limit": str(PAGE), **({"cursor": cursor} if cursor else {})}
        response = clients[number % len(clients)].get("/v1/events", params=query)
        assert response.status_code == 200, (params, response.text)
        pages.append(response.content)
        cursor = split_listing(response.content)[1]
        if cursor is None:
            return pages
    raise AssertionError(f"the query {params} did not end")


def check_queries(clients: list[httpx.Client], log: list[dict[str, Any]]) -> None:
    """Each query walks the same pages on every process, and on all of them in turn, and
    finds the events of the log it should."""
    for params, match in QUERIES:
        walks = [walk([client], params) for client in clients]
        walks.append(walk(clients, params))
        for other in walks[1:]:
            assert other == walks[0], f"{params}: the processes answered differently"
        found = [orjson.loads(item) for page in walks[0] for item in split_listing(page)[0]]
        expected = [e for e in log if match(e)]
        if params.get("order") != "asc":
            expected.reverse()
        assert found == expected, params
        assert found, f"{params}: the workload should have made events that match"


def wait_for_checkpoint(client: httpx.Client, size: int) -> None:
    deadline = time.monotonic() + CHECKPOINT_TIMEOUT
    tree_size = -1
    while time.monotonic() < deadline:
        response = client.get("/v1/log/checkpoint")
        if response.status_code == 200:
            tree_size = response.json()["tree_size"]
            if tree_size >= size:
                assert tree_size == size
                return
        time.sleep(0.1)
    raise AssertionError(f"the checkpoint covers {tree_size} of {size} events")


def test_three_processes_write_and_read_one_database(tmp_path: Path) -> None:
    storage = Storage.at(pgtest.private_url())
    with serving_many(storage, tmp_path, SERVERS, "--no-audit-reads") as servers:
        tokens = {t: create_key(storage, t, "events:write,events:read,log:read") for t in TENANTS}
        producers = Producers(servers, tokens)
        producers.run()
        assert producers.failures == []
        acknowledged = check_answers(producers.exchanges)
        assert sum(len(a) for a in acknowledged.values()) > 1500
        races = [e for e in producers.exchanges if len(e.answers) == 2 and not e.batch]
        assert len({a.server for e in races for a in e.answers}) == SERVERS

        for tenant in TENANTS:
            headers = {"Authorization": f"Bearer {tokens[tenant]}"}
            clients = [
                httpx.Client(base_url=s.url, headers=headers, timeout=REQUEST_TIMEOUT)
                for s in servers
            ]
            try:
                raw = stored_log(clients[0])
                for client in clients[1:]:
                    assert stored_log(client) == raw, f"{tenant}: the processes list differently"
                log = check_stored(tenant, raw, acknowledged[tenant])
                for number, ack in enumerate(list(acknowledged[tenant].values())[::25]):
                    event_id = log[ack.seq]["id"]
                    fetched = clients[number % SERVERS].get(f"/v1/events/{event_id}")
                    assert fetched.status_code == 200
                    assert fetched.content == raw[ack.seq]
                check_queries(clients, log)
                wait_for_checkpoint(clients[0], len(log))
                for client in clients[1:]:
                    assert client.get("/v1/log/checkpoint").json()["tree_size"] == len(log)
            finally:
                for client in clients:
                    client.close()

        verified = auditlog("verify", *storage.flags)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert verified.stdout.strip().splitlines()[-1].startswith("intact"), verified.stdout
        for server in servers:
            assert server.process.poll() is None
            assert server.terminate() == 0
            assert "Traceback" not in server.log(), server.log()

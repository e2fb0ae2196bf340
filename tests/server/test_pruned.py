"""Reading a log whose start was pruned by retention (API.md §14), through the whole application.

The log of tenant ``acme`` is written and signed in three checkpoints (sizes 5, 12 and 21), its
first ``H`` = 10 events are pruned (``Store.prune_to``, then ``Store.sweep``), and six more are
written and signed (27). Then: a pruned id is a 404 that says so; reads that begin below the
horizon continue from it and say so (``Auditlog-Pruned-Before``, the live stream's comment);
``GET /v1/log/pruned`` gives the prefix's hashes; and every inclusion and consistency proof,
of any seq and between any two checkpoints, still verifies against the signed roots.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest

from auditlog.integrity import checkpoint as checkpoints
from auditlog.integrity import note as notes
from auditlog.integrity import proof
from auditlog.integrity.compact import CompactRange
from auditlog.integrity.hasher import event_leaf_hash
from auditlog.model.retention import ArchiveRecord
from auditlog.server.app import AuditlogApp
from server.api import Api, problem
from server.conftest import ControlledStore, MakeApi

pytestmark = pytest.mark.anyio

H = 10
PRUNED_BEFORE = "auditlog-pruned-before"
ALL = ("events:write", "events:read", "log:read")


@dataclass
class Pruned:
    #: Every event written, in seq order, the pruned ones as they were before the prune.
    events: list[dict[str, Any]]
    #: A cursor of an ascending query issued before the prune, after seq 1.
    early_cursor: str


def b64d(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def leaves(events: list[dict[str, Any]]) -> list[bytes]:
    return [event_leaf_hash(e) for e in events]


@pytest.fixture
async def auditor(make_api: MakeApi) -> Api:
    return await make_api(scopes=ALL)


async def write(app: AuditlogApp, api: Api, n: int) -> None:
    """``n`` more events, ids ``e<seq>``, and a checkpoint of them."""
    start = (await app.services.store.log_sizes()).get("acme", 0)
    await api.create_batch([{"id": f"e{start + i}", "type": "t"} for i in range(n)])
    await app.services.integrator.run_once()


async def prune(store: ControlledStore, horizon: int, tenant: str = "acme") -> None:
    assert await store.prune_to(tenant, horizon) == horizon
    for _ in range(100):
        if await store.sweep(tenant, 1000) == 0:
            return
    raise AssertionError("the sweep did not end")


@pytest.fixture
async def pruned(app: AuditlogApp, auditor: Api, store: ControlledStore) -> Pruned:
    for n in (5, 7, 9):
        await write(app, auditor, n)
    before = await auditor.everything()
    early = await auditor.page([("order", "asc"), ("limit", "2")])
    await prune(store, H)
    await write(app, auditor, 6)
    after = await auditor.everything()
    assert [e["seq"] for e in after] == list(range(H, 27))
    assert after[: 21 - H] == before[H:]
    return Pruned(before[:H] + after, early["next_cursor"])


def seqs(page: dict[str, Any]) -> list[int]:
    return [e["seq"] for e in page["events"]]


# -- one event ---------------------------------------------------------------------------------


async def test_a_pruned_event_is_404_saying_so(auditor: Api, pruned: Pruned) -> None:
    for event_id in ("e0", f"e{H - 1}"):
        doc = problem(await auditor.get(event_id), 404)
        assert (
            doc["detail"] == f"the event with id {event_id!r} was pruned by the tenant's retention"
        )
    assert (await auditor.get(f"e{H}")).status_code == 200
    doc = problem(await auditor.get("e999"), 404)
    assert doc["detail"] == "no event with id 'e999'"


async def test_an_event_pruned_but_not_yet_swept_is_404_too(
    app: AuditlogApp, auditor: Api, store: ControlledStore
) -> None:
    await write(app, auditor, 4)
    assert await store.prune_to("acme", 2) == 2
    assert "was pruned" in problem(await auditor.get("e1"), 404)["detail"]
    assert (await auditor.get("e2")).status_code == 200
    assert seqs(await auditor.page([("order", "asc")])) == [2, 3]


async def test_a_viewer_token_and_another_tenant_are_not_told(
    make_api: MakeApi, pruned: Pruned
) -> None:
    admin = await make_api("acme", ("admin",), "admin")
    made = await admin.client.post(
        "/v1/viewer-tokens", json={"filter": {"type": "t"}}, headers=admin.headers
    )
    assert made.status_code == 201, made.text
    viewer = Api(admin.client, made.json()["token"])
    assert (await viewer.get(f"e{H}")).status_code == 200
    assert problem(await viewer.get("e0"), 404)["detail"] == "no event with id 'e0'"
    other = await make_api("globex", ALL)
    assert problem(await other.get("e0"), 404)["detail"] == "no event with id 'e0'"
    answer = await other.client.get("/v1/log/pruned", headers=other.headers)
    assert answer.json() == {"horizon": 0, "prefix": [], "archives": []}


async def test_the_first_versions_query_by_id_finds_nothing_pruned(
    auditor: Api, pruned: Pruned
) -> None:
    for event_id, found in (("e0", 0), (f"e{H}", 1)):
        answer = await auditor.client.get(
            "/event", params={"_id": event_id}, headers=auditor.headers
        )
        assert answer.status_code == 200, answer.text
        assert [e["_id"] for e in answer.json()] == [event_id] * found


# -- reads from before the horizon -------------------------------------------------------------


async def test_a_query_from_before_the_horizon_continues_from_it(
    auditor: Api, pruned: Pruned
) -> None:
    first = await auditor.query([("order", "asc"), ("limit", "3")])
    assert first.headers[PRUNED_BEFORE] == str(H)
    assert seqs(first.json()) == [H, H + 1, H + 2]
    # The next page begins at or after the horizon: nothing to say.
    second = await auditor.query([("order", "asc"), ("limit", "3"), ("cursor", first.json()["next_cursor"])])  # fmt: skip
    assert PRUNED_BEFORE not in second.headers
    assert seqs(second.json()) == [H + 3, H + 4, H + 5]
    # A cursor issued before the prune, after seq 1: the query goes on from the horizon.
    early = await auditor.query([("order", "asc"), ("limit", "2"), ("cursor", pruned.early_cursor)])
    assert early.headers[PRUNED_BEFORE] == str(H)
    assert seqs(early.json()) == [H, H + 1]
    expected = {
        (("order", "asc"), ("seq[gte]", "0")): True,
        (("order", "asc"), ("seq[gte]", str(H))): False,
        (("order", "asc"), ("seq[gt]", str(H - 1))): False,
        (("order", "asc"), ("seq[gt]", str(H - 2))): True,
        (("seq", "3"),): True,
        (("seq[in]", f"3,{H + 1}"),): True,
        (("seq[in]", f"{H},{H + 1}"),): False,
        (): True,  # newest first, down to the start of the log
        (("seq[gte]", str(H + 2)),): False,
        (("seq[lt]", str(H + 2)),): True,
    }
    for params, said in expected.items():
        answer = await auditor.query(params)
        assert answer.status_code == 200, answer.text
        assert (answer.headers.get(PRUNED_BEFORE) == str(H)) is said, params
        assert all(s >= H for s in seqs(answer.json())), params
    assert seqs((await auditor.query([("seq", "3")])).json()) == []


async def test_a_log_with_nothing_pruned_says_nothing(make_api: MakeApi, pruned: Pruned) -> None:
    other = await make_api("globex")
    await other.create_batch([{"type": "t"}, {"type": "t"}])
    answer = await other.query([("order", "asc"), ("seq[gte]", "0")])
    assert PRUNED_BEFORE not in answer.headers
    assert seqs(answer.json()) == [0, 1]
    export = await other.client.get("/v1/events/export", headers=other.headers)
    assert PRUNED_BEFORE not in export.headers


async def test_an_export_from_before_the_horizon_begins_with_it(
    auditor: Api, pruned: Pruned
) -> None:
    for params, said in (
        ({"after_seq": "2"}, True),
        ({}, True),
        ({"after_seq": str(H - 1)}, False),
        ({"after_seq": str(H + 1)}, False),
        ({"seq[gte]": str(H)}, False),
    ):
        answer = await auditor.client.get(
            "/v1/events/export", params=params, headers=auditor.headers
        )
        assert answer.status_code == 200, answer.text
        assert answer.headers["auditlog-log-size"] == "27"
        assert (answer.headers.get(PRUNED_BEFORE) == str(H)) is said, params
        lines = [orjson.loads(line) for line in answer.content.splitlines()]
        first = H + 2 if params.get("after_seq") == str(H + 1) else H
        assert [e["seq"] for e in lines] == list(range(first, 27)), params
        assert lines == pruned.events[first:]


class Stream:
    """``GET /v1/events/stream`` sent straight to the ASGI application, read until the
    body holds ``until``, then left (the client disconnects)."""

    def __init__(self, until: bytes) -> None:
        self.until = until
        self.body = b""
        self.status = 0
        self.gone = asyncio.Event()
        self.seen = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        self.body += message.get("body", b"")
        if self.until in self.body:
            self.seen.set()

    async def read(self, app: AuditlogApp, api: Api, query: bytes, last: str | None) -> bytes:
        headers = [(b"host", b"auditlog.test"), (b"authorization", f"Bearer {api.token}".encode())]
        if last is not None:
            headers.append((b"last-event-id", last.encode()))
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": "/v1/events/stream", "raw_path": b"/v1/events/stream",
            "query_string": query, "root_path": "", "headers": headers,
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
        }  # fmt: skip
        task = asyncio.create_task(app(scope, self.receive, self.send))
        try:
            await asyncio.wait_for(self.seen.wait(), 10)
        finally:
            self.gone.set()
            await asyncio.wait_for(task, 10)
        assert self.status == 200, self.body
        return self.body


async def test_a_live_stream_from_before_the_horizon_says_so_and_goes_on_from_it(
    app: AuditlogApp, auditor: Api, pruned: Pruned
) -> None:
    last = b"id: 26\nevent: audit\n"
    for query, header in ((b"after_seq=2", None), (b"", "2"), (b"after_seq=0", "1")):
        body = await Stream(last).read(app, auditor, query, header)
        comment = b": pruned before seq %d\n\n" % H
        assert body.count(comment) == 1, body
        before, after = body.split(comment)
        assert b"event: audit" not in before
        ids = [int(line[4:]) for line in after.splitlines() if line.startswith(b"id: ")]
        assert ids == list(range(H, 27)), (query, header)
    body = await Stream(last).read(app, auditor, b"after_seq=%d" % (H - 1), None)
    assert b"pruned" not in body
    assert body.count(b"event: audit") == 27 - H


# -- the pruned prefix and proofs ---------------------------------------------------------------


async def verified_checkpoints(
    app: AuditlogApp, auditor: Api, store: ControlledStore
) -> list[checkpoints.Checkpoint]:
    """Every stored checkpoint of ``acme``, its signature verified with the published key."""
    answer = await auditor.client.get(
        "/v1/log/public-key", headers={**auditor.headers, "Accept": "text/plain"}
    )
    verifier = notes.Verifier.from_vkey(answer.text.strip())
    stored = await store.list_checkpoints("acme")
    return [checkpoints.verify(s.note, verifier, origin=verifier.name) for s in stored]


async def test_the_pruned_prefix_route(
    app: AuditlogApp, auditor: Api, store: ControlledStore, pruned: Pruned, make_api: MakeApi
) -> None:
    answer = await auditor.client.get("/v1/log/pruned", headers=auditor.headers)
    assert answer.status_code == 200, answer.text
    value = answer.json()
    assert value["horizon"] == H
    prefix = CompactRange().extend(leaves(pruned.events[:H]))[0]
    assert [b64d(h) for h in value["prefix"]] == list(prefix.hashes)
    assert value["archives"] == []
    # The prefix and the kept events give the latest signed root.
    latest = (await verified_checkpoints(app, auditor, store))[-1]
    assert latest.size == 27
    grown, _ = CompactRange(H, tuple(b64d(h) for h in value["prefix"])).extend(
        leaves(pruned.events[H:])
    )
    assert grown.root == latest.root_hash
    # Archives are listed without where they are.
    for first, end, sha in ((0, 6, "b" * 64), (4, 12, "a" * 64)):
        when = 1_800_000_000_000_000
        record = ArchiveRecord("acme", first, end, sha, "/srv/secret", 12, when, "cli:op")
        await store.add_archive(record)
    value = (await auditor.client.get("/v1/log/pruned", headers=auditor.headers)).json()
    assert value["archives"] == [
        {"first_seq": 0, "end_seq": 6, "sha256": "b" * 64, "created_at": "2027-01-15T08:00:00.000000Z"},
        {"first_seq": 4, "end_seq": 12, "sha256": "a" * 64, "created_at": "2027-01-15T08:00:00.000000Z"},
    ]  # fmt: skip
    reader = await make_api(scopes=("events:read",))
    problem(await reader.client.get("/v1/log/pruned", headers=reader.headers), 403)


async def proof_hashes(response: httpx.Response) -> list[bytes]:
    assert response.status_code == 200, response.text
    return [b64d(h) for h in response.json()["hashes"]]


async def test_every_proof_still_verifies_after_the_prune(
    app: AuditlogApp, auditor: Api, store: ControlledStore, pruned: Pruned
) -> None:
    signed = await verified_checkpoints(app, auditor, store)
    assert [c.size for c in signed] == [5, 12, 21, 27]
    expected = leaves(pruned.events)
    client, headers = auditor.client, auditor.headers
    for checkpoint in signed:
        size = checkpoint.size
        for seq in range(size):  # pruned and kept alike
            params = {"seq": seq, "tree_size": size}
            answer = await client.get("/v1/log/proof/inclusion", params=params, headers=headers)
            leaf = b64d(answer.json()["leaf_hash"])
            assert leaf == expected[seq]
            path = await proof_hashes(answer)
            proof.verify_inclusion(seq, size, leaf, path, checkpoint.root_hash)
    for first in signed:
        for second in signed:
            if first.size > second.size:
                continue
            params = {"first": first.size, "second": second.size}
            answer = await client.get("/v1/log/proof/consistency", params=params, headers=headers)
            path = await proof_hashes(answer)
            proof.verify_consistency(
                first.size, second.size, path, first.root_hash, second.root_hash
            )

"""``/v1/log`` (API.md §5) and ``POST /v1/events?wait=checkpoint``, through the whole application.

Every proof the service gives is checked with ``integrity.proof`` against a checkpoint whose
signature verifies with the published key, and against a reference tree computed from the
events as the events API returns them.
"""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

import httpx
import pytest

from auditlog.integrity import IntegrityError, proof
from auditlog.integrity import checkpoint as checkpoints
from auditlog.integrity import note as notes
from auditlog.integrity.hasher import EMPTY_ROOT, event_leaf_hash
from auditlog.model.canonical import canonical_bytes
from auditlog.server import problems
from auditlog.server.app import AuditlogApp
from auditlog.server.handlers.log import wants_text
from auditlog.storage.base import Store
from server.api import TIME, Api, problem
from server.conftest import QUIET, ControlledStore, MakeApi

pytestmark = pytest.mark.anyio

ALL = ("events:write", "events:read", "log:read")


def b64d(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


@pytest.fixture
async def auditor(make_api: MakeApi) -> Api:
    """A credential of tenant ``acme`` that may write, read and read the log."""
    return await make_api(scopes=ALL)


async def integrate(app: AuditlogApp) -> None:
    await app.services.integrator.run_once()


async def vkey(api: Api) -> notes.Verifier:
    response = await api.client.get(
        "/v1/log/public-key", headers={**api.headers, "Accept": "text/plain"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    return notes.Verifier.from_vkey(response.text.strip())


async def checkpoint(api: Api) -> tuple[dict[str, Any], checkpoints.Checkpoint]:
    """The latest checkpoint as JSON, and its signed note verified with the published key."""
    response = await api.client.get("/v1/log/checkpoint", headers=api.headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    value: dict[str, Any] = response.json()
    signed = checkpoints.verify(value["note"], await vkey(api), origin=value["origin"])
    return value, signed


async def reference_leaves(api: Api) -> list[bytes]:
    events = await api.everything()
    assert [e["seq"] for e in events] == list(range(len(events)))
    return [event_leaf_hash(e) for e in events]


async def write(api: Api, n: int) -> None:
    await api.create_batch([{"type": "t", "data": {"n": i}} for i in range(n)])


# -- the checkpoint ----------------------------------------------------------------------------


async def test_the_checkpoint_as_json_and_as_a_signed_note(app: AuditlogApp, auditor: Api) -> None:
    await write(auditor, 11)
    await integrate(app)
    value, signed = await checkpoint(auditor)
    assert set(value) == {
        "origin", "tree_size", "root_hash", "timestamp", "signature", "key_id", "note"
    }  # fmt: skip
    assert value["origin"] == "auditlog/acme"
    assert value["tree_size"] == signed.size == 11
    assert b64d(value["root_hash"]) == signed.root_hash
    assert signed.root_hash == proof.root_of_leaves(await reference_leaves(auditor))
    assert TIME.fullmatch(value["timestamp"])
    verifier = await vkey(auditor)
    assert value["key_id"] == verifier.key_id.hex()
    assert verifier.verify(notes.parse(value["note"]).text, b64d(value["signature"]))
    text = await auditor.client.get(
        "/v1/log/checkpoint", headers={**auditor.headers, "Accept": "text/plain"}
    )
    assert text.status_code == 200
    assert text.headers["content-type"] == "text/plain; charset=utf-8"
    assert text.text == value["note"]
    assert text.text.startswith("auditlog/acme\n11\n" + value["root_hash"] + "\n\n\u2014 ")


async def test_an_empty_log_has_the_checkpoint_of_the_empty_tree(auditor: Api) -> None:
    value, signed = await checkpoint(auditor)
    assert (signed.size, signed.root_hash) == (0, EMPTY_ROOT)
    assert value["tree_size"] == 0
    again, _ = await checkpoint(auditor)
    assert again["note"] == value["note"]  # Ed25519 signs deterministically


@pytest.mark.parametrize(
    ("accept", "text"),
    [
        (None, False),
        ("text/plain", True),
        ("text/plain; charset=utf-8", True),
        ("application/json", False),
        ("*/*", False),
        ("text/*", False),
        ("text/plain;q=0.5, application/json", False),
        ("text/plain, application/json;q=0.9", True),
        ("application/json;q=0, text/plain;q=0.1", True),
        ("text/plain;q=0", False),
        ("text/plain;q=x", False),
    ],
)
def test_content_negotiation(accept: str | None, text: bool) -> None:
    assert wants_text(accept) is text


async def test_the_public_key(app: AuditlogApp, auditor: Api) -> None:
    response = await auditor.client.get("/v1/log/public-key", headers=auditor.headers)
    assert response.status_code == 200
    key = response.json()
    assert key["algorithm"] == "Ed25519"
    assert key["origin"] == key["key_name"] == "auditlog/acme"
    assert b64d(key["public_key"]) == app.services.log_key.public_key
    verifier = notes.Verifier.from_vkey(key["vkey"])
    assert verifier.key_id.hex() == key["key_id"]
    assert verifier == await vkey(auditor)


# -- proofs ------------------------------------------------------------------------------------


async def test_every_inclusion_proof_verifies(app: AuditlogApp, auditor: Api) -> None:
    await write(auditor, 5)
    await integrate(app)
    await write(auditor, 8)
    await integrate(app)
    _, signed = await checkpoint(auditor)
    leaves = await reference_leaves(auditor)
    assert signed.size == len(leaves) == 13
    for seq in range(13):
        response = await auditor.client.get(
            "/v1/log/proof/inclusion", params={"seq": seq}, headers=auditor.headers
        )
        assert response.status_code == 200
        value = response.json()
        assert set(value) == {"leaf_index", "tree_size", "leaf_hash", "hashes"}
        assert (value["leaf_index"], value["tree_size"]) == (seq, 13)
        assert b64d(value["leaf_hash"]) == leaves[seq]
        path = [b64d(h) for h in value["hashes"]]
        proof.verify_inclusion(seq, 13, leaves[seq], path, signed.root_hash)
    # In an earlier tree, against that tree's root.
    for size in (1, 5, 6, 12):
        for seq in range(size):
            response = await auditor.client.get(
                "/v1/log/proof/inclusion",
                params={"seq": seq, "tree_size": size},
                headers=auditor.headers,
            )
            path = [b64d(h) for h in response.json()["hashes"]]
            root = proof.root_of_leaves(leaves[:size])
            proof.verify_inclusion(seq, size, leaves[seq], path, root)


async def test_every_consistency_proof_verifies(app: AuditlogApp, auditor: Api) -> None:
    await write(auditor, 9)
    await integrate(app)
    leaves = await reference_leaves(auditor)
    for second in range(10):
        for first in range(second + 1):
            response = await auditor.client.get(
                "/v1/log/proof/consistency",
                params={"first": first, "second": second},
                headers=auditor.headers,
            )
            assert response.status_code == 200
            value = response.json()
            assert (value["first"], value["second"]) == (first, second)
            path = [b64d(h) for h in value["hashes"]]
            proof.verify_consistency(
                first,
                second,
                path,
                proof.root_of_leaves(leaves[:first]),
                proof.root_of_leaves(leaves[:second]),
            )
    latest = await auditor.client.get(
        "/v1/log/proof/consistency", params={"first": 4}, headers=auditor.headers
    )
    assert latest.json()["second"] == 9


async def test_a_leaf_is_the_event_as_the_api_returns_it(app: AuditlogApp, auditor: Api) -> None:
    stored = await auditor.create({"id": "x", "type": "t", "data": {"ünï": "cödé", "f": 1.5}})
    await integrate(app)
    fetched = await auditor.get("x")
    assert fetched.content == canonical_bytes(stored)
    response = await auditor.client.get(
        "/v1/log/proof/inclusion", params={"seq": 0}, headers=auditor.headers
    )
    assert b64d(response.json()["leaf_hash"]) == event_leaf_hash(stored)


@pytest.mark.parametrize(
    ("path", "params", "status", "named"),
    [
        ("inclusion", {}, 400, "'seq' is required"),
        ("inclusion", {"seq": "x"}, 400, "seq 'x'"),
        ("inclusion", {"seq": "-1"}, 400, "seq '-1'"),
        ("inclusion", {"seq": "1.0"}, 400, "seq '1.0'"),
        ("inclusion", {"seq": "٣"}, 400, "seq '٣'"),
        ("inclusion", {"seq": str(2**63)}, 400, "seq '9223372036854775808'"),
        ("inclusion", {"seq": "1", "tree_size": ""}, 400, "tree_size ''"),
        ("inclusion", {"seq": "1", "size": "2"}, 400, "unknown parameter 'size'"),
        ("inclusion", {"seq": "3", "tree_size": "3"}, 400, "seq 3 is not in a tree of size 3"),
        ("inclusion", {"seq": "0", "tree_size": "5"}, 404, "tree size 5 is beyond"),
        ("inclusion", {"seq": "4"}, 404, "seq 4 is not covered"),
        ("consistency", {}, 400, "'first' is required"),
        ("consistency", {"first": "a"}, 400, "first 'a'"),
        ("consistency", {"first": "1", "second": "b"}, 400, "second 'b'"),
        ("consistency", {"first": "3", "second": "2"}, 400, "first 3 is larger than second 2"),
        ("consistency", {"first": "1", "second": "9"}, 404, "tree size 9 is beyond"),
        ("consistency", {"first": "5"}, 404, "tree size 5 is beyond"),
    ],
)
async def test_bad_parameters(
    app: AuditlogApp,
    auditor: Api,
    path: str,
    params: dict[str, str],
    status: int,
    named: str,
) -> None:
    await write(auditor, 4)
    await integrate(app)
    response = await auditor.client.get(
        f"/v1/log/proof/{path}", params=params, headers=auditor.headers
    )
    assert named in problem(response, status)["detail"]


async def test_a_repeated_parameter_is_refused(auditor: Api) -> None:
    response = await auditor.client.get(
        "/v1/log/proof/inclusion?seq=0&seq=1", headers=auditor.headers
    )
    assert "'seq' is given more than once" in problem(response, 400)["detail"]


# -- credentials -------------------------------------------------------------------------------

LOG_ROUTES = (
    "/v1/log/checkpoint",
    "/v1/log/proof/inclusion?seq=0",
    "/v1/log/proof/consistency?first=0",
    "/v1/log/public-key",
)


@pytest.mark.parametrize("route", LOG_ROUTES)
async def test_the_log_routes_need_the_scope_log_read(
    client: httpx.AsyncClient, make_api: MakeApi, route: str
) -> None:
    problem(await client.get(route), 401)
    reader = await make_api(scopes=("events:read", "events:write"))
    assert "log:read" in problem(await client.get(route, headers=reader.headers), 403)["detail"]
    admin = await make_api(scopes=("admin",))
    assert (await client.get(route, headers=admin.headers)).status_code in (200, 404)
    only_log = await make_api(scopes=("log:read",))
    assert (await client.get(route, headers=only_log.headers)).status_code in (200, 404)


async def test_tenants_see_only_their_own_log(
    app: AuditlogApp, auditor: Api, make_api: MakeApi
) -> None:
    other = await make_api("beta", ALL)
    await write(auditor, 6)
    await write(other, 2)
    await integrate(app)
    acme, acme_signed = await checkpoint(auditor)
    beta, beta_signed = await checkpoint(other)
    assert (acme["origin"], acme["tree_size"]) == ("auditlog/acme", 6)
    assert (beta["origin"], beta["tree_size"]) == ("auditlog/beta", 2)
    assert beta_signed.root_hash == proof.root_of_leaves(await reference_leaves(other))
    # beta's log has no seq 4, whatever acme's has.
    response = await other.client.get(
        "/v1/log/proof/inclusion", params={"seq": 4}, headers=other.headers
    )
    problem(response, 404)
    # Each tenant's key name is its origin: acme's checkpoint does not pass for beta's.
    with pytest.raises(IntegrityError):
        checkpoints.verify(acme["note"], await vkey(other))
    assert acme_signed.root_hash != beta_signed.root_hash


# -- waiting for a checkpoint ------------------------------------------------------------------


async def test_one_event_waits_for_its_checkpoint(auditor: Api) -> None:
    await write(auditor, 3)
    response = await auditor.client.post(
        "/v1/events?wait=checkpoint",
        json={"id": "w1", "type": "t", "data": {"k": "v"}},
        headers=auditor.headers,
    )
    assert response.status_code == 201
    assert response.headers["location"] == "/v1/events/w1"
    value = response.json()
    assert set(value) == {"event", "checkpoint", "inclusion_proof"}
    event = value["event"]
    assert event["seq"] == 3
    assert (await auditor.get("w1")).json() == event
    signed = checkpoints.verify(value["checkpoint"]["note"], await vkey(auditor))
    assert signed.size >= 4
    included = value["inclusion_proof"]
    assert included["leaf_index"] == 3
    assert included["tree_size"] == signed.size
    path = [b64d(h) for h in included["hashes"]]
    proof.verify_inclusion(3, signed.size, event_leaf_hash(event), path, signed.root_hash)
    # A retry of the same event waits too, and answers 200.
    again = await auditor.client.post(
        "/v1/events?wait=checkpoint",
        json={"id": "w1", "type": "t", "data": {"k": "v"}},
        headers=auditor.headers,
    )
    assert again.status_code == 200
    assert again.json()["event"] == event


async def test_a_batch_waits_for_its_checkpoint(auditor: Api) -> None:
    response = await auditor.client.post(
        "/v1/events",
        params={"wait": "checkpoint"},
        json=[{"id": f"b{i}", "type": "t"} for i in range(5)],
        headers=auditor.headers,
    )
    assert response.status_code == 201
    value = response.json()
    assert set(value) == {"events", "checkpoint", "inclusion_proofs"}
    assert [e["seq"] for e in value["events"]] == list(range(5))
    signed = checkpoints.verify(value["checkpoint"]["note"], await vkey(auditor))
    leaves = (await reference_leaves(auditor))[:5]
    for seq, included in enumerate(value["inclusion_proofs"]):
        assert included["leaf_index"] == seq
        assert b64d(included["leaf_hash"]) == leaves[seq]
        path = [b64d(h) for h in included["hashes"]]
        proof.verify_inclusion(seq, signed.size, leaves[seq], path, signed.root_hash)


@pytest.mark.parametrize(
    "settings", [dataclasses.replace(QUIET, checkpoint_wait_ms=0, checkpoint_interval_ms=60_000)]
)
async def test_no_checkpoint_in_time_still_answers_the_stored_event(auditor: Api) -> None:
    response = await auditor.client.post(
        "/v1/events?wait=checkpoint", json={"id": "late", "type": "t"}, headers=auditor.headers
    )
    assert response.status_code == 201
    value = response.json()
    assert value["event"]["id"] == "late"
    assert value["checkpoint"] is None
    assert value["inclusion_proof"] is None
    assert (await auditor.get("late")).status_code == 200


@pytest.mark.parametrize("query", ["wait=now", "wait=", "wait=checkpoint&wait=checkpoint"])
async def test_a_bad_wait_is_refused_before_anything_is_stored(auditor: Api, query: str) -> None:
    response = await auditor.client.post(
        f"/v1/events?{query}", json={"id": "no", "type": "t"}, headers=auditor.headers
    )
    assert "wait" in problem(response, 400)["detail"]
    problem(await auditor.get("no"), 404)


async def test_other_query_parameters_of_a_write_are_still_ignored(auditor: Api) -> None:
    response = await auditor.client.post(
        "/v1/events?pretty=1", json={"type": "t"}, headers=auditor.headers
    )
    assert response.status_code == 201
    assert "seq" in response.json()


async def test_shutdown_signs_a_checkpoint_of_every_answered_write(
    app: AuditlogApp, auditor: Api, store: ControlledStore
) -> None:
    await write(auditor, 7)
    inner: Store = store.inner
    await app.services.integrator.close()
    latest = await inner.latest_checkpoint("acme")
    assert latest is not None
    assert latest.size == 7
    app.services.integrator.start()  # the fixture stops it again


def test_the_controlled_store_forwards_every_store_method() -> None:
    protocol = {name for name in vars(Store) if not name.startswith("_")}
    assert protocol
    assert protocol <= set(vars(ControlledStore))


def test_a_damaged_tree_is_a_500_that_names_no_client_fault() -> None:
    response = problems.from_exception(IntegrityError("tree node (0, 3) is missing"))
    assert response.status == 500
    assert b"auditlog verify" in response.body
    assert b"(0, 3)" not in response.body

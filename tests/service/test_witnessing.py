"""Pushing the tenants log to witnesses (``auditlog.service.witnessing``), against three real
witnesses (``auditlog.witness.app``, each with its own SQLite state) reached in process.

A transport routes ``http://wN.test`` to witness N; a witness can be taken down (connection
refused) and brought back. The store is the memory store; events go in through ``append`` and
the integrator signs the tenants' checkpoints and the tenants log's.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from auditlog.integrity import checkpoint as checkpoints
from auditlog.integrity import cosignature as cosignatures
from auditlog.integrity import note as notes
from auditlog.integrity import policy as policies
from auditlog.metrics import Metrics
from auditlog.service.integrator import Integrator
from auditlog.service.logkey import LogKey
from auditlog.service.witnessing import Witnessing
from auditlog.storage.base import AppendRequest, Store
from auditlog.storage.memory import MemoryStore
from auditlog.witness.app import WitnessApp
from auditlog.witness.state import State
from auditlog.witness.verifier import logs_of_policy
from service.test_integrator import new_events

pytestmark = pytest.mark.anyio

SEED = bytes(range(32))


@dataclass
class Witnesses:
    """Three witnesses in process, and a transport that reaches those that are up."""

    tmp: Path
    tenants_vkey: str
    cosigners: list[cosignatures.Cosigner] = field(default_factory=list)
    apps: list[WitnessApp] = field(default_factory=list)
    down: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        for i in range(3):
            self.cosigners.append(cosignatures.Cosigner.generate(f"w{i}.test"))
            self.apps.append(self._app(i))

    def _app(self, i: int) -> WitnessApp:
        logs = logs_of_policy(f"log {self.tenants_vkey}\nquorum none\n")
        return WitnessApp(self.cosigners[i], logs, State(self.tmp / f"w{i}"))

    def restart(self, i: int) -> None:
        self.apps[i].state.close()
        self.apps[i] = self._app(i)

    def policy_text(self, quorum: str = "group q 2 w0 w1 w2\nquorum q\n") -> str:
        lines = [f"log {self.tenants_vkey}"]
        for i, c in enumerate(self.cosigners):
            lines.append(f"witness w{i} {c.key.vkey} http://w{i}.test")
        return "\n".join(lines) + "\n" + quorum

    def transport(self) -> httpx.AsyncBaseTransport:
        async def handle(request: httpx.Request) -> httpx.Response:
            i = int(request.url.host[1])
            if i in self.down:
                raise httpx.ConnectError("connection refused", request=request)
            inner = httpx.ASGITransport(app=self.apps[i])
            return await inner.handle_async_request(request)

        return httpx.MockTransport(handle)

    def close(self) -> None:
        for app in self.apps:
            app.state.close()


@dataclass
class Service:
    store: Store
    key: LogKey
    integrator: Integrator
    witnessing: Witnessing
    metrics: Metrics
    clock: list[float]

    async def write(self, tenant: str, n: int) -> None:
        await self.store.append([AppendRequest(tenant, new_events(n))])
        await self.integrator.run_once()

    async def push(self) -> None:
        await self.witnessing.run_once()

    def refusals(self, witness: str) -> float:
        total = 0.0
        for metric in self.metrics.registry.collect():
            for sample in metric.samples:
                if (
                    sample.name == "auditlog_witness_refusals_total"
                    and sample.labels.get("witness") == witness
                ):
                    total += sample.value
        return total


async def service(
    witnesses: Witnesses, store: Store | None = None, policy_text: str | None = None
) -> Service:
    store = store or MemoryStore()
    await store.open()
    key = LogKey(store)
    await key.load()
    policy = policies.parse(policy_text or witnesses.policy_text())
    metrics = Metrics()
    clock = [1000.0]
    witnessing = Witnessing(
        store, policy, metrics, transport=witnesses.transport(), clock=lambda: clock[0]
    )
    integrator = Integrator(store, key)
    integrator.on_tenants_checkpoint(witnessing.checkpoint_signed)
    return Service(store, key, integrator, witnessing, metrics, clock)


class _KeyedStore(MemoryStore):
    """A memory store whose log key is the fixed ``SEED``: two of them are one operator's."""

    async def load_or_create_secret(self, name: str, value: bytes) -> bytes:
        return await super().load_or_create_secret(name, SEED)


@pytest.fixture
async def witnesses(tmp_path: Path) -> AsyncIterator[Witnesses]:
    signer = notes.Signer("auditlog", SEED)
    w = Witnesses(tmp_path, signer.verifier.vkey)
    yield w
    w.close()


@pytest.fixture
async def svc(witnesses: Witnesses) -> AsyncIterator[Service]:
    s = await service(witnesses, _KeyedStore())
    yield s
    await s.witnessing.close()
    await s.store.close()


def cosigners_of(note: str, witnesses: Witnesses) -> set[str]:
    keys = [c.key for c in witnesses.cosigners]
    return set(cosignatures.verify_cosignatures(note, keys))


async def test_every_witness_cosigns_the_tenants_checkpoint(
    svc: Service, witnesses: Witnesses
) -> None:
    await svc.write("acme", 5)
    await svc.write("globex", 3)
    await svc.push()
    witnessed = await svc.store.witnessed_tenants_checkpoint()
    latest = await svc.store.latest_tenants_checkpoint()
    assert witnessed is not None
    assert latest is not None
    assert witnessed.size == latest.size == 2
    assert cosigners_of(witnessed.note, witnesses) == {"w0.test", "w1.test", "w2.test"}
    checkpoint = checkpoints.verify(witnessed.note, svc.key.tenants_verifier(), origin="auditlog")
    assert checkpoint.size == 2
    states = {s.name: s for s in await svc.store.list_witness_states()}
    assert {n: s.size for n, s in states.items()} == {"w0": 2, "w1": 2, "w2": 2}
    assert all(s.error == "" and s.refusals == 0 for s in states.values())


async def test_a_witness_down_leaves_the_quorum_and_catches_up_when_back(
    svc: Service, witnesses: Witnesses
) -> None:
    await svc.write("acme", 5)
    await svc.push()
    witnesses.down.add(2)
    await svc.write("acme", 5)
    await svc.write("globex", 1)
    await svc.push()
    witnessed = await svc.store.witnessed_tenants_checkpoint()
    assert witnessed is not None
    assert witnessed.size == 3
    assert cosigners_of(witnessed.note, witnesses) == {"w0.test", "w1.test"}
    states = {s.name: s for s in await svc.store.list_witness_states()}
    assert states["w2"].size == 1
    assert "no answer" in states["w2"].error
    assert svc.refusals("w2") == 0
    # Back, and past its backoff: it is sent the newest checkpoint with a proof from size 1.
    witnesses.down.clear()
    await svc.write("acme", 2)
    svc.clock[0] += 120
    await svc.push()
    witnessed = await svc.store.witnessed_tenants_checkpoint()
    assert witnessed is not None
    assert witnessed.size == 4
    assert cosigners_of(witnessed.note, witnesses) == {"w0.test", "w1.test", "w2.test"}
    states = {s.name: s for s in await svc.store.list_witness_states()}
    assert states["w2"].size == 4
    assert states["w2"].error == ""


async def test_without_a_quorum_nothing_is_witnessed(svc: Service, witnesses: Witnesses) -> None:
    witnesses.down.update({1, 2})
    await svc.write("acme", 5)
    await svc.push()
    assert await svc.store.witnessed_tenants_checkpoint() is None
    kept = await svc.store.cosigned_tenants_checkpoint(1)
    assert kept is not None
    assert cosigners_of(kept.note, witnesses) == {"w0.test"}


async def test_a_restarted_service_resyncs_from_the_409(svc: Service, witnesses: Witnesses) -> None:
    await svc.write("acme", 5)
    await svc.push()
    await svc.write("acme", 1)
    # A new process on the same store knows no witness's size: it pushes "old 0", is told
    # the size by a 409, and pushes again from there.
    again = Witnessing(
        svc.store, svc.witnessing.policy, svc.metrics, transport=witnesses.transport()
    )
    try:
        await again.run_once()
    finally:
        await again.close()
    witnessed = await svc.store.witnessed_tenants_checkpoint()
    assert witnessed is not None
    assert witnessed.size == 2
    assert all(svc.refusals(f"w{i}") == 0 for i in range(3))


async def test_restarted_witnesses_keep_their_state(svc: Service, witnesses: Witnesses) -> None:
    await svc.write("acme", 5)
    await svc.push()
    for i in range(3):
        witnesses.restart(i)
    await svc.write("acme", 1)
    await svc.push()
    witnessed = await svc.store.witnessed_tenants_checkpoint()
    assert witnessed is not None
    assert witnessed.size == 2


async def test_a_rewritten_history_is_refused_by_every_witness(
    svc: Service, witnesses: Witnesses, caplog: pytest.LogCaptureFixture
) -> None:
    """The operator rebuilds the log with one event changed and signs it with the same key:
    a fork. Every witness refuses it, whatever size it is told."""
    await svc.write("acme", 5)
    await svc.write("acme", 5)
    await svc.push()
    forged = await service(witnesses, _KeyedStore())
    try:
        await forged.store.append([AppendRequest("acme", new_events(4))])
        await forged.store.append([AppendRequest("acme", new_events(6, start=100))])
        await forged.integrator.run_once()
        await forged.write("acme", 1)
        with caplog.at_level(logging.ERROR, "auditlog.witnessing"):
            await forged.push()
        assert await forged.store.witnessed_tenants_checkpoint() is None
        assert [forged.refusals(f"w{i}") for i in range(3)] == [1, 1, 1]
        states = {s.name: s for s in await forged.store.list_witness_states()}
        assert all(s.refusals == 1 and "422" in s.error for s in states.values()), states
        assert "REFUSED" in caplog.text
    finally:
        await forged.witnessing.close()
        await forged.store.close()


async def test_a_rolled_back_log_is_refused(svc: Service, witnesses: Witnesses) -> None:
    """The database is put back to an older copy: the witnesses have cosigned a larger size
    than the log now has, which the 409 shows."""
    await svc.write("acme", 5)
    await svc.push()
    older = await service(witnesses, _KeyedStore())
    try:
        await older.store.append([AppendRequest("acme", new_events(5))])
        await older.integrator.run_once()
        await svc.write("acme", 5)
        await svc.push()  # the witnesses are now at size 2
        await older.push()  # the rolled-back log has size 1
        assert [older.refusals(f"w{i}") for i in range(3)] == [1, 1, 1]
        states = {s.name: s for s in await older.store.list_witness_states()}
        assert all("rolled back" in s.error for s in states.values())
    finally:
        await older.witnessing.close()
        await older.store.close()


async def test_a_cosignature_by_another_key_is_refused(tmp_path: Path) -> None:
    signer = notes.Signer("auditlog", SEED)
    w = Witnesses(tmp_path, signer.verifier.vkey)
    # The policy names a key for w1 that is not the one it signs with.
    wrong = cosignatures.Cosigner.generate("w1.test")
    right = w.cosigners[1]
    w.cosigners[1] = wrong
    policy_text = w.policy_text()
    w.cosigners[1] = right
    s = await service(w, _KeyedStore(), policy_text)
    try:
        await s.write("acme", 2)
        await s.push()
        assert s.refusals("w1") == 1
        witnessed = await s.store.witnessed_tenants_checkpoint()
        assert witnessed is not None
        assert cosigners_of(witnessed.note, w) == {"w0.test", "w2.test"}
    finally:
        await s.witnessing.close()
        await s.store.close()
        w.close()


async def test_a_witness_state_that_only_moved_its_size_is_stored_within_seconds(
    svc: Service,
) -> None:
    await svc.write("acme", 5)
    await svc.push()
    await svc.write("acme", 1)
    svc.clock[0] += 1
    await svc.push()
    # Only the size moved, a second later: not stored yet (a write per round otherwise).
    states = await svc.store.list_witness_states()
    assert [s.size for s in states] == [1, 1, 1]
    # Nothing new to push, but the last size is stored once its time has come.
    svc.clock[0] += 5
    await svc.push()
    states = await svc.store.list_witness_states()
    assert [s.size for s in states] == [2, 2, 2]

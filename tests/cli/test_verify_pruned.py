"""``auditlog verify`` of a log whose start was pruned by retention (API.md §14), offline and
through the API, on the memory store and SQLite.

Each log is built as a served one is (events committed, then integrated and signed, batch
after batch: checkpoints of 5, 12 and 21 events), its first ``H`` = 10 events are pruned
(``Store.prune_to``, then ``Store.sweep``), and 6 more are written and signed (27). An intact
pruned log verifies (exit 0) with a note naming the pruned prefix and its archives; a kept
event changed, removed, or a tree node of the pruned prefix changed or removed, is caught.

The memory store cannot be opened by another process: the offline command is given the very
store the log was built in, and ``verify --url`` reaches the application through its ASGI
interface (``urllib.request.urlopen`` answered by it). SQLite is verified as an operator would,
the auditor against a real ``auditlog serve``.
"""

from __future__ import annotations

import asyncio
import email.message
import io
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

import auditlog.cli.verify as verify_command
from auditlog import config
from auditlog.cli.main import main
from auditlog.cli.verifystate import StateFile, Verified
from auditlog.config import Settings
from auditlog.model import times
from auditlog.model.canonical import canonical_bytes
from auditlog.model.event import Limits, Principal, validate_event
from auditlog.model.retention import ArchiveRecord
from auditlog.server.app import build_app
from auditlog.service.integrator import Integrator
from auditlog.service.logkey import LogKey
from auditlog.service.pruned import load_prefix
from auditlog.storage.base import AppendRequest, Store
from auditlog.storage.memory import MemoryStore
from auditlog.storage.sqlite.store import SQLiteStore
from live_server import create_key, serving

H = 10
SEQ_BITS = 40
SHA = "5" * 64


@pytest.fixture(autouse=True)
def _no_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for setting in config.SETTINGS:
        monkeypatch.delenv(setting.env, raising=False)
    monkeypatch.delenv("AUDITLOG_CONFIG", raising=False)


async def append(store: Store, integrator: Integrator, n: int, tenant: str = "acme") -> None:
    """``n`` more events, committed, then integrated and signed."""
    start = (await store.log_sizes()).get(tenant, 0)
    events = tuple(
        validate_event(
            {"type": "t", "data": {"n": start + i}},
            Principal("key:t", "t"),
            Limits(),
            times.now_us(),
        )
        for i in range(n)
    )
    await store.append([AppendRequest(tenant, events)])
    await integrator.integrate_batch(tenant)


async def build(store: Store, tenant: str = "acme") -> None:
    """The pruned log of the module's docstring, with an archive of seq 0..5 recorded."""
    integrator = Integrator(store, LogKey(store))
    for n in (5, 7, 9):
        await append(store, integrator, n, tenant)
    assert await store.prune_to(tenant, H) == H
    while await store.sweep(tenant, 1000):
        pass
    await append(store, integrator, 6, tenant)
    await store.add_archive(
        ArchiveRecord(tenant, 0, 6, SHA, "/archives/a.zip", 5, times.now_us(), "cli:op")
    )


# -- the two stores, and how an operator with access to them tampers ---------------------------


class Log:
    """A pruned log in a store, the command line's flags to reach it, and tampering."""

    def __init__(self, backend: str, data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.backend = backend
        self.file = data / "auditlog.db"
        data.mkdir(exist_ok=True)
        self.flags: tuple[str, ...] = ("--data", str(data))
        self.memory = MemoryStore()
        if backend == "memory":
            monkeypatch.setattr(verify_command, "open_store", lambda settings: self.memory)
            self.flags = ("--store", "memory:")

    def open(self) -> Store:
        return self.memory if self.backend == "memory" else SQLiteStore(str(self.file))

    def run(self, step: Callable[[Store], Any]) -> None:
        async def go() -> None:
            store = self.open()
            await store.open()
            try:
                await step(store)
            finally:
                await store.close()

        asyncio.run(go())

    def change_event(self, seq: int) -> None:
        if self.backend == "memory":
            log = self.memory._logs["acme"]
            row = log[seq]
            assert row is not None
            event = {**row.event, "data": {"n": -1}}
            log[seq] = replace(row, body=canonical_bytes(event), event=event)
            return
        with self.sql() as db:
            key = self.key(db, seq)
            (body,) = db.execute("SELECT body FROM events WHERE key = ?", (key,)).fetchone()
            event = {**orjson.loads(body), "data": {"n": -1}}
            db.execute("UPDATE events SET body = ? WHERE key = ?", (canonical_bytes(event), key))

    def remove_event(self, seq: int) -> None:
        if self.backend == "memory":
            self.memory._logs["acme"][seq] = None
            return
        with self.sql() as db:
            db.execute("DELETE FROM events WHERE key = ?", (self.key(db, seq),))

    def set_node(self, level: int, index: int, value: bytes | None) -> None:
        """Change a stored tree node's hash, or (``None``) remove the node."""
        if self.backend == "memory":
            nodes = self.memory._nodes
            if value is None:
                del nodes[("acme", level, index)]
            else:
                nodes[("acme", level, index)] = value
            return
        with self.sql() as db:
            (tenant_id,) = db.execute(
                "SELECT tenant_id FROM tenants WHERE name = 'acme'"
            ).fetchone()
            where = "tenant_id = ? AND level = ? AND idx = ?"
            if value is None:
                done = db.execute(
                    f"DELETE FROM tree_nodes WHERE {where}", (tenant_id, level, index)
                )
            else:
                done = db.execute(
                    f"UPDATE tree_nodes SET hash = ? WHERE {where}",
                    (value, tenant_id, level, index),
                )
            assert done.rowcount == 1

    def sql(self) -> Any:
        db = sqlite3.connect(self.file, isolation_level=None)
        return _closing(db)

    @staticmethod
    def key(db: sqlite3.Connection, seq: int) -> int:
        (tenant_id,) = db.execute("SELECT tenant_id FROM tenants WHERE name = 'acme'").fetchone()
        return int(tenant_id) << SEQ_BITS | seq


class _closing:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        return self.db

    def __exit__(self, *exc: object) -> None:
        self.db.close()


@pytest.fixture(params=("memory", "sqlite"))
def log(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Log:
    made = Log(request.param, tmp_path / "data", monkeypatch)
    made.run(build)
    return made


def offline(capsys: pytest.CaptureFixture[str], log: Log, *argv: str) -> tuple[int, str]:
    code = main(["verify", *log.flags, "--wait", "0", *argv])
    out, err = capsys.readouterr()
    return code, out + err


NOTE = (
    "note: tenant acme: seq 0: pruned: seq 0..9 pruned by the tenant's retention; archived in "
    f"seq 0..5 (sha256 {SHA}); seq 6..9 covered by no recorded archive (pruned with "
    "--no-archive)"
)


# -- offline -----------------------------------------------------------------------------------


def test_an_intact_pruned_log_verifies_with_a_note(
    capsys: pytest.CaptureFixture[str], log: Log
) -> None:
    code, out = offline(capsys, log)
    assert code == 0, out
    assert "tenant acme: 17 events, 4 checkpoints (the latest of size 27): intact" in out
    assert NOTE in out.splitlines()
    assert out.splitlines()[-1] == "intact: 1 tenants, 17 events"


def test_a_kept_event_changed_after_the_prune_is_named(
    capsys: pytest.CaptureFixture[str], log: Log
) -> None:
    log.change_event(14)
    code, out = offline(capsys, log)
    assert code == 1
    assert "tenant acme: seq 14: changed: its leaf hash differs" in out
    assert out.splitlines()[-1].endswith("the first bad seq 14 of tenant acme: changed")


def test_a_kept_event_removed_after_the_prune_is_named(
    capsys: pytest.CaptureFixture[str], log: Log
) -> None:
    log.remove_event(H)
    code, out = offline(capsys, log)
    assert code == 1
    assert f"tenant acme: seq {H}: removed: seq {H} missing from the stored events" in out
    assert NOTE in out.splitlines()


@pytest.mark.parametrize(
    ("node", "problem"),
    [
        # The pruned prefix's largest subtree: the first checkpoint past the horizon fails.
        ((3, 0), "seq 10: mismatch: seq 10..11, after the stored tree nodes of the pruned "
         "prefix (seq 0..9), do not give the root of the checkpoint of size 12: a node of the "
         "pruned prefix was changed"),
        # A pruned event's leaf, in the checkpoint of 5 only: checked on the nodes.
        ((0, 4), "seq 0: pruned prefix: the stored tree nodes of seq 0..4 (pruned) do not give "
         "the root of the checkpoint of size 5: a node of the pruned prefix was changed"),
    ],
)  # fmt: skip
def test_a_changed_node_of_the_pruned_prefix_is_caught(
    capsys: pytest.CaptureFixture[str], log: Log, node: tuple[int, int], problem: str
) -> None:
    log.set_node(*node, bytes(32))
    code, out = offline(capsys, log)
    assert code == 1, out
    assert f"tenant acme: {problem}" in out


def test_a_missing_node_of_the_pruned_prefix_is_named(
    capsys: pytest.CaptureFixture[str], log: Log
) -> None:
    log.set_node(1, 4, None)
    code, out = offline(capsys, log)
    assert code == 1
    assert (
        "tenant acme: seq 0: pruned prefix: the tree nodes (level, index) (1, 4) over seq 8..9 "
        "of the pruned prefix (seq 0..9) are missing from the store" in out
    )


def test_a_remembered_checkpoint_smaller_than_the_horizon_is_checked_on_the_nodes(
    capsys: pytest.CaptureFixture[str], log: Log, tmp_path: Path
) -> None:
    roots: list[bytes] = []

    async def root_of_seven(store: Store) -> None:  # no checkpoint has that size
        roots.append((await load_prefix(store, "acme", 7)).root)

    log.run(root_of_seven)
    path = tmp_path / "state.json"
    for root, code, problem in (
        (roots[0], 0, None),
        (bytes(32), 1, "tenant acme: seq 0: forked: the stored tree nodes of seq 0..6 (pruned) "
         "do not give the root of the checkpoint verified on "),
    ):  # fmt: skip
        state = StateFile(path)
        state.remember(Verified("auditlog/acme", 7, root, "", "here"))
        state.save()
        got, out = offline(capsys, log, "--state", str(path))
        assert got == code, out
        assert problem is None or problem in out


def test_a_remembered_checkpoint_of_a_stored_size_with_another_root_is_a_fork(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = Log("sqlite", tmp_path / "data", monkeypatch)

    async def unpruned(store: Store) -> None:
        integrator = Integrator(store, LogKey(store))
        for n in (5, 7):
            await append(store, integrator, n)

    log.run(unpruned)
    path = tmp_path / "state.json"
    state = StateFile(path)
    state.remember(Verified("auditlog/acme", 5, bytes(32), "", "here"))
    state.save()
    code, out = offline(capsys, log, "--state", str(path))
    assert code == 1, out
    assert (
        "tenant acme: checkpoint: forked: the checkpoint of size 5 has another root than the "
        "checkpoint verified on " in out
    )


# -- through the API: the memory store behind the ASGI application -----------------------------


class AsgiUrlopen:
    """``urllib.request.urlopen`` answered by an ASGI application running on ``loop``."""

    def __init__(self, http: httpx.AsyncClient, loop: asyncio.AbstractEventLoop) -> None:
        self.http = http
        self.loop = loop
        self.missing: set[str] = set()  # paths answered 404, as an older service would

    def __call__(self, request: urllib.request.Request, timeout: float = 30) -> io.BytesIO:
        url = request.full_url
        headers = dict(request.header_items())
        path = url.split("?", 1)[0].removeprefix("http://auditlog.test")
        if path in self.missing:
            status, body = 404, b'{"detail": "no route"}'
        else:
            answer = asyncio.run_coroutine_threadsafe(
                self.http.get(url, headers=headers), self.loop
            ).result(timeout)
            status, body = answer.status_code, answer.content
        if status >= 400:
            raise urllib.error.HTTPError(
                url, status, "error", email.message.Message(), io.BytesIO(body)
            )
        return io.BytesIO(body)


@pytest.fixture
async def served(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The pruned log in a memory store, served by the application; the auditor's flags."""
    store = MemoryStore()
    await build(store)
    app = build_app(Settings(audit_reads=False, read_rate=0, write_rate=0), store)
    await app.startup()
    try:
        _, token = await app.services.api_keys.create("acme", ("log:read", "events:read"), "a")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://auditlog.test") as http:
            opener = AsgiUrlopen(http, asyncio.get_running_loop())
            monkeypatch.setattr(urllib.request, "urlopen", opener)
            answer = await http.get(
                "/v1/log/public-key",
                headers={"Authorization": f"Bearer {token}", "Accept": "text/plain"},
            )
            flags = [
                "--url",
                "http://auditlog.test",
                "--token",
                token,
                "--public-key",
                answer.text.strip(),
            ]
            yield store, app, opener, flags
    finally:
        await app.shutdown()


async def remote(
    capsys: pytest.CaptureFixture[str], flags: list[str], state: Path
) -> tuple[int, str]:
    code = await asyncio.to_thread(main, ["verify", *flags, "--state", str(state)])
    out, err = capsys.readouterr()
    return code, out + err


@pytest.mark.anyio
async def test_an_auditor_verifies_a_pruned_log(
    capsys: pytest.CaptureFixture[str], served: Any, tmp_path: Path
) -> None:
    store, app, _, flags = served
    state = tmp_path / "state.json"
    code, out = await remote(capsys, flags, state)
    assert code == 0, out
    assert "checkpoint of size 27, 17 events: intact" in out
    assert NOTE in out.splitlines()
    assert StateFile(state).get("auditlog/acme") is not None
    # More events and a further prune: the next visit proves the log extends the first.
    await append(store, app.services.integrator, 8)
    assert await store.prune_to("acme", 20) == 20
    code, out = await remote(capsys, flags, state)
    assert code == 0, out
    assert "checkpoint of size 35, 15 events: intact" in out
    assert "note: tenant acme: seq 0: pruned: seq 0..19 pruned by the tenant's retention" in out
    remembered = StateFile(state).get("auditlog/acme")
    assert remembered is not None
    assert remembered.size == 35


@pytest.mark.anyio
async def test_an_auditor_names_a_kept_event_changed_after_the_prune(
    capsys: pytest.CaptureFixture[str], served: Any, tmp_path: Path
) -> None:
    store, _, _, flags = served
    row = store._logs["acme"][14]
    event = {**row.event, "data": {"n": -1}}
    store._logs["acme"][14] = replace(row, body=canonical_bytes(event), event=event)
    code, out = await remote(capsys, flags, tmp_path / "state.json")
    assert code == 1
    assert "tenant acme: seq 14: changed: the event the API returns for seq 14" in out


@pytest.mark.anyio
async def test_an_auditor_refuses_a_pruned_prefix_that_is_not_the_logs(
    capsys: pytest.CaptureFixture[str], served: Any, tmp_path: Path
) -> None:
    store, _, _, flags = served
    store._nodes[("acme", 1, 4)] = bytes(32)  # the prefix's hash of seq 8..9
    code, out = await remote(capsys, flags, tmp_path / "state.json")
    assert code == 1
    assert (
        "tenant acme: seq 0: pruned prefix: the pruned prefix's hashes are not the log's: with "
        "them the tree of 10 events is not a prefix of the checkpoint of size 27" in out
    )


@pytest.mark.anyio
async def test_an_older_service_without_the_route_has_pruned_nothing(
    capsys: pytest.CaptureFixture[str], served: Any, tmp_path: Path
) -> None:
    store, app, opener, flags = served
    opener.missing.add("/v1/log/pruned")
    code, out = await remote(capsys, flags, tmp_path / "state.json")
    assert code == 1  # it is pruned: the first events are not there
    assert (
        "tenant acme: seq 0: removed: seq 0..9 are missing from the events the API returns" in out
    )
    # A log with nothing pruned verifies as before.
    await append(store, app.services.integrator, 3, "beta")
    _, token = await app.services.api_keys.create("beta", ("log:read", "events:read"), "b")
    answer = await opener.http.get(
        "/v1/log/public-key", headers={"Authorization": f"Bearer {token}", "Accept": "text/plain"}
    )
    flags = [*flags[:2], "--token", token, "--public-key", answer.text.strip()]
    code, out = await remote(capsys, flags, tmp_path / "beta.json")
    assert code == 0, out
    assert "note:" not in out


# -- through the API of a real server, on SQLite -----------------------------------------------


@pytest.fixture
def sqlite_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Log, list[str]]]:
    data = tmp_path / "data"
    log = Log("sqlite", data, monkeypatch)
    token = create_key(data, "acme", "log:read,events:read")  # its record is seq 0
    log.run(build)
    with serving(data, tmp_path / "serve.log", "--no-audit-reads") as server:
        vkey = httpx.get(
            server.url + "/v1/log/public-key",
            headers={"Authorization": f"Bearer {token}", "Accept": "text/plain"},
        ).text.strip()
        yield log, ["--url", server.url, "--token", token, "--public-key", vkey]


@pytest.mark.slow
def test_an_auditor_verifies_a_pruned_log_of_a_real_server(
    capsys: pytest.CaptureFixture[str], sqlite_served: tuple[Log, list[str]], tmp_path: Path
) -> None:
    log, flags = sqlite_served
    state = ["--state", str(tmp_path / "state.json")]
    code = main(["verify", *flags, *state])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "checkpoint of size 28, 18 events: intact" in out  # the key's record is one more
    assert NOTE in out.splitlines()
    log.change_event(14)
    code = main(["verify", *flags, *state])
    out = capsys.readouterr().out
    assert code == 1
    assert "tenant acme: seq 14: changed: the event the API returns for seq 14" in out

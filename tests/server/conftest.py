"""Fixtures for tests through the real ASGI application.

``app`` is the whole application (``build_app``) started on a fresh store of each backend in
``BACKENDS``; ``client`` talks to it through ``httpx.ASGITransport``, which does not run the
ASGI lifespan, so the fixture starts and stops the application itself. Every answer passes
through ``AnswerGuard``: a 5xx other than a deliberate 503 fails the test, as does an error
that is not a problem document.

The store is wrapped in a ``ControlledStore``, which lets a test hold appends at a gate or
make storage fail, to provoke the 503s of API.md §2.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path

import httpx
import pytest

import pgtest
from auditlog.config import Settings
from auditlog.model.credentials import ApiKey, User
from auditlog.model.query import Query
from auditlog.model.retention import ArchiveRecord, Hold, Retention
from auditlog.model.streams import LogStream
from auditlog.server.app import AuditlogApp, build_app
from auditlog.storage.base import (
    AppendOutcome,
    AppendRequest,
    Integration,
    Page,
    Store,
    StoredCheckpoint,
    TenantsLeaf,
    TreeNode,
    WitnessState,
)
from auditlog.storage.memory import MemoryStore
from auditlog.storage.postgres.store import PostgresStore
from auditlog.storage.sqlite.store import SQLiteStore
from server.api import AnswerGuard, Api

#: Settings for tests about something else than self-audit and rate limits.
QUIET = Settings(audit_reads=False, read_rate=0, write_rate=0)

#: The backends every HTTP test runs on. PostgreSQL runs where AUDITLOG_TEST_POSTGRES_URL
#: names a server (always in CI) and is skipped with that reason elsewhere.
BACKENDS = ("memory", "sqlite", "postgres")
#: Also SQLite and PostgreSQL with their search index brought up to date after every append,
#: so queries go through the index as they do in a running service (whose indexer is a
#: separate process).
ALL_BACKENDS = (*BACKENDS, "sqlite-indexed", "postgres-indexed")
#: The backends available here, for tests that compare backends with each other: PostgreSQL
#: only where a server is named (a test of one backend skips instead).
COMPARED_BACKENDS = tuple(b for b in ALL_BACKENDS if not b.startswith("postgres") or pgtest.URL)


class ControlledStore:
    """A ``Store`` that delegates to a real one, with faults a test can switch on."""

    def __init__(self, inner: Store, index_after_append: bool = False) -> None:
        self.inner = inner
        self.index_after_append = index_after_append
        self.gate: asyncio.Event | None = None
        self.appending = asyncio.Event()
        self.append_error: BaseException | None = None
        self.ping_error: BaseException | None = None
        self.query_error: BaseException | None = None

    def hold_appends(self) -> None:
        """From now on every append waits until ``release_appends``."""
        self.gate = asyncio.Event()
        self.appending = asyncio.Event()

    def release_appends(self) -> None:
        if self.gate is not None:
            self.gate.set()
            self.gate = None

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def ping(self) -> None:
        if self.ping_error is not None:
            raise self.ping_error
        await self.inner.ping()

    async def append(self, requests: Sequence[AppendRequest]) -> list[AppendOutcome]:
        self.appending.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.append_error is not None:
            raise self.append_error
        outcomes = await self.inner.append(requests)
        if self.index_after_append:
            assert isinstance(self.inner, SQLiteStore | PostgresStore)
            self.inner.index_pending()
        return outcomes

    async def stats(self) -> dict[str, float]:
        return await self.inner.stats()

    async def get_event(self, tenant: str, event_id: str) -> bytes | None:
        return await self.inner.get_event(tenant, event_id)

    async def query(self, tenant: str, query: Query) -> Page:
        if self.query_error is not None:
            raise self.query_error
        return await self.inner.query(tenant, query)

    async def create_api_key(self, key: ApiKey) -> None:
        await self.inner.create_api_key(key)

    async def get_api_key(self, key_id: str) -> ApiKey | None:
        return await self.inner.get_api_key(key_id)

    async def list_api_keys(self, tenant: str | None = None) -> list[ApiKey]:
        return await self.inner.list_api_keys(tenant)

    async def revoke_api_key(self, key_id: str, revoked_us: int) -> bool:
        return await self.inner.revoke_api_key(key_id, revoked_us)

    async def create_user(self, user: User) -> bool:
        return await self.inner.create_user(user)

    async def get_user(self, username: str) -> User | None:
        return await self.inner.get_user(username)

    async def list_users(self, tenant: str | None = None) -> list[User]:
        return await self.inner.list_users(tenant)

    async def delete_user(self, username: str) -> User | None:
        return await self.inner.delete_user(username)

    async def set_password_hash(self, username: str, password_hash: str) -> User | None:
        return await self.inner.set_password_hash(username, password_hash)

    async def load_or_create_secret(self, name: str, value: bytes) -> bytes:
        return await self.inner.load_or_create_secret(name, value)

    async def integrating(self) -> bool:
        return await self.inner.integrating()

    async def log_sizes(self) -> dict[str, int]:
        return await self.inner.log_sizes()

    async def read_leaves(self, tenant: str, start: int, limit: int) -> list[tuple[int, bytes]]:
        return await self.inner.read_leaves(tenant, start, limit)

    async def put_nodes(self, tenant: str, nodes: Sequence[TreeNode]) -> None:
        await self.inner.put_nodes(tenant, nodes)

    async def get_nodes(
        self, tenant: str, keys: Sequence[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        return await self.inner.get_nodes(tenant, keys)

    async def add_checkpoint(self, tenant: str, checkpoint: StoredCheckpoint) -> bool:
        return await self.inner.add_checkpoint(tenant, checkpoint)

    async def latest_checkpoint(self, tenant: str) -> StoredCheckpoint | None:
        return await self.inner.latest_checkpoint(tenant)

    async def checkpoint_at_least(self, tenant: str, size: int) -> StoredCheckpoint | None:
        return await self.inner.checkpoint_at_least(tenant, size)

    async def list_checkpoints(
        self, tenant: str, after_size: int = -1, limit: int = 1000
    ) -> list[StoredCheckpoint]:
        return await self.inner.list_checkpoints(tenant, after_size, limit)

    async def durable_log_sizes(self, tenant: str | None = None) -> dict[str, int]:
        return await self.inner.durable_log_sizes(tenant)

    def watch_heads(self, callback: Callable[[Mapping[str, int]], None]) -> None:
        self.inner.watch_heads(callback)

    async def announce_heads(self, heads: Mapping[str, int]) -> None:
        await self.inner.announce_heads(heads)

    async def get_retention(self, tenant: str) -> Retention | None:
        return await self.inner.get_retention(tenant)

    async def set_retention(self, retention: Retention) -> None:
        await self.inner.set_retention(retention)

    async def list_retention(self) -> list[Retention]:
        return await self.inner.list_retention()

    async def set_hold(self, hold: Hold) -> Hold | None:
        return await self.inner.set_hold(hold)

    async def release_hold(self, tenant: str) -> Hold | None:
        return await self.inner.release_hold(tenant)

    async def get_hold(self, tenant: str) -> Hold | None:
        return await self.inner.get_hold(tenant)

    async def list_holds(self) -> list[Hold]:
        return await self.inner.list_holds()

    async def horizon(self, tenant: str) -> int:
        return await self.inner.horizon(tenant)

    async def horizons(self) -> dict[str, int]:
        return await self.inner.horizons()

    async def prune_to(self, tenant: str, horizon: int) -> int | Hold:
        return await self.inner.prune_to(tenant, horizon)

    async def sweep(self, tenant: str, limit: int) -> int:
        return await self.inner.sweep(tenant, limit)

    async def reclaim_space(self) -> int:
        return await self.inner.reclaim_space()

    async def was_pruned(self, tenant: str, event_id: str) -> bool:
        return await self.inner.was_pruned(tenant, event_id)

    async def add_archive(self, record: ArchiveRecord) -> None:
        await self.inner.add_archive(record)

    async def list_archives(self, tenant: str | None = None) -> list[ArchiveRecord]:
        return await self.inner.list_archives(tenant)

    async def add_integrations(self, integrations: Sequence[Integration]) -> list[bool]:
        return await self.inner.add_integrations(integrations)

    async def read_tenants_leaves(self, start: int, limit: int) -> list[TenantsLeaf]:
        return await self.inner.read_tenants_leaves(start, limit)

    async def tenants_leaf(self, tenant: str, below: int) -> TenantsLeaf | None:
        return await self.inner.tenants_leaf(tenant, below)

    async def put_tenants_nodes(self, nodes: Sequence[TreeNode]) -> None:
        await self.inner.put_tenants_nodes(nodes)

    async def get_tenants_nodes(
        self, keys: Sequence[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        return await self.inner.get_tenants_nodes(keys)

    async def add_tenants_checkpoint(self, checkpoint: StoredCheckpoint) -> bool:
        return await self.inner.add_tenants_checkpoint(checkpoint)

    async def latest_tenants_checkpoint(self) -> StoredCheckpoint | None:
        return await self.inner.latest_tenants_checkpoint()

    async def add_cosignatures(self, size: int, cosigned: str, quorum: bool) -> bool:
        return await self.inner.add_cosignatures(size, cosigned, quorum)

    async def witnessed_tenants_checkpoint(self) -> StoredCheckpoint | None:
        return await self.inner.witnessed_tenants_checkpoint()

    async def cosigned_tenants_checkpoint(self, size: int) -> StoredCheckpoint | None:
        return await self.inner.cosigned_tenants_checkpoint(size)

    async def set_witness_state(self, state: WitnessState) -> None:
        await self.inner.set_witness_state(state)

    async def list_witness_states(self) -> list[WitnessState]:
        return await self.inner.list_witness_states()

    async def create_stream(self, stream: LogStream) -> None:
        await self.inner.create_stream(stream)

    async def get_stream(self, tenant: str, stream_id: str) -> LogStream | None:
        return await self.inner.get_stream(tenant, stream_id)

    async def list_streams(self, tenant: str | None = None) -> list[LogStream]:
        return await self.inner.list_streams(tenant)

    async def update_stream(self, stream: LogStream) -> bool:
        return await self.inner.update_stream(stream)

    async def delete_stream(self, tenant: str, stream_id: str) -> bool:
        return await self.inner.delete_stream(tenant, stream_id)

    async def claim_streams(self, owner: str, lease_ms: int, limit: int) -> list[LogStream]:
        return await self.inner.claim_streams(owner, lease_ms, limit)

    async def release_streams(self, owner: str, stream_ids: Sequence[str]) -> None:
        await self.inner.release_streams(owner, stream_ids)

    async def record_delivery(
        self, tenant: str, stream_id: str, owner: str, position: int, events: int, at_us: int
    ) -> bool:
        return await self.inner.record_delivery(tenant, stream_id, owner, position, events, at_us)

    async def record_failure(
        self, tenant: str, stream_id: str, owner: str, error: str, at_us: int
    ) -> bool:
        return await self.inner.record_failure(tenant, stream_id, owner, error, at_us)


def new_store(backend: str, tmp_path: Path) -> ControlledStore:
    if backend == "memory":
        return ControlledStore(MemoryStore())
    if backend == "sqlite":
        return ControlledStore(SQLiteStore(str(tmp_path / "audit.db")))
    if backend == "sqlite-indexed":
        return ControlledStore(SQLiteStore(str(tmp_path / "audit.db")), index_after_append=True)
    if backend == "postgres":
        return ControlledStore(PostgresStore(pgtest.fresh_url()))
    if backend == "postgres-indexed":
        return ControlledStore(PostgresStore(pgtest.fresh_url(1)), index_after_append=True)
    raise AssertionError(backend)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The storage backend of the application under test."""
    param: str = request.param
    return param


@pytest.fixture
def settings() -> Settings:
    """The application's settings; a test may parametrize ``settings`` to change them.

    Reads are not recorded in the log here, so that a test's queries find only what it wrote,
    and requests are not rate limited; tests/server/test_selfaudit.py and test_ratelimit.py
    turn those on.
    """
    return QUIET


@pytest.fixture
def store(backend: str, tmp_path: Path) -> ControlledStore:
    return new_store(backend, tmp_path)


@pytest.fixture
async def app(settings: Settings, store: ControlledStore) -> AsyncIterator[AuditlogApp]:
    """The started application; stopped (after any held append is let go) at the end."""
    application = build_app(settings, store)
    await application.startup()
    try:
        yield application
    finally:
        store.release_appends()
        store.append_error = None
        await _shut_down(application)


#: Longest an application's shutdown may take in a test before it fails with every task's stack.
SHUTDOWN_TIMEOUT = 60.0


async def _shut_down(application: AuditlogApp) -> None:
    """``application.shutdown()``; one that hangs fails the test with what every task awaits,
    rather than holding up the whole run."""
    stopping = asyncio.ensure_future(application.shutdown())
    done, _ = await asyncio.wait({stopping}, timeout=SHUTDOWN_TIMEOUT)
    if not done:
        stacks = io.StringIO()
        for task in asyncio.all_tasks():
            task.print_stack(file=stacks)
        stopping.cancel()
        raise AssertionError(
            f"shutdown took over {SHUTDOWN_TIMEOUT} s; tasks:\n{stacks.getvalue()}"
        )
    stopping.result()


@pytest.fixture
def guard() -> AnswerGuard:
    return AnswerGuard()


@pytest.fixture
def expect_unavailable(guard: AnswerGuard) -> None:
    """The test provokes 503s on purpose."""
    guard.allow_unavailable = True


@pytest.fixture
async def client(app: AuditlogApp, guard: AnswerGuard) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://auditlog.test",
        event_hooks={"response": [guard]},
    ) as http:
        yield http


MakeApi = Callable[..., Awaitable[Api]]


@pytest.fixture
def make_api(app: AuditlogApp, client: httpx.AsyncClient) -> MakeApi:
    """``await make_api(tenant, scopes, name)``: an ``Api`` with a new key of its own."""

    async def make(
        tenant: str = "acme",
        scopes: Sequence[str] = ("events:write", "events:read"),
        name: str = "producer",
    ) -> Api:
        record, token = await app.services.api_keys.create(tenant, tuple(scopes), name)
        return Api(client, token, record.key_id)

    return make


@pytest.fixture
async def api(make_api: MakeApi) -> Api:
    """A client of tenant ``acme`` whose key (named ``producer``) may write and read."""
    return await make_api()

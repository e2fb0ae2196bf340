"""The in-memory store: the reference implementation of ``Store`` and the test oracle.

It keeps everything in Python structures, so it is plainly correct rather than fast, and it
keeps nothing across restarts. Every other backend must behave exactly like it.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson

from auditlog.model import times
from auditlog.model.credentials import ApiKey, User
from auditlog.model.matching import event_matches
from auditlog.model.query import Query
from auditlog.model.retention import ArchiveRecord, Hold, Retention, id_hash
from auditlog.model.streams import LogStream
from auditlog.storage.base import (
    AppendOutcome,
    AppendRequest,
    GroupPlan,
    Integration,
    Page,
    StoredCheckpoint,
    TenantsLeaf,
    TreeNode,
    WitnessState,
)


@dataclass(frozen=True, slots=True)
class _Row:
    body: bytes
    event: dict[str, Any]
    time_us: int


class MemoryStore:
    """``Store`` in memory. Safe for one event loop; not shared between processes."""

    def __init__(self) -> None:
        self._logs: dict[str, list[_Row | None]] = {}
        self._ids: dict[tuple[str, str], int] = {}
        self._keys: dict[str, ApiKey] = {}
        self._users: dict[str, User] = {}
        self._secrets: dict[str, bytes] = {}
        self._nodes: dict[tuple[str, int, int], bytes] = {}
        # Each tenant's checkpoints, smallest first, and their sizes for bisection.
        self._checkpoints: dict[str, list[StoredCheckpoint]] = {}
        self._checkpoint_sizes: dict[str, list[int]] = {}
        self._lock = asyncio.Lock()
        self._streams: dict[tuple[str, str], LogStream] = {}
        # stream id: (owner, lease end in microseconds)
        self._leases: dict[str, tuple[str, int]] = {}
        self._retention: dict[str, Retention] = {}
        self._legal_holds: dict[str, Hold] = {}
        # Pruning: each tenant's horizon (first kept seq), how far its rows are swept (the
        # rows below are None), the hashes of its pruned ids, and the archives recorded.
        self._horizons: dict[str, int] = {}
        self._swept: dict[str, int] = {}
        self._pruned_ids: dict[str, set[int]] = {}
        self._archives: dict[tuple[str, str], ArchiveRecord] = {}
        # The tenants log: its leaves in index order, each tenant's leaf indexes (ascending),
        # its nodes, its checkpoints smallest first, what is kept for each by size (the
        # cosigned note or None, whether it has the quorum), and the witnesses' states.
        self._tenants_leaves: list[TenantsLeaf] = []
        self._tenant_leaf_indexes: dict[str, list[int]] = {}
        self._tenants_nodes: dict[tuple[int, int], bytes] = {}
        self._tenants_checkpoints: list[StoredCheckpoint] = []
        self._cosigned: dict[int, tuple[StoredCheckpoint, str | None, bool]] = {}
        self._witnesses: dict[str, WitnessState] = {}

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def ping(self) -> None:
        return None

    async def stats(self) -> dict[str, float]:
        return {}

    async def append(self, requests: Sequence[AppendRequest]) -> list[AppendOutcome]:
        async with self._lock:
            plan = GroupPlan(requests)
            existing: dict[tuple[str, str], bytes] = {}
            for tenant, wanted in plan.wanted().items():
                log = self._logs.get(tenant, [])
                for event_id in wanted:
                    seq = self._ids.get((tenant, event_id))
                    row = None if seq is None else log[seq]
                    if row is not None:  # below the horizon too, until swept
                        existing[(tenant, event_id)] = row.body
            plan.plan(existing)
            next_seq = {p.tenant: len(self._logs.get(p.tenant, [])) for p in plan.new}
            plan.assign(next_seq, times.now_us())
            for pending in plan.new:
                log = self._logs.setdefault(pending.tenant, [])
                assert len(log) == pending.seq
                log.append(_Row(pending.body, orjson.loads(pending.body), pending.event.time_us))
                self._ids[(pending.tenant, pending.event.id)] = pending.seq
            return plan.outcomes()

    async def get_event(self, tenant: str, event_id: str) -> bytes | None:
        seq = self._ids.get((tenant, event_id))
        if seq is None or seq < self.horizon_of(tenant):
            return None
        row = self._logs[tenant][seq]
        return None if row is None else row.body

    def horizon_of(self, tenant: str) -> int:
        return self._horizons.get(tenant, 0)

    async def query(self, tenant: str, query: Query) -> Page:
        log = self._logs.get(tenant, [])
        end = len(log) if query.before_seq is None else max(0, min(query.before_seq, len(log)))
        first = self.horizon_of(tenant)
        if query.order == "desc":
            start = end - 1 if query.after_seq is None else min(query.after_seq - 1, end - 1)
            seqs = range(start, first - 1, -1)
        else:
            start = first if query.after_seq is None else max(first, query.after_seq + 1)
            seqs = range(start, end)
        found: list[tuple[int, bytes]] = []
        for seq in seqs:
            row = log[seq]
            if row is not None and event_matches(row.event, row.time_us, query):
                found.append((seq, row.body))
                if len(found) > query.limit:
                    break
        more = len(found) > query.limit
        page = found[: query.limit]
        return Page(tuple(b for _, b in page), page[-1][0] if page else None, more, first)

    async def create_api_key(self, key: ApiKey) -> None:
        self._keys[key.key_id] = key

    async def get_api_key(self, key_id: str) -> ApiKey | None:
        return self._keys.get(key_id)

    async def list_api_keys(self, tenant: str | None = None) -> list[ApiKey]:
        keys = sorted(self._keys.values(), key=lambda k: (k.created_us, k.key_id))
        return [k for k in keys if tenant is None or k.tenant == tenant]

    async def revoke_api_key(self, key_id: str, revoked_us: int) -> bool:
        key = self._keys.get(key_id)
        if key is None or key.revoked_us is not None:
            return False
        self._keys[key_id] = replace(key, revoked_us=revoked_us)
        return True

    async def create_user(self, user: User) -> bool:
        if user.username in self._users:
            return False
        self._users[user.username] = user
        return True

    async def get_user(self, username: str) -> User | None:
        return self._users.get(username)

    async def list_users(self, tenant: str | None = None) -> list[User]:
        users = sorted(self._users.values(), key=lambda u: (u.created_us, u.username))
        return [u for u in users if tenant is None or u.tenant == tenant]

    async def delete_user(self, username: str) -> User | None:
        return self._users.pop(username, None)

    async def set_password_hash(self, username: str, password_hash: str) -> User | None:
        user = self._users.get(username)
        if user is None:
            return None
        user = self._users[username] = replace(user, password_hash=password_hash)
        return user

    async def load_or_create_secret(self, name: str, value: bytes) -> bytes:
        return self._secrets.setdefault(name, bytes(value))

    async def integrating(self) -> bool:
        return True  # one process

    async def log_sizes(self) -> dict[str, int]:
        return {tenant: len(log) for tenant, log in self._logs.items() if log}

    async def durable_log_sizes(self, tenant: str | None = None) -> dict[str, int]:
        sizes = await self.log_sizes()
        return sizes if tenant is None else {t: n for t, n in sizes.items() if t == tenant}

    def watch_heads(self, callback: Callable[[Mapping[str, int]], None]) -> None:
        return None  # one process

    async def announce_heads(self, heads: Mapping[str, int]) -> None:
        return None

    async def read_leaves(self, tenant: str, start: int, limit: int) -> list[tuple[int, bytes]]:
        log = self._logs.get(tenant, [])
        first = max(start, 0, self.horizon_of(tenant))
        found = []
        for seq in range(first, min(len(log), first + max(limit, 0))):
            row = log[seq]
            if row is not None:
                found.append((seq, row.body))
        return found

    async def put_nodes(self, tenant: str, nodes: Sequence[TreeNode]) -> None:
        for level, index, h in nodes:
            self._nodes.setdefault((tenant, level, index), bytes(h))

    async def get_nodes(
        self, tenant: str, keys: Sequence[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        found: dict[tuple[int, int], bytes] = {}
        for level, index in keys:
            h = self._nodes.get((tenant, level, index))
            if h is not None:
                found[(level, index)] = h
        return found

    async def add_checkpoint(self, tenant: str, checkpoint: StoredCheckpoint) -> bool:
        sizes = self._checkpoint_sizes.setdefault(tenant, [])
        if sizes and checkpoint.size <= sizes[-1]:
            return False
        sizes.append(checkpoint.size)
        self._checkpoints.setdefault(tenant, []).append(checkpoint)
        index = len(self._tenants_leaves)
        self._tenants_leaves.append(TenantsLeaf(index, tenant, checkpoint))
        self._tenant_leaf_indexes.setdefault(tenant, []).append(index)
        return True

    async def add_integrations(self, integrations: Sequence[Integration]) -> list[bool]:
        stored = []
        for i in integrations:
            await self.put_nodes(i.tenant, i.nodes)
            stored.append(await self.add_checkpoint(i.tenant, i.checkpoint))
        return stored

    async def latest_checkpoint(self, tenant: str) -> StoredCheckpoint | None:
        checkpoints = self._checkpoints.get(tenant)
        return checkpoints[-1] if checkpoints else None

    async def checkpoint_at_least(self, tenant: str, size: int) -> StoredCheckpoint | None:
        sizes = self._checkpoint_sizes.get(tenant, [])
        i = bisect.bisect_left(sizes, size)
        return self._checkpoints[tenant][i] if i < len(sizes) else None

    async def list_checkpoints(
        self, tenant: str, after_size: int = -1, limit: int = 1000
    ) -> list[StoredCheckpoint]:
        sizes = self._checkpoint_sizes.get(tenant, [])
        i = bisect.bisect_right(sizes, after_size)
        return self._checkpoints.get(tenant, [])[i : i + limit]

    async def read_tenants_leaves(self, start: int, limit: int) -> list[TenantsLeaf]:
        first = max(start, 0)
        return self._tenants_leaves[first : first + max(limit, 0)]

    async def tenants_leaf(self, tenant: str, below: int) -> TenantsLeaf | None:
        indexes = self._tenant_leaf_indexes.get(tenant, [])
        i = bisect.bisect_left(indexes, below)
        return self._tenants_leaves[indexes[i - 1]] if i > 0 else None

    async def put_tenants_nodes(self, nodes: Sequence[TreeNode]) -> None:
        for level, index, h in nodes:
            self._tenants_nodes.setdefault((level, index), bytes(h))

    async def get_tenants_nodes(
        self, keys: Sequence[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        return {key: self._tenants_nodes[key] for key in keys if key in self._tenants_nodes}

    async def add_tenants_checkpoint(self, checkpoint: StoredCheckpoint) -> bool:
        stored = self._tenants_checkpoints
        if stored and checkpoint.size <= stored[-1].size:
            return False
        stored.append(checkpoint)
        self._cosigned[checkpoint.size] = (checkpoint, None, False)
        return True

    async def latest_tenants_checkpoint(self) -> StoredCheckpoint | None:
        return self._tenants_checkpoints[-1] if self._tenants_checkpoints else None

    async def add_cosignatures(self, size: int, cosigned: str, quorum: bool) -> bool:
        kept = self._cosigned.get(size)
        if kept is None:
            return False
        self._cosigned[size] = (kept[0], cosigned, quorum or kept[2])
        return True

    async def witnessed_tenants_checkpoint(self) -> StoredCheckpoint | None:
        for checkpoint in reversed(self._tenants_checkpoints):
            if self._cosigned[checkpoint.size][2]:
                return await self.cosigned_tenants_checkpoint(checkpoint.size)
        return None

    async def cosigned_tenants_checkpoint(self, size: int) -> StoredCheckpoint | None:
        kept = self._cosigned.get(size)
        if kept is None:
            return None
        checkpoint, note, _ = kept
        return checkpoint if note is None else replace(checkpoint, note=note)

    async def set_witness_state(self, state: WitnessState) -> None:
        self._witnesses[state.name] = state

    async def list_witness_states(self) -> list[WitnessState]:
        return [self._witnesses[name] for name in sorted(self._witnesses)]

    async def get_retention(self, tenant: str) -> Retention | None:
        return self._retention.get(tenant)

    async def set_retention(self, retention: Retention) -> None:
        self._retention[retention.tenant] = retention

    async def list_retention(self) -> list[Retention]:
        return [self._retention[t] for t in sorted(self._retention)]

    async def set_hold(self, hold: Hold) -> Hold | None:
        current = self._legal_holds.get(hold.tenant)
        if current is None:
            self._legal_holds[hold.tenant] = hold
        return current

    async def release_hold(self, tenant: str) -> Hold | None:
        return self._legal_holds.pop(tenant, None)

    async def get_hold(self, tenant: str) -> Hold | None:
        return self._legal_holds.get(tenant)

    async def list_holds(self) -> list[Hold]:
        return [self._legal_holds[t] for t in sorted(self._legal_holds)]

    async def horizon(self, tenant: str) -> int:
        return self.horizon_of(tenant)

    async def horizons(self) -> dict[str, int]:
        return {t: h for t, h in sorted(self._horizons.items()) if h > 0}

    async def prune_to(self, tenant: str, horizon: int) -> int | Hold:
        hold = self._legal_holds.get(tenant)
        if hold is not None:
            return hold
        size = len(self._logs.get(tenant, []))
        signed = self._checkpoint_sizes.get(tenant) or [0]
        now = max(self.horizon_of(tenant), min(horizon, size, signed[-1]))
        if now > 0:
            self._horizons[tenant] = now
        return now

    async def sweep(self, tenant: str, limit: int) -> int:
        log = self._logs.get(tenant, [])
        start = self._swept.get(tenant, 0)
        end = min(self.horizon_of(tenant), start + max(limit, 1))
        ids = self._pruned_ids.setdefault(tenant, set())
        for seq in range(start, end):
            row = log[seq]
            if row is not None:
                event_id = row.event["id"]
                ids.add(id_hash(event_id))
                if self._ids.get((tenant, event_id)) == seq:
                    del self._ids[(tenant, event_id)]
                log[seq] = None
        if end > start:
            self._swept[tenant] = end
        return max(end - start, 0)

    async def reclaim_space(self) -> int:
        return 0

    async def was_pruned(self, tenant: str, event_id: str) -> bool:
        if id_hash(event_id) in self._pruned_ids.get(tenant, ()):
            return True
        seq = self._ids.get((tenant, event_id))
        return seq is not None and seq < self.horizon_of(tenant)

    async def add_archive(self, record: ArchiveRecord) -> None:
        self._archives.setdefault((record.tenant, record.sha256), record)

    async def list_archives(self, tenant: str | None = None) -> list[ArchiveRecord]:
        found = [a for a in self._archives.values() if tenant is None or a.tenant == tenant]
        return sorted(found, key=lambda a: (a.tenant, a.first_seq, a.end_seq, a.sha256))

    async def create_stream(self, stream: LogStream) -> None:
        self._streams[(stream.tenant, stream.stream_id)] = stream

    async def get_stream(self, tenant: str, stream_id: str) -> LogStream | None:
        return self._streams.get((tenant, stream_id))

    async def list_streams(self, tenant: str | None = None) -> list[LogStream]:
        found = sorted(self._streams.values(), key=lambda s: (s.created_us, s.stream_id))
        return [s for s in found if tenant is None or s.tenant == tenant]

    async def update_stream(self, stream: LogStream) -> bool:
        key = (stream.tenant, stream.stream_id)
        current = self._streams.get(key)
        if current is None:
            return False
        self._streams[key] = replace(
            current,
            name=stream.name,
            destination=stream.destination,
            filter=stream.filter,
            paused=stream.paused,
            updated_us=stream.updated_us,
        )
        return True

    async def delete_stream(self, tenant: str, stream_id: str) -> bool:
        self._leases.pop(stream_id, None)
        return self._streams.pop((tenant, stream_id), None) is not None

    def _holds(self, stream_id: str, owner: str, now: int) -> bool:
        lease = self._leases.get(stream_id)
        return lease is not None and lease[0] == owner and lease[1] > now

    async def claim_streams(self, owner: str, lease_ms: int, limit: int) -> list[LogStream]:
        now = times.now_us()
        until = now + lease_ms * 1000
        held: list[LogStream] = []
        taken = 0
        for stream in await self.list_streams():
            lease = self._leases.get(stream.stream_id)
            if stream.paused:
                if lease is not None and lease[0] == owner:
                    del self._leases[stream.stream_id]
                continue
            if lease is not None and lease[0] == owner:
                self._leases[stream.stream_id] = (owner, until)
                held.append(stream)
            elif (lease is None or lease[1] <= now) and taken < limit:
                taken += 1
                self._leases[stream.stream_id] = (owner, until)
                held.append(stream)
        return held

    async def release_streams(self, owner: str, stream_ids: Sequence[str]) -> None:
        for stream_id in stream_ids:
            lease = self._leases.get(stream_id)
            if lease is not None and lease[0] == owner:
                del self._leases[stream_id]

    async def record_delivery(
        self, tenant: str, stream_id: str, owner: str, position: int, events: int, at_us: int
    ) -> bool:
        stream = self._streams.get((tenant, stream_id))
        if stream is None or not self._holds(stream_id, owner, times.now_us()):
            return False
        if position < stream.position:
            return False
        self._streams[(tenant, stream_id)] = replace(
            stream,
            position=position,
            deliveries=stream.deliveries + events,
            last_success_us=at_us if events else stream.last_success_us,
        )
        return True

    async def record_failure(
        self, tenant: str, stream_id: str, owner: str, error: str, at_us: int
    ) -> bool:
        stream = self._streams.get((tenant, stream_id))
        if stream is None or not self._holds(stream_id, owner, times.now_us()):
            return False
        self._streams[(tenant, stream_id)] = replace(
            stream, failures=stream.failures + 1, last_error=error, last_error_us=at_us
        )
        return True

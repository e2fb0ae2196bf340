"""The storage contract: what every backend offers the services, and nothing more.

A ``Store`` offers domain operations only. No cursor, transaction or lock leaks out of it, and
every driver error becomes a ``StorageError`` inside the backend. Each backend must pass the
contract suite in ``tests/storage/``, with ``MemoryStore`` as the oracle:

* ``append`` commits every request of a group it accepts in ONE transaction, assigns each new
  event the next ``seq`` of its tenant (0-based, gap-free, in commit order), and returns only
  after that transaction is durable. A request is atomic: all its events are stored, or none.
* An event whose ``id`` the tenant already holds is a replay (same content: the stored event is
  returned, nothing is written) or a conflict (the whole request is refused, the others of the
  group go ahead).
* ``query`` pages by ``seq`` and sees only committed events of its tenant.
* ``durable_log_sizes`` counts only commits that are durable. A store that makes a commit
  visible before it is flushed (PostgreSQL's group commit does) must not count it before then.
* Log streams are changed through their definition (``update_stream``) by the admin API and
  through their progress (``record_delivery``, ``record_failure``) only by the process that
  holds the stream's delivery lease (``claim_streams``); a lease lasts ``lease_ms`` by the
  store's own clock from its last renewal, and a write of progress by anyone else, or after
  the lease ran out, changes nothing and answers ``False``.
* A tenant has at most one retention policy and at most one legal hold. A hold is set by
  one call and stays as it was set (reason, who, when) until it is released: of several
  setting it at once, exactly one sets it.
* Pruning (``prune_to``, ``sweep``) removes a tenant's events from the start of its log. The
  tenant's horizon, its first kept seq, only grows, and never while a legal hold is set; from
  the moment it moves, every read (``get_event``, ``query``, ``read_leaves``) leaves out the
  events below it, whether or not ``sweep`` has removed their rows yet. Tree nodes and
  checkpoints are never pruned: proofs and checks go on over the pruned prefix.
* The Merkle tree of each tenant's log (``auditlog.service.integrator``) is kept as tree nodes
  and checkpoints. A node, once stored, never changes: storing it again is a no-op. A
  checkpoint is stored only if it is larger than every checkpoint the tenant has, so the
  latest checkpoint never goes backwards, whichever process writes it.
* The tenants log (``auditlog.service.integrator.tenants_tree``, API.md §13) is one more
  Merkle log per store whose leaves are the tenants' checkpoints: ``add_checkpoint`` gives
  each checkpoint it stores the next index of that log (0-based, gap-free, in the order they
  were stored) in the same transaction, so no stored checkpoint is ever missing from it. Its tree nodes and its own
  checkpoints follow the rules of a tenant's; witnesses' cosignatures are kept with them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import orjson

from auditlog.model import times
from auditlog.model.credentials import ApiKey, User
from auditlog.model.event import NewEvent, same_content, stored_bytes
from auditlog.model.query import Query
from auditlog.model.retention import ArchiveRecord, Hold, Retention
from auditlog.model.streams import LogStream


@dataclass(frozen=True, slots=True)
class AppendRequest:
    """One client request's events, all for one tenant, to be stored atomically."""

    tenant: str
    events: tuple[NewEvent, ...]


class Appended(NamedTuple):
    """One event of an accepted request: its stored bytes, and whether this call created it.

    A named tuple rather than a dataclass: a batch makes thousands, and tuples are the
    cheapest immutable values Python builds.
    """

    id: str
    seq: int
    body: bytes
    created: bool


@dataclass(frozen=True, slots=True)
class IdConflict:
    """A request refused because an ``id`` is already held (or repeated) with other content."""

    index: int
    id: str


AppendOutcome = tuple[Appended, ...] | IdConflict


#: A perfect subtree of a tenant's Merkle tree as ``(level, index, hash)``: the subtree of
#: 2^level leaves from index * 2^level on. Level 0 holds the leaf hashes: node (0, i) is the
#: hash of the event with seq i. A plain tuple: the integrator stores tens of thousands a second.
TreeNode = tuple[int, int, bytes]


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """A signed checkpoint of a tenant's log as stored: its tree ``size`` and ``root_hash``,
    when it was signed (``timestamp_us``, not part of the signed text), and the signed note."""

    size: int
    root_hash: bytes
    timestamp_us: int
    note: str


@dataclass(frozen=True, slots=True)
class Integration:
    """One tenant's share of an integrator round: the tree nodes it completed, and the
    checkpoint of the tree's new size."""

    tenant: str
    nodes: Sequence[TreeNode]
    checkpoint: StoredCheckpoint


@dataclass(frozen=True, slots=True)
class TenantsLeaf:
    """A leaf of the tenants log: the tenant checkpoint stored at ``index`` of that log."""

    index: int
    tenant: str
    checkpoint: StoredCheckpoint


@dataclass(frozen=True, slots=True)
class WitnessState:
    """What the service last heard from one witness of its policy.

    ``size`` is the size of the last tenants checkpoint it cosigned (-1: not known yet);
    ``error`` the last failure ("" after a success), ``refusals`` how many checkpoints it has
    refused (not counting a 409 resync), ``updated_us`` when this was last changed.
    """

    name: str
    url: str
    size: int
    error: str
    refusals: int
    updated_us: int


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a query: stored event bodies in order, and whether more may follow."""

    bodies: tuple[bytes, ...]
    last_seq: int | None
    more: bool
    #: The tenant's horizon as the query saw it (0 for a log never pruned): the page holds
    #: no event below it, and the answer says where the log begins without a second read.
    horizon: int = 0


class Store(Protocol):
    """What the services need from storage. See the module docstring for the guarantees."""

    async def open(self) -> None:
        """Connect and create or migrate the schema. Idempotent."""

    async def close(self) -> None:
        """Release connections; pending appends must have finished."""

    async def ping(self) -> None:
        """Return if storage answers, else raise ``StorageError``."""

    async def stats(self) -> dict[str, float]:
        """Backend gauges for ``/metrics`` by name (e.g. ``search_index_lag_events``)."""

    async def append(self, requests: Sequence[AppendRequest]) -> list[AppendOutcome]:
        """Commit a group of requests in one transaction; one outcome per request, in order."""

    async def get_event(self, tenant: str, event_id: str) -> bytes | None:
        """The stored bytes of the tenant's event with this id, or ``None``."""

    async def query(self, tenant: str, query: Query) -> Page:
        """One page of the tenant's events matching ``query``, ordered by ``seq``."""

    async def create_api_key(self, key: ApiKey) -> None:
        """Store a new API key record."""

    async def get_api_key(self, key_id: str) -> ApiKey | None:
        """The key with this id, revoked or not, or ``None``."""

    async def list_api_keys(self, tenant: str | None = None) -> list[ApiKey]:
        """Every key (of one tenant, if given), oldest first."""

    async def revoke_api_key(self, key_id: str, revoked_us: int) -> bool:
        """Revoke a key that is active; ``True`` when this call revoked it, ``False`` when there
        is no such key or it was revoked already (the first time stands).

        Atomic: of several revocations of one key at once, exactly one gets ``True`` (a viewer
        token's exchange relies on it to work once)."""

    async def create_user(self, user: User) -> bool:
        """Store a new user; ``False`` (and nothing stored) if the username is taken.

        Usernames are unique across every tenant.
        """

    async def get_user(self, username: str) -> User | None:
        """The user with this username (exactly; usernames are case-sensitive), or ``None``.

        Always read from the store itself, never from a cache: login tokens are checked
        against it on every request, so a removed user or a new password must show in the
        next call, in every process on the store.
        """

    async def list_users(self, tenant: str | None = None) -> list[User]:
        """Every user (of one tenant, if given), oldest first (ties by username)."""

    async def delete_user(self, username: str) -> User | None:
        """Remove a user; the user as it was, or ``None`` if there was no such user.

        Atomic: of several removals of one user at once, one gets the user, the others
        ``None``. The username is free again afterwards.
        """

    async def set_password_hash(self, username: str, password_hash: str) -> User | None:
        """Replace a user's password hash; the user as now stored, or ``None`` if there is
        no such user (nothing is stored then)."""

    async def load_or_create_secret(self, name: str, value: bytes) -> bytes:
        """The secret stored under ``name``; if there is none, store ``value`` and return it.

        Atomic: when several processes start on one store at once and each offers its own
        ``value``, exactly one is stored and every caller gets that one. A stored secret is
        never changed.
        """

    async def integrating(self) -> bool:
        """Whether this process should run the integrator now.

        Several processes may integrate one store at once without harm (their work is
        idempotent), but each would hash every event and write every tree node again. A store
        that several processes share lets one of them at a time integrate, and hands the turn
        to another when that one goes away; a store of one process always answers ``True``.
        Never raises: a store it cannot ask answers ``False``.
        """

    async def log_sizes(self) -> dict[str, int]:
        """Every tenant that has committed events, with the number of them (its next seq)."""

    async def durable_log_sizes(self, tenant: str | None = None) -> dict[str, int]:
        """Like ``log_sizes`` (only ``tenant``'s, if given), counting only the events whose
        commit is durable: every event with a smaller seq survives a crash of the store."""

    def watch_heads(self, callback: Callable[[Mapping[str, int]], None]) -> None:
        """From now on, call ``callback`` with the durable log sizes that other processes on
        this store announce (``announce_heads``), as they arrive. A store that only one
        process uses never calls it."""

    async def announce_heads(self, heads: Mapping[str, int]) -> None:
        """Tell the other processes on this store that these tenants' logs durably reached
        these sizes. A store that only one process uses does nothing."""

    async def read_leaves(self, tenant: str, start: int, limit: int) -> list[tuple[int, bytes]]:
        """Up to ``limit`` committed events of the tenant with seq >= ``start``, in seq order.

        Each as (seq, stored bytes); the seq is the event's position in the store, not read
        from its bytes. A committed log has no gaps; a damaged one may, and the caller sees them.
        """

    async def put_nodes(self, tenant: str, nodes: Sequence[TreeNode]) -> None:
        """Store tree nodes of the tenant. A node already stored keeps its hash: idempotent."""

    async def get_nodes(
        self, tenant: str, keys: Sequence[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        """The hashes of the stored nodes among ``keys`` ((level, index) pairs), by key.

        Nodes that are not stored are left out.
        """

    async def add_checkpoint(self, tenant: str, checkpoint: StoredCheckpoint) -> bool:
        """Store a checkpoint if it is larger than the tenant's latest; whether it was stored.

        Atomic with respect to other writers: of several offering checkpoints at once, each
        is stored only if it is larger than every one stored before it.
        """

    async def add_integrations(self, integrations: Sequence[Integration]) -> list[bool]:
        """For each integration, in order, store its nodes as ``put_nodes`` does and then its
        checkpoint as ``add_checkpoint`` does, all in one transaction (one flush, however many
        tenants a round integrated); whether each checkpoint was stored. A tenant appears at
        most once."""

    async def latest_checkpoint(self, tenant: str) -> StoredCheckpoint | None:
        """The tenant's largest checkpoint, or ``None`` if it has none."""

    async def checkpoint_at_least(self, tenant: str, size: int) -> StoredCheckpoint | None:
        """The tenant's smallest checkpoint of at least ``size`` leaves, or ``None``."""

    async def list_checkpoints(
        self, tenant: str, after_size: int = -1, limit: int = 1000
    ) -> list[StoredCheckpoint]:
        """Up to ``limit`` of the tenant's checkpoints larger than ``after_size``, smallest first."""

    async def read_tenants_leaves(self, start: int, limit: int) -> list[TenantsLeaf]:
        """Up to ``limit`` leaves of the tenants log with index >= ``start``, in index order."""

    async def tenants_leaf(self, tenant: str, below: int) -> TenantsLeaf | None:
        """The tenant's leaf with the largest index below ``below``: its newest checkpoint that
        a tenants log of ``below`` leaves holds. ``None`` if there is none."""

    async def put_tenants_nodes(self, nodes: Sequence[TreeNode]) -> None:
        """Store tree nodes of the tenants log; a node already stored keeps its hash."""

    async def get_tenants_nodes(
        self, keys: Sequence[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        """The hashes of the stored tenants-log nodes among ``keys``, by key."""

    async def add_tenants_checkpoint(self, checkpoint: StoredCheckpoint) -> bool:
        """Store a checkpoint of the tenants log if it is larger than its latest; whether it
        was stored. Atomic as ``add_checkpoint`` is."""

    async def latest_tenants_checkpoint(self) -> StoredCheckpoint | None:
        """The tenants log's largest checkpoint (the note as signed, without cosignatures)."""

    async def add_cosignatures(self, size: int, cosigned: str, quorum: bool) -> bool:
        """Keep ``cosigned`` (the tenants checkpoint of ``size``, its note with the
        witnesses' cosignature lines) in place of what was kept for it, and whether it has the
        quorum of the service's policy. ``False`` if there is no tenants checkpoint of that
        size. A checkpoint once marked with the quorum stays marked."""

    async def witnessed_tenants_checkpoint(self) -> StoredCheckpoint | None:
        """The largest tenants checkpoint marked with a quorum, its ``note`` the cosigned one;
        ``None`` if there is none."""

    async def cosigned_tenants_checkpoint(self, size: int) -> StoredCheckpoint | None:
        """The tenants checkpoint of ``size``, its ``note`` with every cosignature kept for it
        (the signed note alone if it has none); ``None`` if there is none of that size."""

    async def set_witness_state(self, state: WitnessState) -> None:
        """Replace what is kept about the witness named ``state.name``."""

    async def list_witness_states(self) -> list[WitnessState]:
        """What is kept about every witness, by name."""

    async def get_retention(self, tenant: str) -> Retention | None:
        """The tenant's retention policy, or ``None`` if none was ever set (keep everything)."""

    async def set_retention(self, retention: Retention) -> None:
        """Store the tenant's retention policy, replacing the one it had."""

    async def list_retention(self) -> list[Retention]:
        """Every retention policy stored, by tenant name."""

    async def set_hold(self, hold: Hold) -> Hold | None:
        """Set a legal hold on ``hold.tenant`` if it has none; ``None`` when this call set it,
        else the hold already set, which stays as it is.

        Atomic: of several calls setting a hold on one tenant at once, exactly one sets it.
        """

    async def release_hold(self, tenant: str) -> Hold | None:
        """Release the tenant's legal hold; the hold as it was, or ``None`` if it had none.

        Atomic: of several releases at once, one gets the hold, the others ``None``.
        """

    async def get_hold(self, tenant: str) -> Hold | None:
        """The tenant's legal hold, if one is set."""

    async def list_holds(self) -> list[Hold]:
        """Every legal hold set, by tenant name."""

    async def horizon(self, tenant: str) -> int:
        """The tenant's first kept seq: every event with a smaller seq is pruned (0: none is)."""

    async def horizons(self) -> dict[str, int]:
        """Every tenant whose log has a pruned prefix, with its horizon."""

    async def prune_to(self, tenant: str, horizon: int) -> int | Hold:
        """Move the tenant's horizon up to ``horizon`` (never down, never past its largest
        checkpoint, so the tree holds every pruned event's leaf)
        unless a legal hold is set, when nothing changes and the hold is returned; else the
        horizon now. Atomic against ``set_hold``: a hold set before this commits stops it."""

    async def sweep(self, tenant: str, limit: int) -> int:
        """Remove up to about ``limit`` stored events below the tenant's horizon, with their
        search and numbers index entries, remembering their ids for ``was_pruned``; how many
        events were removed (0: none is left below the horizon). Commits in transactions
        short enough never to hold appends up for long; idempotent, so a sweep cut short by
        a crash is finished by the next call."""

    async def reclaim_space(self) -> int:
        """Give space that sweeps freed back to the file system, a little at a time; the
        bytes given back (0 where the backend does not, or has nothing to give)."""

    async def was_pruned(self, tenant: str, event_id: str) -> bool:
        """Whether the tenant held an event with this id that is now pruned."""

    async def add_archive(self, record: ArchiveRecord) -> None:
        """Record an archive of the tenant's log (the same sha256 twice: kept once)."""

    async def list_archives(self, tenant: str | None = None) -> list[ArchiveRecord]:
        """Every archive recorded (of one tenant, if given), by tenant and first seq."""

    async def create_stream(self, stream: LogStream) -> None:
        """Store a new log stream."""

    async def get_stream(self, tenant: str, stream_id: str) -> LogStream | None:
        """The tenant's stream with this id, or ``None``."""

    async def list_streams(self, tenant: str | None = None) -> list[LogStream]:
        """Every stream (of one tenant, if given), oldest first."""

    async def update_stream(self, stream: LogStream) -> bool:
        """Replace a stream's definition (name, destination, filter, paused, updated_us),
        keeping its progress and state; ``False`` if there is no such stream."""

    async def delete_stream(self, tenant: str, stream_id: str) -> bool:
        """Remove a stream; ``False`` if there is no such stream."""

    async def claim_streams(self, owner: str, lease_ms: int, limit: int) -> list[LogStream]:
        """Renew every lease ``owner`` holds on a stream that is not paused, take the leases of
        up to ``limit`` more unpaused streams whose lease is free or ran out, give up those on
        paused streams, and return every stream ``owner`` now holds (its current definition
        and state). Atomic against other owners: a stream is held by one owner at a time."""

    async def release_streams(self, owner: str, stream_ids: Sequence[str]) -> None:
        """Give up ``owner``'s leases on these streams (a stopping process), so that another
        process may take them at once."""

    async def record_delivery(
        self, tenant: str, stream_id: str, owner: str, position: int, events: int, at_us: int
    ) -> bool:
        """The stream delivered ``events`` events and dealt with everything through
        ``position``: store it, if ``owner`` still holds a live lease and ``position`` is
        not behind the stored one. Whether it was stored."""

    async def record_failure(
        self, tenant: str, stream_id: str, owner: str, error: str, at_us: int
    ) -> bool:
        """A delivery attempt failed with ``error``: count it and keep the error, if ``owner``
        still holds a live lease. Whether it was stored."""


@dataclass(slots=True)
class _Pending:
    event: NewEvent
    tenant: str
    owner: int
    seq: int = -1
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class _Replay:
    id: str
    seq: int
    body: bytes


class GroupPlan:
    """Idempotency for one group commit, shared by every backend.

    The backend looks up which ids of the group its tenants already hold (``wanted``), feeds
    the stored bodies to ``plan``, stores the ``new`` events with the seqs it assigns through
    ``assign``, and turns the plan into outcomes with ``outcomes`` once the commit is durable.
    """

    def __init__(self, requests: Sequence[AppendRequest]) -> None:
        self.requests = requests
        self._steps: list[list[_Pending | _Replay] | IdConflict] = []
        self.new: list[_Pending] = []

    def wanted(self) -> dict[str, set[str]]:
        """The ids to look up, by tenant: those the producers chose.

        Ids the server made (ULIDs, unique within the process and 80 random bits across
        processes) cannot be held already; should one ever collide, the store's unique index
        refuses the whole group and nothing is acknowledged.
        """
        out: dict[str, set[str]] = {}
        for request in self.requests:
            ids = out.setdefault(request.tenant, set())
            ids.update(e.id for e in request.events if "id" in e.given)
        return out

    def plan(self, existing: dict[tuple[str, str], bytes]) -> None:
        """Decide, for each event, whether it is new, a replay or a conflict.

        ``existing`` maps (tenant, id) to the stored body of ids already committed.
        """
        group_new: dict[tuple[str, str], _Pending] = {}
        parsed: dict[tuple[str, str], dict[str, object]] = {}
        for number, request in enumerate(self.requests):
            steps: list[_Pending | _Replay] = []
            local: dict[tuple[str, str], _Pending] = {}
            conflict: IdConflict | None = None
            for index, event in enumerate(request.events):
                key = (request.tenant, event.id)
                if key in existing:
                    stored = parsed.get(key)
                    if stored is None:
                        stored = parsed[key] = orjson.loads(existing[key])
                    if not same_content(event, stored):
                        conflict = IdConflict(index, event.id)
                        break
                    seq = stored["seq"]
                    assert isinstance(seq, int)
                    steps.append(_Replay(event.id, seq, existing[key]))
                    continue
                earlier = local.get(key) or group_new.get(key)
                if earlier is not None:
                    if not same_content(event, earlier.event.content):
                        conflict = IdConflict(index, event.id)
                        break
                    steps.append(earlier)
                    continue
                pending = _Pending(event, request.tenant, number)
                local[key] = pending
                steps.append(pending)
            if conflict is not None:
                self._steps.append(conflict)
                continue
            for key, pending in local.items():
                group_new[key] = pending
                self.new.append(pending)
            self._steps.append(steps)

    def assign(self, next_seq: dict[str, int], received_us: int) -> None:
        """Give each new event its seq, in request order, from ``next_seq`` (updated in place)."""
        received_at = times.format_us(received_us)
        for pending in self.new:
            seq = next_seq[pending.tenant]
            next_seq[pending.tenant] = seq + 1
            pending.seq = seq
            pending.body = stored_bytes(pending.event, pending.tenant, seq, received_at)

    def outcomes(self) -> list[AppendOutcome]:
        """Each request's outcome, once the new events are durably stored."""
        out: list[AppendOutcome] = []
        for number, steps in enumerate(self._steps):
            if isinstance(steps, IdConflict):
                out.append(steps)
                continue
            seen: set[int] = set()
            results = []
            for step in steps:
                if isinstance(step, _Replay):
                    results.append(Appended(step.id, step.seq, step.body, False))
                else:
                    created = step.owner == number and id(step) not in seen
                    seen.add(id(step))
                    results.append(Appended(step.event.id, step.seq, step.body, created))
            out.append(tuple(results))
        return out

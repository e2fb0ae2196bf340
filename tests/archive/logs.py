"""Logs to archive, built as a served one is (events committed, then integrated and signed,
batch after batch), and archives to take apart and put together again."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from auditlog.archive import make
from auditlog.archive.format import EVENTS, MANIFEST, MEMBERS, Manifest
from auditlog.integrity.hasher import leaf_hash
from auditlog.model import times
from auditlog.model.event import Limits, Principal, validate_event
from auditlog.model.retention import ArchiveRecord
from auditlog.service.integrator import Integrator
from auditlog.service.logkey import LogKey
from auditlog.storage.base import AppendRequest, Store
from auditlog.storage.memory import MemoryStore

TENANT = "acme"
ORIGIN = "log.example"


@dataclass
class Log:
    """A memory store with its key and integrator, and every leaf hash each tenant's log
    had (kept here, so that pruned events can still be referred to)."""

    store: Store = field(default_factory=MemoryStore)
    origin: str = ORIGIN
    key: LogKey = field(init=False)
    integrator: Integrator = field(init=False)
    leaves: dict[str, list[bytes]] = field(default_factory=dict)
    bodies: dict[str, list[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.key = LogKey(self.store, self.origin)
        self.integrator = Integrator(self.store, self.key)

    async def add(self, n: int, tenant: str = TENANT, *, sign: bool = True) -> None:
        """Commit ``n`` events (``data.n`` counting on, ``type`` t.even or t.odd) and, with
        ``sign``, integrate them."""
        start = len(self.bodies.get(tenant, []))
        events = tuple(
            validate_event(
                {
                    "type": f"t.{'odd' if (start + i) % 2 else 'even'}",
                    "actor": {"id": f"user-{(start + i) % 3}"},
                    "data": {"n": start + i, "note": f"word{start + i}"},
                },
                Principal("key:t", "t"),
                Limits(),
                times.now_us(),
            )
            for i in range(n)
        )
        [outcome] = await self.store.append([AppendRequest(tenant, events)])
        assert isinstance(outcome, tuple)
        self.bodies.setdefault(tenant, []).extend(a.body for a in outcome)
        self.leaves.setdefault(tenant, []).extend(leaf_hash(a.body) for a in outcome)
        if sign:
            await self.integrator.integrate_batch(tenant)
        await self.key.load()

    async def prune(self, horizon: int, tenant: str = TENANT) -> None:
        assert await self.store.prune_to(tenant, horizon) == horizon
        while await self.store.sweep(tenant, 1000):
            pass

    async def archive(
        self, path: Path, through_seq: int, tenant: str = TENANT, **kwargs: Any
    ) -> ArchiveRecord:
        plan = await make.plan(self.store, tenant, through_seq=through_seq)
        return await make.make(
            self.store,
            plan,
            self.key.origin(tenant),
            self.key.verifier(tenant),
            path,
            created_by="cli:test",
            **kwargs,
        )


async def new_log(*batches: int, tenant: str = TENANT) -> Log:
    log = Log()
    for n in batches:
        await log.add(n, tenant)
    return log


def members(path: Path) -> dict[str, bytes]:
    """Every member of an archive by name, uncompressed."""
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def manifest_of(path: Path) -> dict[str, Any]:
    value: dict[str, Any] = orjson.loads(members(path)[MANIFEST])
    return value


def event_lines(path: Path) -> list[bytes]:
    return members(path)[EVENTS].split(b"\n")[:-1]


def rezip(
    source: Path,
    target: Path,
    *,
    fix_manifest: bool = False,
    order: tuple[str, ...] = MEMBERS,
    **changes: bytes,
) -> Path:
    """``source`` written again to ``target`` with members replaced (``events``, ``proof``,
    ``checkpoint``, ``manifest`` by their short names), as a well-formed ZIP. ``fix_manifest``
    makes the manifest's count and SHA-256 agree with the events given, as a forger would."""
    content = members(source)
    names = {"events": EVENTS, "proof": "proof.json", "checkpoint": "checkpoint"}
    names["manifest"] = MANIFEST
    for short, data in changes.items():
        content[names[short]] = data
    if fix_manifest:
        manifest = Manifest.parse(content[MANIFEST])
        events = content[EVENTS]
        fixed = dataclasses.replace(
            manifest,
            events=events.count(b"\n"),
            events_sha256=hashlib.sha256(events).hexdigest(),
        )
        content[MANIFEST] = fixed.to_json()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as out:
        for name in order:
            out.writestr(name, content[name])
    target.write_bytes(buffer.getvalue())
    return target

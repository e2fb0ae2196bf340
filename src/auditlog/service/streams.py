"""Log streams administered (API.md §11): create, list, read, change and delete a tenant's
streams, each change recorded in the tenant's own log.

A stream's definition as the API takes it::

    {"name": "siem", "destination": {...}, "filter": {"type": "user.login"},
     "start": "now" | "beginning" | <seq>, "paused": false}

``destination`` is checked by ``delivery.destinations`` and must not point at this service;
``filter`` holds §3's parameters (``model.selection``); ``start`` says where delivery begins:
after the events committed when the stream is made (``now``, the default), at seq 0
(``beginning``), or at a seq. The answer to a creation carries the webhook's signing secret,
the one time it is shown; no answer ever shows a secret again.

Each creation, change and deletion is recorded (``auditlog.stream.created``, ``.changed``,
``.deleted``) before it takes effect, like a key's: if storing the change then fails, the
record stands for an attempt, and no change goes unrecorded.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from auditlog.errors import NotFound
from auditlog.model import times
from auditlog.model.credentials import ADMIN, Credential
from auditlog.model.selection import filter_object, parse_filter
from auditlog.model.streams import STREAM_ID, LogStream, new_stream_id
from auditlog.service.auth import require
from auditlog.service.bodies import bad_field, json_object
from auditlog.service.delivery.destinations import (
    Destination,
    merge_destination,
    parse_destination,
    points_at,
    public,
    settings,
)
from auditlog.service.notifier import Notifier
from auditlog.service.selfaudit import SelfAudit, credential_actor
from auditlog.storage.base import Store

STREAM_CREATED = "auditlog.stream.created"
STREAM_CHANGED = "auditlog.stream.changed"
STREAM_DELETED = "auditlog.stream.deleted"
_CREATE_FIELDS = frozenset({"name", "destination", "filter", "start", "paused"})
_PATCH_FIELDS = frozenset({"name", "destination", "filter", "paused"})
_MAX_NAME = 200


def stored_destination(dest: Destination) -> str:
    """A destination as the store keeps it: its settings and its secret, as JSON text."""
    return orjson.dumps({"settings": settings(dest), "secret": dest.secret}).decode()


def load_destination(text: str) -> Destination:
    """The destination a stream's stored text describes."""
    value = orjson.loads(text)
    return parse_destination(value["settings"], value["secret"])


def _object(body: Any, allowed: frozenset[str]) -> dict[str, Any]:
    return json_object(body, allowed, "a stream")


def _name(value: Any) -> str:
    if (
        not isinstance(value, str)
        or not 1 <= len(value) <= _MAX_NAME
        or any(ord(c) < 32 or 127 <= ord(c) < 160 for c in value)
    ):
        raise bad_field("name", f"expected 1-{_MAX_NAME} characters without control characters")
    return value


def _paused(value: Any) -> bool:
    if not isinstance(value, bool):
        raise bad_field("paused", "expected true or false")
    return value


class StreamAdmin:
    """The admin use cases of log streams, for credentials with the ``admin`` scope.

    ``own_host``/``own_port``: where this service listens, which no destination may be.
    ``on_change`` is awaited after every change is stored and before it is answered, so that
    this process's deliveries have followed it by then: once a pause or a deletion is
    answered, this process sends nothing more for the stream (other processes follow at their
    next lease renewal).
    """

    def __init__(
        self,
        store: Store,
        notifier: Notifier,
        audit: SelfAudit,
        own_host: str,
        own_port: int,
        on_change: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._store = store
        self._notifier = notifier
        self._audit = audit
        self._own = (own_host, own_port)
        self.on_change = on_change

    async def _destination(self, dest: Destination) -> Destination:
        if await points_at(dest, *self._own):
            raise bad_field("destination.url", "points at this service itself")
        return dest

    async def view(self, stream: LogStream) -> dict[str, Any]:
        """A stream as the API shows it: its definition (no secret) and its state."""
        head = await self._notifier.head(stream.tenant)
        pairs = filter_object(parse_filter(orjson.loads(stream.filter))[1])
        return {
            "id": stream.stream_id,
            "name": stream.name,
            "destination": public(load_destination(stream.destination)),
            "filter": pairs,
            "start": stream.start_seq,
            "paused": stream.paused,
            "created_at": times.format_us(stream.created_us),
            "updated_at": times.format_us(stream.updated_us),
            "delivered_seq": stream.delivered_seq,
            "lag_events": max(0, head - 1 - stream.position),
            "deliveries": stream.deliveries,
            "failures": stream.failures,
            "last_success_at": _time(stream.last_success_us),
            "last_error": stream.last_error,
            "last_error_at": _time(stream.last_error_us),
        }

    async def create(self, credential: Credential, body: Any) -> dict[str, Any]:
        """Make a stream; the answer (its view) carries the webhook's secret, once."""
        require(credential, ADMIN)
        fields = _object(body, _CREATE_FIELDS)
        if "destination" not in fields:
            raise bad_field("destination", "required")
        dest = await self._destination(parse_destination(fields["destination"]))
        _, pairs = parse_filter(fields.get("filter"))
        name = _name(fields.get("name", dest.kind))
        paused = _paused(fields.get("paused", False))
        start = await self._start(credential.tenant, fields.get("start", "now"))
        now = times.now_us()
        stream = LogStream(
            stream_id=new_stream_id(),
            tenant=credential.tenant,
            name=name,
            destination=stored_destination(dest),
            filter=orjson.dumps(filter_object(pairs)).decode(),
            start_seq=start,
            paused=paused,
            created_us=now,
            updated_us=now,
            position=start - 1,
        )
        await self._record(credential, STREAM_CREATED, stream, dest)
        await self._store.create_stream(stream)
        await self._changed()
        view = await self.view(stream)
        if dest.kind == "webhook":
            view["secret"] = dest.secret
        return view

    async def _start(self, tenant: str, value: Any) -> int:
        if value == "now":
            return await self._notifier.head(tenant)
        if value == "beginning":
            return 0
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**62:
            return value
        raise bad_field("start", '"now", "beginning" or a seq (an integer from 0)')

    async def list_all(self, credential: Credential) -> list[dict[str, Any]]:
        require(credential, ADMIN)
        return [await self.view(s) for s in await self._store.list_streams(credential.tenant)]

    async def get(self, credential: Credential, stream_id: str) -> dict[str, Any]:
        require(credential, ADMIN)
        return await self.view(await self._find(credential, stream_id))

    async def _find(self, credential: Credential, stream_id: str) -> LogStream:
        found = None
        if STREAM_ID.fullmatch(stream_id):
            found = await self._store.get_stream(credential.tenant, stream_id)
        if found is None:
            raise NotFound(f"no stream with id {stream_id!r}")
        return found

    async def change(self, credential: Credential, stream_id: str, body: Any) -> dict[str, Any]:
        """Change a stream's name, destination settings, filter or paused state."""
        require(credential, ADMIN)
        fields = _object(body, _PATCH_FIELDS)
        current = await self._find(credential, stream_id)
        dest = load_destination(current.destination)
        if "destination" in fields:
            dest = await self._destination(merge_destination(dest, fields["destination"]))
        changed = dataclasses.replace(current, updated_us=times.now_us())
        if "filter" in fields:
            _, pairs = parse_filter(fields["filter"])
            changed = dataclasses.replace(
                changed, filter=orjson.dumps(filter_object(pairs)).decode()
            )
        if "name" in fields:
            changed = dataclasses.replace(changed, name=_name(fields["name"]))
        if "paused" in fields:
            changed = dataclasses.replace(changed, paused=_paused(fields["paused"]))
        changed = dataclasses.replace(changed, destination=stored_destination(dest))
        await self._record(credential, STREAM_CHANGED, changed, dest, sorted(fields))
        if not await self._store.update_stream(changed):
            raise NotFound(f"no stream with id {stream_id!r}")
        await self._changed()
        return await self.get(credential, stream_id)

    async def delete(self, credential: Credential, stream_id: str) -> None:
        require(credential, ADMIN)
        current = await self._find(credential, stream_id)
        await self._record(
            credential, STREAM_DELETED, current, load_destination(current.destination)
        )
        if not await self._store.delete_stream(credential.tenant, stream_id):
            raise NotFound(f"no stream with id {stream_id!r}")
        await self._changed()

    async def _record(
        self,
        credential: Credential,
        kind: str,
        stream: LogStream,
        dest: Destination,
        changed: list[str] | None = None,
    ) -> None:
        data: dict[str, Any] = {
            "stream_id": stream.stream_id,
            "name": stream.name,
            "destination": public(dest),
            "filter": orjson.loads(stream.filter),
            "start": stream.start_seq,
            "paused": stream.paused,
        }
        if changed is not None:
            data["changed"] = changed
        await self._audit.record(
            credential.tenant, kind, credential_actor(credential), "success", data
        )

    async def _changed(self) -> None:
        if self.on_change is not None:
            await self.on_change()


def _time(us: int | None) -> str | None:
    return None if us is None else times.format_us(us)

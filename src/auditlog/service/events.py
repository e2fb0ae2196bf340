"""Writing and reading events (API.md §2, §3) on behalf of an authenticated credential."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from auditlog.errors import Conflict, FieldError, NotFound
from auditlog.model import cursor, times
from auditlog.model.batch import read_events
from auditlog.model.credentials import EVENTS_READ, EVENTS_WRITE, Credential
from auditlog.model.event import Limits, Principal
from auditlog.model.query import parse_query
from auditlog.service.auth import bind, require, sees
from auditlog.service.ingest import Ingestor
from auditlog.service.pruned import reaches_below
from auditlog.service.selfaudit import SelfAudit
from auditlog.storage.base import AppendRequest, IdConflict, Store


@dataclass(frozen=True, slots=True)
class Answer:
    """What a use case answers: a status and a JSON body, already serialised."""

    status: int
    body: bytes
    location: str | None = None
    #: The tenant's horizon, when the query's range began below it (API.md §14): the events
    #: before it are pruned, and the answer continues from it.
    pruned_before: int | None = None


class Events:
    """The event use cases: write (through the group-commit queue), get and query."""

    def __init__(
        self, store: Store, ingestor: Ingestor, limits: Limits, audit: SelfAudit | None = None
    ) -> None:
        self._audit = audit
        self._store = store
        self._ingestor = ingestor
        self._limits = limits

    def admit(self, credential: Credential) -> None:
        """Refuse a write at once (503) when it cannot be queued now, before its body is read."""
        require(credential, EVENTS_WRITE)
        self._ingestor.admit()

    async def write(self, credential: Credential, body: bytes, ndjson: bool) -> Answer:
        """Validate, commit and answer ``POST /v1/events``; the answer follows the commit."""
        require(credential, EVENTS_WRITE)
        # Again now that the body is in: the queue may have filled while it arrived, and
        # parsing a body only to refuse it is the costliest way to say no.
        self._ingestor.admit()
        principal = Principal(credential.principal, credential.name)
        events, batch = read_events(
            body, ndjson, principal, self._limits, times.now_us(), credential.tenant
        )
        outcome = await self._ingestor.submit(AppendRequest(credential.tenant, events))
        if isinstance(outcome, IdConflict):
            where = f"event {outcome.index}: " if batch else ""
            raise Conflict(
                f"{where}id {outcome.id!r} is already stored with different content",
                (
                    FieldError(
                        "id",
                        "already stored with different content",
                        outcome.index if batch else None,
                    ),
                ),
            )
        created = any(a.created for a in outcome)
        status = 201 if created else 200
        if not batch:
            return Answer(status, outcome[0].body, "/v1/events/" + outcome[0].id)
        items = [{"id": a.id, "seq": a.seq} for a in outcome]
        return Answer(status, orjson.dumps({"events": items}))

    async def get(self, credential: Credential, event_id: str) -> Answer:
        """``GET /v1/events/{id}``: the stored event of the caller's tenant, or 404."""
        require(credential, EVENTS_READ)
        body = await self._store.get_event(credential.tenant, event_id)
        if body is not None and not sees(credential, orjson.loads(body)):
            body = None  # outside a viewer token's filter: as if it did not exist
        if self._audit is not None:
            await self._audit.read(
                credential, "GET /v1/events/{id}", {"id": event_id, "found": body is not None}
            )
        if body is None:
            # A viewer token gets the same answer as for an id never stored: whether an event
            # outside its filter existed is not its to know.
            if not credential.bound and await self._store.was_pruned(credential.tenant, event_id):
                raise NotFound(
                    f"the event with id {event_id!r} was pruned by the tenant's retention"
                )
            raise NotFound(f"no event with id {event_id!r}")
        return Answer(200, body)

    async def query(
        self, credential: Credential, params: Sequence[tuple[str, str]], audit: bool = True
    ) -> Answer:
        """``GET /v1/events``: one page and the cursor of the next.

        The read is recorded in the tenant's log (``SelfAudit``) before the answer, unless
        ``audit`` is false: for a caller that records the read itself, once for many pages.
        """
        require(credential, EVENTS_READ)
        query, cursor_text = parse_query(params)
        query = bind(credential, query)
        if cursor_text is not None:
            query = cursor.apply(query, cursor_text)
        page = await self._store.query(credential.tenant, query)
        horizon = page.horizon
        if audit and self._audit is not None:
            shown = [[name, value] for name, value in params if name != "cursor"]
            await self._audit.read(
                credential,
                "GET /v1/events",
                {"query": shown, "page": cursor_text is not None, "results": len(page.bodies)},
            )
        next_cursor = (
            orjson.dumps(cursor.encode(query, page.last_seq))
            if page.more and page.last_seq is not None
            else b"null"
        )
        return Answer(
            200,
            b'{"events":[' + b",".join(page.bodies) + b'],"next_cursor":' + next_cursor + b"}",
            pruned_before=horizon if reaches_below(query, horizon) else None,
        )

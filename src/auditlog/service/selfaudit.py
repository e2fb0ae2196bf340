"""The service audits itself: logins, key changes and reads become events in the tenant's log.

PCI DSS 10.2.1 asks an audit trail to record every access to the audit trail itself and every
use of identification and authentication. So, in the tenant concerned, with types under
``auditlog.``, the actor being the credential (or, for the command line, the local operator)
and the ``source`` ``auditlog``:

* ``auditlog.login.succeeded`` / ``auditlog.login.failed``: a login with a username and
  password (a failed login for a username that does not exist has no tenant to go to; it is
  in the server log only);
* ``auditlog.key.created`` / ``auditlog.key.revoked``: API keys made or revoked by
  ``auditlog keys``;
* ``auditlog.user.created`` / ``auditlog.user.removed`` / ``auditlog.user.password_changed``:
  logins made, removed or given a new password by ``auditlog users``;
* ``auditlog.retention.set``: a tenant's retention policy set by ``auditlog retention set``
  or ``PUT /v1/retention``;
* ``auditlog.hold.set`` / ``auditlog.hold.released``: a legal hold set or released by
  ``auditlog hold``;
* ``auditlog.archive.created``: an archive of the tenant's log written, checked and recorded
  by ``auditlog archive``;
* ``auditlog.log.pruned``: events pruned from the tenant's log by its retention, by the
  service's schedule or ``auditlog prune`` (the seqs, and the archives that hold them);
* ``auditlog.log.read``: every read of the log through the API (event queries, reads by id,
  the first version's ``GET /event``), unless the ``audit_reads`` setting turns it off.

Each record goes through the same group commit as any event, and the request it records is
answered only after the record is durable: a read nobody could deny having made.

What a read record shows of the request (its query parameters, the id asked for) is the
client's to choose, so it is bounded: each string up to ``MAX_SHOWN_CHARS`` characters and the
query up to ``MAX_SHOWN_BYTES`` bytes of JSON, the parameters in order; a record that had to
be cut says ``"truncated": true``. So every read fits in an event, whatever was sent.

A record made while serving a request carries that request's id in its data
(``request_id``), the one answered as ``X-Request-ID``, so a record, the server's log lines
and a client's or proxy's own logs of the same request can be matched up.
"""

from __future__ import annotations

from typing import Any

import orjson

from auditlog.model import times
from auditlog.model.credentials import Credential
from auditlog.model.event import Limits, NewEvent, Principal, validate_event
from auditlog.requestcontext import current
from auditlog.service.ingest import Ingestor
from auditlog.storage.base import AppendRequest, Store

SOURCE = "auditlog"
LOGIN_SUCCEEDED = "auditlog.login.succeeded"
LOGIN_FAILED = "auditlog.login.failed"
KEY_CREATED = "auditlog.key.created"
KEY_REVOKED = "auditlog.key.revoked"
USER_CREATED = "auditlog.user.created"
USER_REMOVED = "auditlog.user.removed"
USER_PASSWORD_CHANGED = "auditlog.user.password_changed"  # noqa: S105 (an event type)
RETENTION_SET = "auditlog.retention.set"
HOLD_SET = "auditlog.hold.set"
HOLD_RELEASED = "auditlog.hold.released"
ARCHIVE_CREATED = "auditlog.archive.created"
LOG_READ = "auditlog.log.read"
LOG_PRUNED = "auditlog.log.pruned"
_PRINCIPAL = Principal("auditlog", SOURCE)
#: The actor of what the service does by itself, on its schedule (pruning).
SERVICE_ACTOR = {"id": "auditlog", "type": "service"}
#: Longest string of a request shown in a read record, in characters.
MAX_SHOWN_CHARS = 1024
#: Most bytes (as JSON) of query parameters shown in a read record.
MAX_SHOWN_BYTES = 16 * 1024


def credential_actor(credential: Credential) -> dict[str, str]:
    """The actor of an action a credential took: as the default actor of the events it writes
    (API.md §1, type ``credential``), with the credential's name."""
    return {"id": credential.principal, "type": "credential", "name": credential.name}


def _bounded(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` of a read record with its strings and its query cut to the bounds above."""
    out: dict[str, Any] = {}
    cut = False
    for key, value in data.items():
        if isinstance(value, str) and len(value) > MAX_SHOWN_CHARS:
            value, cut = value[:MAX_SHOWN_CHARS], True
        elif key == "query" and isinstance(value, list):
            kept: list[list[str]] = []
            room = MAX_SHOWN_BYTES
            for pair in value:
                shown = [part[:MAX_SHOWN_CHARS] for part in pair]
                cut = cut or shown != pair
                room -= len(orjson.dumps(shown)) + 1
                if room < 0:
                    cut = True
                    break
                kept.append(shown)
            value = kept
        out[key] = value
    if cut:
        out["truncated"] = True
    return out


def audit_event(type_: str, actor: dict[str, str], outcome: str, data: dict[str, Any]) -> NewEvent:
    """A self-audit event, validated like any other."""
    raw = {"type": type_, "actor": actor, "source": SOURCE, "outcome": outcome, "data": data}
    return validate_event(raw, _PRINCIPAL, Limits(), times.now_us())


class SelfAudit:
    """Records the service's own security-relevant actions through the group commit."""

    def __init__(self, ingestor: Ingestor, audit_reads: bool) -> None:
        self._ingestor = ingestor
        self.audit_reads = audit_reads

    async def record(
        self, tenant: str, type_: str, actor: dict[str, str], outcome: str, data: dict[str, Any]
    ) -> None:
        """Commit one record to ``tenant``'s log; returns once it is durable.

        Made while serving a request, the record's data also holds the request's id.
        """
        request = current()
        if request is not None:
            data = {**data, "request_id": request.request_id}
        event = audit_event(type_, actor, outcome, data)
        await self._ingestor.submit(AppendRequest(tenant, (event,)))

    async def read(self, credential: Credential, route: str, data: dict[str, Any]) -> None:
        """Record a read of the log by ``credential`` (unless reads are not audited)."""
        if self.audit_reads:
            await self.record(
                credential.tenant,
                LOG_READ,
                credential_actor(credential),
                "success",
                _bounded({"route": route, **data}),
            )


async def record_directly(
    store: Store, tenant: str, type_: str, actor: dict[str, str], data: dict[str, Any]
) -> None:
    """Commit one record straight to a store, for the command line (no server queue)."""
    await store.append([AppendRequest(tenant, (audit_event(type_, actor, "success", data),))])

"""``/v1/retention``: a tenant's retention policy and legal hold, seen and set by its admins.

An admin credential reads its own tenant's policy and hold, and sets the policy (API.md §14;
``PUT`` with ``{"keep": "400d"}`` or ``{"keep": null}`` to keep everything). Setting it is
recorded in the tenant's log (``auditlog.retention.set``) before it is answered. Holds are
set and released with the command line only (``auditlog hold``): whoever may change the
retention through the API may not lift a hold that stops it.
"""

from __future__ import annotations

from typing import Any

from auditlog.model import times
from auditlog.model.credentials import ADMIN, Credential
from auditlog.model.retention import Hold, Retention, parse_duration
from auditlog.service.auth import require
from auditlog.service.bodies import bad_field, json_object
from auditlog.service.selfaudit import RETENTION_SET, SelfAudit, credential_actor
from auditlog.storage.base import Store


def _hold_view(hold: Hold | None) -> dict[str, Any] | None:
    if hold is None:
        return None
    return {"reason": hold.reason, "set_by": hold.set_by, "set_at": times.format_us(hold.set_us)}


def view(tenant: str, policy: Retention | None, hold: Hold | None) -> dict[str, Any]:
    """A tenant's retention as answered: ``keep`` ``null`` keeps everything."""
    return {
        "tenant": tenant,
        "keep": None if policy is None or policy.keep_seconds is None else policy.keep,
        "keep_seconds": None if policy is None else policy.keep_seconds,
        "updated_at": None if policy is None else times.format_us(policy.updated_us),
        "updated_by": None if policy is None else policy.updated_by,
        "hold": _hold_view(hold),
    }


class RetentionAdmin:
    """Read and set the caller's tenant's retention policy."""

    def __init__(self, store: Store, audit: SelfAudit) -> None:
        self._store = store
        self._audit = audit

    async def get(self, credential: Credential) -> dict[str, Any]:
        require(credential, ADMIN)
        tenant = credential.tenant
        return view(
            tenant, await self._store.get_retention(tenant), await self._store.get_hold(tenant)
        )

    async def put(self, credential: Credential, body: Any) -> dict[str, Any]:
        require(credential, ADMIN)
        body = json_object(body, {"keep"}, "a retention policy")
        if "keep" not in body:
            raise bad_field(
                "keep", 'required: a duration such as "400d", or null to keep everything'
            )
        keep = body["keep"]
        if keep is None:
            keep_seconds = None
        elif isinstance(keep, str) and keep != "none":
            try:
                keep_seconds = parse_duration(keep)
            except ValueError as exc:
                raise bad_field("keep", str(exc)) from exc
        else:
            raise bad_field(
                "keep", 'expected a duration such as "400d", or null to keep everything'
            )
        tenant = credential.tenant
        before = await self._store.get_retention(tenant)
        policy = Retention(tenant, keep_seconds, times.now_us(), credential.principal)
        await self._store.set_retention(policy)
        # Answered only once the record is durable; should it fail, the answer is 503 and
        # the policy, already stored, stands (GET shows it).
        await self._audit.record(
            tenant,
            RETENTION_SET,
            credential_actor(credential),
            "success",
            {
                "keep": policy.keep,
                "keep_seconds": keep_seconds,
                "previous": "none" if before is None else before.keep,
            },
        )
        return view(tenant, policy, await self._store.get_hold(tenant))

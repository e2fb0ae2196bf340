"""``auditlog verify --url ... --policy FILE``: a tenant's log is accepted only once witnessed.

After the log itself is checked (``auditor.check_remote``), ``GET /v1/log/witnessed`` must give
a tenants-log checkpoint that the policy accepts (signed by its ``log`` key, with its quorum of
cosignatures: C2SP tlog-policy), an inclusion proof of the tenant's checkpoint in it, and that
tenant checkpoint signed by the tenant's pinned key; and the verified checkpoint must extend
the witnessed one (a consistency proof between them, checked against both roots). The
witnessed checkpoint must include the one verified: witnessing follows about a second behind,
so the check asks again for up to ``WAIT_SECONDS``; a log whose newest checkpoint no quorum of
witnesses cosigned by then (one the witnesses refused, say) is not accepted.

Anything missing or wrong is a finding, so ``verify`` exits non-zero naming it.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable
from typing import Any

from auditlog.cli.auditor import ApiClient, AuditError, RemoteReport
from auditlog.integrity import IntegrityError, PolicyError
from auditlog.integrity import checkpoint as checkpoints
from auditlog.integrity import note as notes
from auditlog.integrity import proof as proofs
from auditlog.integrity.hasher import leaf_hash
from auditlog.integrity.policy import Policy
from auditlog.service.logcheck import Finding

Find = Callable[[int | None, str, str], None]

#: How long the witnessed checkpoint is given to catch up with the one verified.
WAIT_SECONDS = 15.0
#: Seconds between two asks.
POLL_SECONDS = 0.5


def _hashes(value: Any, what: str) -> tuple[bytes, ...]:
    if not isinstance(value, list):
        raise IntegrityError(f"{what} is not a list of hashes")
    try:
        return tuple(base64.b64decode(h, validate=True) for h in value)
    except (TypeError, ValueError, binascii.Error) as exc:
        raise IntegrityError(f"{what}: {exc}") from None


def check_witnessed(
    client: ApiClient,
    policy: Policy,
    tenant_key: notes.Verifier,
    report: RemoteReport,
    wait: float = WAIT_SECONDS,
) -> None:
    """Add to ``report`` what keeps its log from being witnessed by ``policy`` (see module)."""
    verified = 0 if report.checkpoint is None else report.checkpoint.size
    deadline = time.monotonic() + wait
    while True:
        attempt = RemoteReport(tenant=report.tenant, checkpoint=report.checkpoint)
        own = _check_once(client, policy, tenant_key, attempt)
        if attempt.findings or (own is not None and own >= verified):
            break
        if time.monotonic() >= deadline:
            newest = (
                "none of this log is"
                if own is None
                else f"the newest witnessed checkpoint has size {own}"
            )
            attempt.findings.append(
                Finding(
                    report.tenant,
                    own,
                    "not witnessed",
                    f"the verified checkpoint of size {verified} is in no tenants checkpoint "
                    f"with the policy's quorum after {wait:g} s ({newest}): the witnesses have "
                    "not cosigned what this log shows",
                )
            )
            break
        time.sleep(POLL_SECONDS)
    report.findings.extend(attempt.findings)
    report.notices.extend(attempt.notices)


def _check_once(
    client: ApiClient, policy: Policy, tenant_key: notes.Verifier, report: RemoteReport
) -> int | None:
    """One ask of ``GET /v1/log/witnessed``, checked; the witnessed size (``None`` if none)."""

    def find(kind: str, detail: str) -> None:
        report.findings.append(Finding(report.tenant, None, kind, detail))

    try:
        answer = client.json("/v1/log/witnessed")
    except AuditError as exc:
        if exc.status == 404:  # nothing witnessed yet: asked again until the deadline
            return None
        find("not witnessed", f"the service gives no witnessed checkpoint: {exc}")
        return None
    if not isinstance(answer, dict):
        find("not witnessed", "GET /v1/log/witnessed: the answer is not an object")
        return None
    try:
        witnessed = policy.check(str(answer.get("tenants_checkpoint")))
    except PolicyError as exc:
        find("witnesses", f"the tenants checkpoint lacks the policy's quorum: {exc}")
        return None
    except IntegrityError as exc:
        find("witnesses", f"the tenants checkpoint does not verify with the policy: {exc}")
        return None
    tenants = witnessed.checkpoint
    try:
        note_text = str(answer.get("checkpoint"))
        own = checkpoints.verify(note_text, tenant_key, origin=tenant_key.name)
        index = answer.get("leaf_index")
        if not isinstance(index, int) or isinstance(index, bool):
            raise IntegrityError("leaf_index is not an integer")
        path = _hashes(answer.get("inclusion_proof"), "inclusion_proof")
        leaf = leaf_hash(notes.parse(note_text).text.encode("utf-8"))
        proofs.verify_inclusion(index, tenants.size, leaf, path, tenants.root_hash)
    except IntegrityError as exc:
        find("witnessed checkpoint", f"the tenant's witnessed checkpoint does not check: {exc}")
        return None
    _check_against_verified(client, own, report, find)
    if report.findings or own.size < (0 if report.checkpoint is None else report.checkpoint.size):
        return own.size
    names = ", ".join(sorted(witnessed.cosigners)) or "no witness (the policy asks none)"
    report.notices.append(
        Finding(
            report.tenant,
            None,
            "witnessed",
            f"the checkpoint of size {own.size} is in the tenants checkpoint of size "
            f"{tenants.size}, cosigned by {names}",
        )
    )
    return own.size


def _check_against_verified(
    client: ApiClient,
    own: checkpoints.Checkpoint,
    report: RemoteReport,
    find: Callable[[str, str], None],
) -> None:
    """The witnessed checkpoint and the verified one must be of one log."""
    verified = report.checkpoint
    if verified is None:
        return
    first, second = sorted((own, verified), key=lambda c: c.size)
    if first.size == second.size:
        if first.root_hash != second.root_hash:
            find("fork", f"the witnessed checkpoint of size {own.size} has another root")
        return
    try:
        answer = client.json(
            "/v1/log/proof/consistency",
            [("first", str(first.size)), ("second", str(second.size))],
        )
        path = _hashes(answer.get("hashes") if isinstance(answer, dict) else None, "hashes")
        proofs.verify_consistency(first.size, second.size, path, first.root_hash, second.root_hash)
    except (AuditError, IntegrityError) as exc:
        find(
            "fork",
            f"the witnessed checkpoint of size {own.size} and the verified one of size "
            f"{verified.size} are not of one log: {exc}",
        )
        return

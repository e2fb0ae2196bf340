"""``auditlog verify``: is every tenant's log what its signed checkpoints say it is?

Two ways, one report:

* ``auditlog verify [--store URL] [--data DIR]``: offline, on the store itself (also while the
  service runs): every tenant's tree is recomputed from its stored events and compared with
  every stored checkpoint (``auditlog.service.logcheck``);
* ``auditlog verify --url URL --public-key KEY --token T``: from outside, through the API alone,
  as an auditor would (``auditlog.cli.auditor``).

(``auditlog verify --archive FILE --public-key KEY`` checks an archive instead: see
``auditlog.cli.archive``.)

Either remembers the last checkpoint it verified in a state file (``--state``; with ``--url``
by default ``~/.auditlog/verify-state.json``) and, on the next run, demands that the log still
extends it, so a log that was rolled back or forked is caught (``auditlog.cli.verifystate``).

Exit status: 0 intact; 1 something is wrong (each problem on standard output, by tenant and
seq; the last line names the first); 2 the check could not be made.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from auditlog.cli.auditor import ApiClient, AuditError, check_remote, read_public_key
from auditlog.cli.progress import Progress
from auditlog.cli.receipt import load_policy
from auditlog.cli.verifystate import StateError, StateFile, Verified, default_path
from auditlog.cli.witnessed import check_witnessed
from auditlog.config import Settings
from auditlog.integrity import note as notes
from auditlog.service.logcheck import Finding, Report, check_log
from auditlog.service.logkey import LogKey
from auditlog.service.tenantscheck import check_tenants_log
from auditlog.storage.factory import open_store

#: Problems printed per tenant; the rest are counted.
MAX_SHOWN = 100


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``verify`` beyond the store settings."""
    parser.add_argument(
        "--url",
        help="verify through the API of the service at URL, as an auditor "
        "(needs --public-key and --token)",
    )
    parser.add_argument(
        "--public-key",
        metavar="KEY",
        help="the log's pinned public key: the vkey that GET /v1/log/public-key gives in "
        "text/plain, or the base64 of the 32-byte key, or a file holding either. Offline, "
        "checkpoints are checked with this key instead of the store's own",
    )
    parser.add_argument(
        "--archive",
        metavar="FILE",
        help="check an archive written by auditlog archive, offline, with --public-key alone: "
        "exit 0 when it is exactly what the log held",
    )
    parser.add_argument(
        "--policy",
        metavar="FILE",
        help="a witness policy (C2SP tlog-policy; its log line the tenants log's key, "
        "tenants_vkey of GET /v1/log/public-key): with --url, the log is accepted only in a "
        "tenants checkpoint with the policy's quorum of cosignatures; with --receipt, the "
        "receipt is checked against it",
    )
    parser.add_argument(
        "--witness-wait",
        metavar="SECONDS",
        type=float,
        default=15.0,
        help="with --url and --policy: how long the witnessed checkpoint is given to catch up "
        "with the one verified (witnessing follows about a second behind; default 15)",
    )
    parser.add_argument(
        "--receipt",
        metavar="FILE",
        help="check an event's receipt (auditlog proof) offline with --policy, and "
        "--public-key to pin the tenant's key: exit 0 when the event is proved",
    )
    parser.add_argument(
        "--token", metavar="T", help="with --url: a credential with log:read and events:read"
    )
    parser.add_argument(
        "--state",
        metavar="FILE",
        help="where the last verified checkpoint of each log is kept, to be demanded as a "
        "prefix on the next run (with --url default ~/.auditlog/verify-state.json; offline "
        "none unless given); keep it out of the operator's reach",
    )
    parser.add_argument(
        "--wait",
        metavar="SECONDS",
        type=float,
        default=2.0,
        help="offline: how long events beyond the latest checkpoint are given for a running "
        "service to sign them before they are reported uncovered (default 2)",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a progress bar on standard error (default: on a terminal, for long runs)",
    )


def run(settings: Settings, args: argparse.Namespace) -> int:
    """``auditlog verify`` with parsed arguments; the exit status."""
    if args.archive:
        from auditlog.cli import archive

        return archive.verify(args)
    if args.receipt:
        from auditlog.cli import receipt

        return receipt.verify(args)
    try:
        if args.url:
            if not args.token or not args.public_key:
                print("auditlog: verify --url needs --token and --public-key", file=sys.stderr)
                return 2
            return _remote(args)
        return asyncio.run(_offline(settings, args))
    except (AuditError, StateError) as exc:
        print(f"auditlog: verify: {exc}", file=sys.stderr)
        return 2


def _conclude(findings: Sequence[Finding], intact: str) -> int:
    if not findings:
        print(intact)
        return 0
    first = next((f for f in findings if f.seq is not None), findings[0])
    where = f"seq {first.seq}" if first.seq is not None else "a checkpoint"
    print(
        f"FAILED: {len(findings)} problem{'s' if len(findings) != 1 else ''}; the first bad "
        f"{where} of tenant {first.tenant}: {first.kind}"
    )
    return 1


def _show(findings: Sequence[Finding]) -> None:
    for finding in findings[:MAX_SHOWN]:
        print(finding.line())
    if len(findings) > MAX_SHOWN:
        print(f"... and {len(findings) - MAX_SHOWN} more problems")


# -- offline, on the store -----------------------------------------------------------------------


async def _offline(settings: Settings, args: argparse.Namespace) -> int:
    pinned = read_public_key(args.public_key) if args.public_key else None
    state = StateFile(Path(args.state)) if args.state else None
    store = open_store(settings)
    await store.open()
    try:
        key = LogKey(store, settings.log_origin, settings.log_signing_key_file)
        if pinned is None:
            await key.load()
        public = pinned.public_key if isinstance(pinned, notes.Verifier) else pinned
        sizes = await store.log_sizes()
        tenants = set(sizes)
        if state is not None:  # a log remembered but wholly gone must be checked too
            prefix = key.origin_prefix + "/"
            tenants.update(o[len(prefix) :] for o in state.origins() if o.startswith(prefix))
        pruned = await store.horizons()  # those events are not read
        progress = Progress(sum(sizes.values()) - sum(pruned.values()), enabled=args.progress)
        reports: list[Report] = []
        for tenant in sorted(tenants):
            origin = key.origin(tenant)
            verifier = key.verifier(tenant) if public is None else notes.Verifier(origin, public)
            label = f"verifying {tenant}"

            def advance(n: int, label: str = label) -> None:
                progress.advance(n, label)

            reports.append(
                await check_log(
                    store,
                    tenant,
                    verifier,
                    sizes.get(tenant, 0),
                    remembered=None if state is None else state.get(origin),
                    wait=args.wait,
                    progress=advance,
                )
            )
        progress.close()
        tenants_verifier = (
            key.tenants_verifier() if public is None else notes.Verifier(key.tenants_origin, public)
        )
        tenants_log = await check_tenants_log(store, tenants_verifier)
    finally:
        await store.close()
    findings = [f for r in reports for f in r.findings]
    findings += [Finding("(tenants log)", None, "tenants log", p) for p in tenants_log.problems]
    for report in reports:
        latest = report.latest.size if report.latest is not None else 0
        summary = (
            f"tenant {report.tenant}: {report.events} events, {report.checkpoints} checkpoints "
            f"(the latest of size {latest})"
        )
        print(summary + (": intact" if not report.findings else ""))
        _show(report.findings)
        for notice in report.notices:
            print(f"note: {notice.line()}")
    if state is not None and not findings:
        for report in reports:
            if report.latest is not None:
                origin = key.origin(report.tenant)
                state.remember(
                    Verified(
                        origin,
                        report.latest.size,
                        report.latest.root_hash,
                        report.latest.note,
                        settings.store_url,
                    )
                )
        state.save()
    witnessed = "" if tenants_log.witnessed is None else f", witnessed {tenants_log.witnessed}"
    print(
        f"tenants log: {tenants_log.leaves} leaves, checkpoint of size {tenants_log.size}"
        f"{witnessed}" + (": intact" if not tenants_log.problems else "")
    )
    for problem in tenants_log.problems:
        print(f"tenants log: {problem}")
    events = sum(r.events for r in reports)
    return _conclude(findings, f"intact: {len(reports)} tenants, {events} events")


# -- from outside, through the API --------------------------------------------------------------


def _remote(args: argparse.Namespace) -> int:
    key = read_public_key(args.public_key)
    state = StateFile(Path(args.state) if args.state else default_path())
    client = ApiClient(args.url, args.token)
    progress = Progress(0, enabled=args.progress)

    def advance(n: int, total: int) -> None:
        progress.total = total
        progress.advance(n)

    policy = load_policy(args.policy) if args.policy else None
    try:
        report = check_remote(client, key, state.get, advance)
    finally:
        progress.close()
    if policy is not None and report.verifier is not None and not report.findings:
        check_witnessed(client, policy, report.verifier, report, args.witness_wait)
    size = report.checkpoint.size if report.checkpoint is not None else 0
    summary = f"tenant {report.tenant} ({report.origin}) at {args.url}: checkpoint of size {size}, {report.events} events"
    print(summary + (": intact" if not report.findings else ""))
    _show(report.findings)
    for notice in report.notices:
        print(f"note: {notice.line()}")
    if not report.findings and report.checkpoint is not None:
        signed = report.checkpoint
        state.remember(
            Verified(report.origin, signed.size, signed.root_hash, report.note, args.url)
        )
        state.save()
    return _conclude(report.findings, f"intact: checkpoint of size {size} verified")

"""``auditlog proof --id ID``: an event's offline receipt; ``auditlog verify --receipt FILE``
checks one without the service (``auditlog.integrity.receipt`` says what it proves)."""

from __future__ import annotations

import argparse
import sys
import urllib.parse
from pathlib import Path

from auditlog.cli.auditor import ApiClient, AuditError, read_public_key
from auditlog.integrity import IntegrityError, receipt
from auditlog.integrity import policy as policies
from auditlog.integrity.policy import Policy


def load_policy(path: str) -> Policy:
    """The witness policy in ``path``; ``AuditError`` saying what is wrong with it."""
    try:
        return policies.parse(Path(path).read_bytes())
    except OSError as exc:
        raise AuditError(f"--policy {path}: {exc.strerror or exc}") from None
    except IntegrityError as exc:
        raise AuditError(f"--policy {path}: {exc}") from None


def add_proof_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--id", required=True, help="the event's id")
    parser.add_argument("--url", required=True, help="the service's base URL")
    parser.add_argument("--token", required=True, metavar="T", help="a credential with events:read")
    parser.add_argument(
        "-o", "--output", metavar="FILE", help="write the receipt here (default: standard output)"
    )


def fetch(args: argparse.Namespace) -> int:
    """``auditlog proof``: fetch the event's receipt (GET /v1/events/{id}/receipt)."""
    client = ApiClient(args.url, args.token)
    path = "/v1/events/" + urllib.parse.quote(args.id, safe="") + "/receipt"
    try:
        text = client.get(path, accept="text/plain")
    except AuditError as exc:
        print(f"auditlog: proof: {exc}", file=sys.stderr)
        return 1
    if args.output:
        Path(args.output).write_bytes(text)
    else:
        sys.stdout.buffer.write(text)
    return 0


def verify(args: argparse.Namespace) -> int:
    """``auditlog verify --receipt FILE --policy FILE [--public-key TENANT_VKEY]``."""
    if not args.policy:
        print("auditlog: verify --receipt needs --policy", file=sys.stderr)
        return 2
    try:
        policy = load_policy(args.policy)
        key = read_public_key(args.public_key) if args.public_key else None
        text = Path(args.receipt).read_text("utf-8")
    except AuditError as exc:
        print(f"auditlog: verify: {exc}", file=sys.stderr)
        return 2
    except (OSError, UnicodeDecodeError) as exc:
        print(f"auditlog: verify: --receipt {args.receipt}: {exc}", file=sys.stderr)
        return 2
    try:
        checked = receipt.check(text, policy, key)
    except IntegrityError as exc:
        print(f"FAILED: the receipt does not prove its event: {exc}")
        return 1
    names = ", ".join(sorted(checked.cosigners)) or "no witness (the policy asks none)"
    print(
        f"intact: event {checked.event_id} (seq {checked.seq}) is in "
        f"{checked.tenant_checkpoint.origin} at size {checked.tenant_checkpoint.size}, in the "
        f"tenants checkpoint of size {checked.tenants_checkpoint.size} cosigned by {names}"
    )
    return 0

"""``auditlog prune``: prune now what each tenant's retention allows and an archive covers.

The same work as the service's schedule (``auditlog.service.pruning``), on demand and while
the service runs: one line per tenant saying what was pruned, or why not (a legal hold, no
archive of the due range, nothing old enough). ``--no-archive`` prunes without an archive;
the tenant's log records that it did.

Exit status: 0 done (also when nothing was due); 1 a tenant was held or lacked an archive for
events that were due (each said on its line), so a cron job notices; 2 bad arguments.
"""

from __future__ import annotations

import argparse
from typing import Any

from auditlog.service import selfaudit
from auditlog.service.pruning import Pruner
from auditlog.storage.base import Store


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tenant", metavar="T", help="prune this tenant only (default: every tenant)"
    )
    parser.add_argument(
        "--no-archive",
        action="store_true",
        help="prune what the retention allows even where no archive covers it (recorded in "
        "the tenant's log)",
    )


async def run(store: Store, args: argparse.Namespace, actor: dict[str, str]) -> int:
    async def record(tenant: str, type_: str, data: dict[str, Any]) -> None:
        await selfaudit.record_directly(store, tenant, type_, actor, data)

    pruner = Pruner(store, record)
    tenants = None if args.tenant is None else [args.tenant]
    outcomes = await pruner.run_once(tenants, no_archive=args.no_archive)
    for outcome in outcomes:
        print(outcome.line())
    return 1 if any(o.refused for o in outcomes) else 0

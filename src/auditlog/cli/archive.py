"""``auditlog archive``, ``auditlog archive query`` and ``auditlog verify --archive``.

* ``auditlog archive --tenant T (--before TIME | --through-seq N) -o FILE [--force]`` writes an
  archive of the tenant's log from its horizon through seq N, or through the last event
  received before TIME, on the store ``--store``/``--data`` names (also while the service
  runs). The file is checked with the service's own key before it is renamed into place; it
  is then recorded in the store (``Store.add_archive``, with its SHA-256 and absolute path) and
  in the tenant's own log (``auditlog.archive.created``). Exit 0 written, 1 refused or failed
  (an empty range, a range no checkpoint covers yet, FILE exists), 2 bad usage.
* ``auditlog archive query FILE [FILTER...] [--limit N]`` prints the archived events that
  match the filters of ``GET /v1/events`` as NDJSON, byte for byte, without restoring them and
  without checking the archive (``verify --archive`` does). Exit 0, 1 the archive cannot be
  read through, 2 bad usage or an unreadable file.
* ``auditlog verify --archive FILE --public-key VKEY`` checks an archive offline (see
  ``auditlog.archive.check``). Exit 0 intact, 1 not (the first bad seq and what is wrong),
  2 the check could not be made (unreadable file, bad key).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable

import orjson

from auditlog.archive import ArchiveError, ArchiveFormatError
from auditlog.archive import make as making
from auditlog.archive.check import ArchiveReport, check_archive
from auditlog.archive.format import ArchiveReader
from auditlog.cli.apiclient import UsageError, add_filter_argument, parse_filters, quiet_stdout
from auditlog.cli.auditor import AuditError, read_public_key
from auditlog.cli.main import operator_actor
from auditlog.config import Settings
from auditlog.errors import BadRequest
from auditlog.model import times
from auditlog.model.credentials import check_tenant
from auditlog.model.matching import event_matches
from auditlog.model.query import Query, parse_query
from auditlog.service import selfaudit
from auditlog.service.logkey import LogKey
from auditlog.storage.factory import open_store

USAGE = (
    "auditlog archive --tenant T (--before TIME | --through-seq N) -o FILE [--force] "
    "[--store URL | --data DIR]\n"
    "       auditlog archive query FILE [FILTER ...] [--limit N]"
)
#: Query parameters ``archive query`` does not take: it reads the archive in seq order, whole.
OWN_PARAMETERS = frozenset({"cursor", "limit", "order"})
#: Problems printed by ``verify --archive``; the rest are counted.
MAX_SHOWN = 100


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``archive`` (the making form) and its ``query`` action."""
    parser.usage = USAGE
    parser.description = (
        "Write an archive of a tenant's log, from its first kept seq through seq N or the last "
        "event received before TIME, checked with the log's key before it is put in place; "
        "or, with query, print an archive's events."
    )
    parser.add_argument("--tenant", help="the tenant whose log is archived")
    through = parser.add_mutually_exclusive_group()
    through.add_argument(
        "--before",
        metavar="TIME",
        help="archive through the last event received before TIME (RFC 3339)",
    )
    through.add_argument(
        "--through-seq", metavar="N", type=int, help="archive through seq N (N included)"
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="the archive file to write")
    parser.add_argument("--force", action="store_true", help="replace FILE if it exists")
    actions = parser.add_subparsers(
        dest="archive_command", metavar="ACTION", prog="auditlog archive"
    )
    about = (
        "print an archive's events that match FILTERs as NDJSON, without restoring it; "
        "it does not check the archive (auditlog verify --archive does)"
    )
    query = actions.add_parser("query", help=about, description=about)
    query.add_argument("file", metavar="FILE", help="an archive written by auditlog archive")
    query.add_argument("--limit", metavar="N", type=int, help="print at most N events")
    add_filter_argument(query)


def run(args: argparse.Namespace, settings: Callable[[], Settings]) -> int:
    """``auditlog archive`` with parsed arguments; ``settings`` loads the settings (making
    an archive needs the store; querying one does not). The exit status."""
    if args.archive_command == "query":
        return _query(args)
    try:
        through_seq, before_us = _range(args)
    except UsageError as exc:
        print(f"auditlog: archive: {exc}", file=sys.stderr)
        print(f"usage: {USAGE}", file=sys.stderr)
        return 2
    return asyncio.run(_create(settings(), args, through_seq, before_us))


def _range(args: argparse.Namespace) -> tuple[int | None, int | None]:
    missing = [
        name for name, value in (("--tenant", args.tenant), ("-o", args.output)) if not value
    ]
    if args.before is None and args.through_seq is None:
        missing.append("--before or --through-seq")
    if missing:
        raise UsageError(f"making an archive needs {', '.join(missing)}")
    try:
        check_tenant(args.tenant)
    except ValueError as exc:
        raise UsageError(f"--tenant: {exc}") from None
    if args.through_seq is not None:
        if args.through_seq < 0:
            raise UsageError(f"--through-seq {args.through_seq} is negative")
        return args.through_seq, None
    try:
        return None, times.parse_rfc3339(args.before)
    except ValueError as exc:
        raise UsageError(f"--before: {exc}") from None


async def _create(
    settings: Settings, args: argparse.Namespace, through_seq: int | None, before_us: int | None
) -> int:
    tenant = args.tenant
    store = open_store(settings)
    await store.open()
    try:
        plan = await making.plan(store, tenant, through_seq=through_seq, before_us=before_us)
        key = LogKey(store, settings.log_origin, settings.log_signing_key_file)
        await key.load()
        actor = operator_actor()
        record = await making.make(
            store,
            plan,
            key.origin(tenant),
            key.verifier(tenant),
            args.output,
            force=args.force,
            created_by=actor["id"],
        )
        # The file is in place and checked; should what follows fail, it stays (exit 1).
        await store.add_archive(record)
        await selfaudit.record_directly(
            store,
            tenant,
            selfaudit.ARCHIVE_CREATED,
            actor,
            {
                "first_seq": record.first_seq,
                "end_seq": record.end_seq,
                "events": plan.events,
                "checkpoint_size": record.checkpoint_size,
                "sha256": record.sha256,
                "location": record.location,
            },
        )
    except ArchiveError as exc:
        print(f"auditlog: archive: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"auditlog: archive: {args.output}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    finally:
        await store.close()
    print(
        f"wrote {record.location}: tenant {tenant}, seq {record.first_seq}..{record.end_seq - 1} "
        f"({plan.events} events), checkpoint of size {record.checkpoint_size}"
    )
    print(f"sha256 {record.sha256}")
    return 0


# -- archive query -----------------------------------------------------------------------------


def _filters(args: argparse.Namespace) -> Query:
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit {args.limit} is not a positive number")
    try:
        query, _ = parse_query(parse_filters(args.filters, OWN_PARAMETERS))
    except BadRequest as exc:
        raise UsageError(str(exc)) from None
    return query


def _query(args: argparse.Namespace) -> int:
    try:
        query = _filters(args)
    except UsageError as exc:
        print(f"auditlog: archive query: {exc}", file=sys.stderr)
        return 2
    try:
        reader = ArchiveReader(args.file)
    except OSError as exc:
        print(f"auditlog: archive query: {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except ArchiveFormatError as exc:
        print(f"auditlog: archive query: {args.file}: {exc}", file=sys.stderr)
        return 1
    out = sys.stdout.buffer
    shown = 0
    try:
        with reader:
            manifest = reader.manifest()
            for seq, body in enumerate(reader.event_lines(manifest.first_seq), manifest.first_seq):
                try:
                    event = orjson.loads(body)
                    time_us = times.parse_rfc3339(event["time"])
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                    raise ArchiveFormatError(
                        f"the line of seq {seq} is not a stored event (auditlog verify --archive "
                        "checks an archive)"
                    ) from None
                if event_matches(event, time_us, query):
                    out.write(body + b"\n")
                    shown += 1
                    if shown == args.limit:
                        break
        out.flush()
    except ArchiveFormatError as exc:
        print(f"auditlog: archive query: {args.file}: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader has had enough (``| head``)
        quiet_stdout()
    return 0


# -- verify --archive --------------------------------------------------------------------------


def verify(args: argparse.Namespace) -> int:
    """``auditlog verify --archive FILE --public-key VKEY``; the exit status."""
    if not args.public_key:
        print("auditlog: verify --archive needs --public-key (the log's vkey)", file=sys.stderr)
        return 2
    if args.url:
        print("auditlog: verify: --archive and --url check different things", file=sys.stderr)
        return 2
    try:
        key = read_public_key(args.public_key)
        report = check_archive(args.archive, key)
    except AuditError as exc:
        print(f"auditlog: verify: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"auditlog: verify: {args.archive}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return _conclude(report)


def _conclude(report: ArchiveReport) -> int:
    manifest, signed = report.manifest, report.checkpoint
    if manifest is not None:
        size = f", checkpoint of size {signed.size}" if signed is not None else ""
        print(
            f"archive {report.path}: tenant {manifest.tenant}, seq {manifest.first_seq}.."
            f"{manifest.end_seq - 1} ({report.events} events){size}"
            + (": intact" if not report.findings else "")
        )
    first = report.first
    if first is None:
        return 0
    for finding in report.findings[:MAX_SHOWN]:
        print(finding.line())
    more = len(report.findings) - MAX_SHOWN + report.untold
    if more > 0:
        print(f"... and {more} more problems")
    count = len(report.findings) + report.untold
    where = f"the first bad seq {first.seq}" if first.seq is not None else "the first problem"
    print(
        f"FAILED: {count} problem{'s' if count != 1 else ''}; {where} of tenant "
        f"{first.tenant}: {first.kind}"
    )
    return 1

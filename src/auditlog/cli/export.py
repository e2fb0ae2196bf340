"""``auditlog export``: a tenant's events, or those matching a query, through
``GET /v1/events/export``, written byte for byte to a file or standard output.

The export is a stream of records (NDJSON lines, or CSV records under one header row) in
ascending ``seq``. The first answer's ``Auditlog-Log-Size`` fixes the set: every later request
of the same export sends it back as ``before_seq``. Only whole records are written: when the
connection breaks, the bytes of the record it broke in are dropped and the export resumes
with ``after_seq`` = the ``seq`` of the last record written (the repeated CSV header is
dropped too), so the output is exactly what one uninterrupted export gives. ``--resume``
does the same for a file left by an earlier run that was stopped: it cuts the file after its
last whole record and continues from there.

The helpers at the end (filters, problems, backoff) are shared with ``auditlog tail``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

import httpx
import orjson

from auditlog.cli.apiclient import (
    Backoff,
    Broken,
    CommandFailed,
    UsageError,
    add_connection_arguments,
    add_filter_argument,
    check_answer,
    check_url,
    describe,
    http_client,
    parse_filters,
    quiet_stdout,
    sleep,
)
from auditlog.cli.progress import Progress

PATH = "/v1/events/export"
FORMATS = ("ndjson", "csv")
#: Parameters the command sets itself; a FILTER may not name them.
OWN_PARAMETERS = frozenset(
    {"format", "columns", "after_seq", "before_seq", "cursor", "limit", "order"}
)
#: Retries of a broken export, with no record written in between, before it gives up.
RETRIES = 10
#: How much of a file ``--resume`` reads at a time.
BLOCK = 1 << 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``export``."""
    add_connection_arguments(parser)
    parser.add_argument(
        "--format", choices=FORMATS, default="ndjson", help="ndjson (the default) or csv"
    )
    parser.add_argument(
        "--columns",
        metavar="PATHS",
        help="with --format csv: comma-separated field paths to add as columns "
        "(data.amount,data.location.city)",
    )
    parser.add_argument(
        "--after-seq", metavar="N", type=int, help="only events after seq N (N itself excluded)"
    )
    parser.add_argument(
        "-o", "--output", metavar="FILE", help="write to FILE (default: standard output)"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="with -o: continue an earlier, interrupted export into FILE from its last "
        "complete record (a partial record at its end is cut off first)",
    )
    parser.add_argument(
        "--retries",
        metavar="N",
        type=int,
        default=RETRIES,
        help=f"how often a broken export is retried before giving up (default {RETRIES}); "
        "the count starts again whenever a record is written",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a progress bar on standard error (default: when it is a terminal)",
    )
    add_filter_argument(parser)


def run(args: argparse.Namespace) -> int:
    """``auditlog export`` with parsed arguments; the exit status (0 the export is complete,
    1 refused or failed, 2 bad usage, 130 interrupted)."""
    try:
        filters = parse_filters(args.filters, OWN_PARAMETERS)
        check_url(args.url)
        if args.resume and not args.output:
            raise UsageError("--resume needs -o FILE: it continues the export in that file")
        if args.columns and args.format != "csv":
            raise UsageError("--columns needs --format csv")
        if args.retries < 0:
            raise UsageError(f"--retries {args.retries} is negative")
    except UsageError as exc:
        print(f"auditlog: export: {exc}", file=sys.stderr)
        return 2
    params: list[tuple[str, str]] = [("format", args.format)]
    if args.columns:
        params.append(("columns", args.columns))
    params += filters
    export = Export(args.url, args.token, params, csv=args.format == "csv", retries=args.retries)
    export.after = args.after_seq
    try:
        with _output(args, export) as out:
            progress = Progress(0, "exporting", enabled=_progress_wanted(args))
            try:
                export.run(out, progress)
            finally:
                progress.close()
        return 0
    except KeyboardInterrupt:
        where = "" if export.after is None else f" after seq {export.after}"
        again = " (run it again with --resume to continue)" if args.output else ""
        print(f"auditlog: export: interrupted{where}{again}", file=sys.stderr)
        return 130
    except CommandFailed as exc:
        print(f"auditlog: export: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        quiet_stdout()
        return 1
    except OSError as exc:
        print(f"auditlog: export: {exc}", file=sys.stderr)
        return 1


def _progress_wanted(args: argparse.Namespace) -> bool:
    if args.progress is not None:
        return bool(args.progress)
    # A bar on the terminal that the export itself is printed to would garble both.
    return sys.stderr.isatty() and (args.output is not None or not sys.stdout.isatty())


@contextlib.contextmanager
def _output(args: argparse.Namespace, export: Export) -> Iterator[BinaryIO]:
    if not args.output:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    path = Path(args.output)
    if args.resume and path.exists():
        with open(path, "r+b") as out:
            kept = scan(out, export.framing(), header=export.csv)
            out.truncate(kept.length)
            out.seek(kept.length)
            if kept.last is not None:
                export.after = export.framing().seq(kept.last, f"the last record of {path}")
            export.header = kept.header
            yield out
        return
    with open(path, "wb") as out:
        yield out


# -- records -------------------------------------------------------------------------------


class Framing(Protocol):
    """Cuts a byte stream into whole records, keeping the start of an unfinished one."""

    def feed(self, data: bytes) -> list[bytes]:
        """The records that ``data`` completes, each with its line end."""
        ...

    @property
    def partial(self) -> int:
        """How many bytes of an unfinished record are held."""
        ...

    def seq(self, record: bytes, what: str) -> int:
        """The ``seq`` of a (data) record; ``CommandFailed`` naming ``what`` if it has none."""
        ...


class NdjsonRecords:
    """NDJSON: a record is a line, ending in ``\\n``."""

    def __init__(self) -> None:
        self._held = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        end = data.rfind(b"\n")
        if end < 0:
            self._held += data
            return []
        block = bytes(self._held) + data[: end + 1]
        self._held[:] = data[end + 1 :]
        lines = block.split(b"\n")
        lines.pop()  # the empty string after the last line end
        return [line + b"\n" for line in lines]

    @property
    def partial(self) -> int:
        return len(self._held)

    def seq(self, record: bytes, what: str) -> int:
        try:
            seq = orjson.loads(record).get("seq")
        except (orjson.JSONDecodeError, AttributeError):
            seq = None
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise CommandFailed(f"{what} is not a stored event: {_excerpt(record)}")
        return seq


class CsvRecords:
    """CSV as RFC 4180 writes it: a record ends at a line break outside double quotes.

    A quoted cell may hold commas, line breaks and quotes (doubled), so the state between
    two pieces of the stream is whether the scan stands inside quotes. Bytes are enough: no
    byte of a multi-byte UTF-8 character is a quote or a line feed.
    """

    def __init__(self) -> None:
        self._held = bytearray()
        self._scanned = 0  # bytes of _held already scanned
        self._quoted = False

    def feed(self, data: bytes) -> list[bytes]:
        held = self._held
        held += data
        records: list[bytes] = []
        start, at, quoted = 0, self._scanned, self._quoted
        end = len(held)
        while at < end:
            if quoted:
                quote = held.find(b'"', at)
                if quote < 0:
                    at = end
                    break
                quoted, at = False, quote + 1
                continue
            newline = held.find(b"\n", at)
            quote = held.find(b'"', at, newline if newline >= 0 else end)
            if quote >= 0:
                quoted, at = True, quote + 1
            elif newline >= 0:
                records.append(bytes(held[start : newline + 1]))
                start = at = newline + 1
            else:
                at = end
        del held[:start]
        self._scanned, self._quoted = at - start, quoted
        return records

    @property
    def partial(self) -> int:
        return len(self._held)

    def seq(self, record: bytes, what: str) -> int:
        first = record.split(b",", 1)[0].strip(b'"\r\n')
        try:
            return int(first)
        except ValueError:
            raise CommandFailed(f"{what} does not begin with a seq: {_excerpt(record)}") from None


def _excerpt(record: bytes) -> str:
    text = record[:80].decode("utf-8", "replace").rstrip("\r\n")
    return repr(text + ("..." if len(record) > 80 else ""))


@dataclass(slots=True)
class Kept:
    """What ``scan`` found in a file: the length of its whole records, the first and the
    last of them."""

    length: int = 0
    header: bytes | None = None
    last: bytes | None = None


def scan(file: BinaryIO, framing: Framing, *, header: bool) -> Kept:
    """The whole records of ``file`` from its current position on; with ``header`` the
    first is a header, not counted as ``last``."""
    kept = Kept()
    while block := file.read(BLOCK):
        for record in framing.feed(block):
            kept.length += len(record)
            if header and kept.header is None:
                kept.header = record
            else:
                kept.last = record
    return kept


# -- the export ----------------------------------------------------------------------------


class Export:
    """One export, over as many requests as it takes. ``after`` is the seq of the last
    record written (or where to start), ``bound`` the log size that fixes the set (the
    first answer's ``Auditlog-Log-Size``), ``header`` the CSV header written."""

    def __init__(
        self,
        url: str,
        token: str,
        params: Sequence[tuple[str, str]],
        *,
        csv: bool,
        retries: int = RETRIES,
    ) -> None:
        self.url = url.rstrip("/") + PATH
        self.token = token
        self.params = list(params)
        self.csv = csv
        self.retries = retries
        self.after: int | None = None
        self.bound: int | None = None
        self.said_pruned = False  # the note on a pruned prefix is printed once
        self.header: bytes | None = None

    def framing(self) -> Framing:
        return CsvRecords() if self.csv else NdjsonRecords()

    def run(self, out: BinaryIO, progress: Progress) -> None:
        """Export into ``out`` until complete, or raise ``CommandFailed``."""
        backoff = Backoff()
        with http_client(self.token) as client:
            while not self._complete():
                before = self.after
                try:
                    self._attempt(client, out, progress)
                    return
                except Broken as exc:
                    if self.after != before:
                        backoff.reset()  # it went forward: only failures in a row count
                    if backoff.failures >= self.retries:
                        raise CommandFailed(
                            f"gave up after {backoff.failures} retries: {exc}"
                        ) from None
                    delay = backoff.next_delay(exc.retry_after)
                    progress.close()
                    where = "" if self.after is None else f" after seq {self.after}"
                    print(
                        f"auditlog: export: {exc}; resuming{where} in {delay:.1f} s",
                        file=sys.stderr,
                    )
                    sleep(delay)

    def _complete(self) -> bool:
        """Whether every event the export holds is written, so that there is nothing to ask."""
        return (
            self.bound is not None
            and self.after is not None
            and self.after >= self.bound - 1
            and (self.header is not None or not self.csv)
        )

    def _attempt(self, client: httpx.Client, out: BinaryIO, progress: Progress) -> None:
        params = list(self.params)
        if self.after is not None:
            params.append(("after_seq", str(self.after)))
        if self.bound is not None:
            params.append(("before_seq", str(self.bound)))
        framing = self.framing()
        answer = _Answer(self, framing, out, progress)
        try:
            with client.stream("GET", self.url, params=tuple(params)) as response:
                check_answer(response, "GET " + PATH)
                pruned = response.headers.get("Auditlog-Pruned-Before", "")
                if pruned.isdigit() and not self.said_pruned:
                    self.said_pruned = True
                    print(
                        f"auditlog: export: seq {int(pruned) - 1} and before are pruned"
                        f" (retention); the export begins at seq {pruned}",
                        file=sys.stderr,
                    )
                if self.bound is None:
                    self.bound = _log_size(response)
                    if self.bound is not None:
                        progress.total = self.bound
                        if self.after is not None:
                            progress.advance(self.after + 1 - progress.done)
                for chunk in response.iter_bytes():
                    answer.take(chunk)
        except (httpx.TransportError, httpx.DecodingError) as exc:
            raise Broken(f"the connection broke ({describe(exc)})") from None
        if not answer.header_seen:
            raise Broken("the export ended before its header row")
        if framing.partial:
            raise Broken("the export ended inside a record")
        if self.bound is not None:
            progress.advance(max(self.bound - progress.done, 0))


class _Answer:
    """The records of one answer, written as they complete."""

    def __init__(self, export: Export, framing: Framing, out: BinaryIO, progress: Progress):
        self.export = export
        self.framing = framing
        self.out = out
        self.progress = progress
        self.header_seen = not export.csv

    def take(self, chunk: bytes) -> None:
        export = self.export
        records = self.framing.feed(chunk)
        if not records:
            return
        if not self.header_seen:
            header = records.pop(0)
            self.header_seen = True
            if export.header is None:
                self.out.write(header)
                export.header = header
            elif header != export.header:
                raise CommandFailed(
                    f"the export's header {_excerpt(header)} is not the one already written "
                    f"{_excerpt(export.header)} (other --columns?)"
                )
        keep: list[bytes] = []
        after = export.after
        for record in records:
            seq = self.framing.seq(record, "a record of the export")
            if after is not None and seq <= after:
                continue  # sent again: it is written already
            keep.append(record)
            after = seq
        if keep:
            self.out.write(b"".join(keep))
            export.after = after
            assert after is not None
            self.progress.advance(max(after + 1 - self.progress.done, 0))


def _log_size(response: httpx.Response) -> int | None:
    value = response.headers.get("Auditlog-Log-Size", "")
    return int(value) if value.isdigit() else None

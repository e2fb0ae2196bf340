"""``auditlog tail``: the events of ``GET /v1/events/stream`` as they are committed, one JSON
line each on standard output, until interrupted.

The stream is Server-Sent Events (the WHATWG HTML "server-sent events" section): each event's
``id`` is its ``seq``. When the connection breaks, or the server ends it (a reader too slow),
the command reconnects with ``Last-Event-ID`` (the id last received) and the server replays
what was missed; an event whose seq was printed already is not printed again. The stream's
first block carries the position it begins after as its id (when the log is not empty), so
a connection that breaks before the first event resumes from there too.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from typing import BinaryIO

import httpx

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

PATH = "/v1/events/stream"
#: Parameters the command sets itself; a FILTER may not name them.
OWN_PARAMETERS = frozenset({"after_seq", "cursor", "limit", "order"})
#: The server sends a comment at least every 15 s: this long a silence is a dead connection.
READ_TIMEOUT = 60.0
#: The longest wait between reconnections that a ``retry`` field can ask for, in seconds.
LONGEST_RETRY = 60.0
#: The event types printed (``message`` is the type of an event that names none).
PRINTED = frozenset({"audit", "message"})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``tail``."""
    add_connection_arguments(parser)
    parser.add_argument(
        "--after-seq",
        metavar="N",
        type=int,
        help="begin with the events after seq N, then go on live (default: those committed "
        "from now on)",
    )
    parser.add_argument(
        "--retries",
        metavar="N",
        type=int,
        help="how often a failed connection is retried before giving up (default: without "
        "end); the count starts again whenever a connection receives anything",
    )
    add_filter_argument(parser)


def run(args: argparse.Namespace) -> int:
    """``auditlog tail`` with parsed arguments; the exit status (0 when interrupted, 1
    refused, 2 bad usage)."""
    try:
        filters = parse_filters(args.filters, OWN_PARAMETERS)
        check_url(args.url)
        if args.retries is not None and args.retries < 0:
            raise UsageError(f"--retries {args.retries} is negative")
    except UsageError as exc:
        print(f"auditlog: tail: {exc}", file=sys.stderr)
        return 2
    tail = Tail(args.url, args.token, filters, after_seq=args.after_seq, retries=args.retries)
    try:
        tail.run(sys.stdout.buffer)
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:  # the reader has had enough (``| head``)
        quiet_stdout()
        return 0
    except CommandFailed as exc:
        print(f"auditlog: tail: {exc}", file=sys.stderr)
        return 1
    return 0


class Tail:
    """The live stream of one query, over as many connections as it takes."""

    def __init__(
        self,
        url: str,
        token: str,
        filters: list[tuple[str, str]],
        *,
        after_seq: int | None = None,
        retries: int | None = None,
    ) -> None:
        self.url = url.rstrip("/") + PATH
        self.token = token
        self.filters = filters
        self.after_seq = after_seq
        self.retries = retries
        #: The id of the last event received: sent as ``Last-Event-ID`` on reconnection.
        self.last_id: str | None = None
        #: The greatest seq printed: an event at or before it is a repeat.
        self.last_seq: int | None = after_seq
        #: The reconnection time the server asked for (``retry``), in seconds.
        self.retry: float = 0.0

    def run(self, out: BinaryIO) -> None:
        """Print events to ``out`` until interrupted (``KeyboardInterrupt``), or raise
        ``CommandFailed`` when refused or out of retries."""
        backoff = Backoff()
        with http_client(self.token, READ_TIMEOUT) as client:
            while True:
                retry_after: float | None = None
                reason = ""
                try:
                    self._listen(client, out, backoff)
                except (httpx.TransportError, httpx.DecodingError) as exc:
                    reason = f"the connection broke ({describe(exc)})"
                except Broken as exc:
                    reason, retry_after = str(exc), exc.retry_after
                if self.retries is not None and backoff.failures >= self.retries:
                    raise CommandFailed(
                        f"gave up after {backoff.failures} retries: "
                        f"{reason or 'the server ended the stream'}"
                    )
                delay = backoff.next_delay(max(retry_after or 0.0, self.retry))
                if reason:  # a server that ends a stream is answered quietly
                    print(
                        f"auditlog: tail: {reason}; reconnecting in {delay:.1f} s", file=sys.stderr
                    )
                sleep(delay)

    def _listen(self, client: httpx.Client, out: BinaryIO, backoff: Backoff) -> None:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        params = list(self.filters)
        if self.last_id:  # (an empty id is no position, as in a browser)
            headers["Last-Event-ID"] = self.last_id
        elif self.after_seq is not None:
            params.append(("after_seq", str(self.after_seq)))
        with client.stream("GET", self.url, params=tuple(params), headers=headers) as response:
            check_answer(response, "GET " + PATH)
            parser = EventStreamParser()
            for chunk in response.iter_bytes():
                if chunk:
                    backoff.reset()
                for event in parser.feed(chunk):
                    self._show(event, out)
                if parser.pruned_before is not None:
                    print(
                        f"auditlog: tail: seq {parser.pruned_before - 1} and before are pruned"
                        f" (retention); continuing from seq {parser.pruned_before}",
                        file=sys.stderr,
                    )
                    parser.pruned_before = None
                if parser.last_event_id is not None:
                    self.last_id = parser.last_event_id
                if parser.retry_ms is not None:
                    self.retry = min(parser.retry_ms / 1000, LONGEST_RETRY)

    def _show(self, event: ServerEvent, out: BinaryIO) -> None:
        if event.type not in PRINTED:
            return
        seq = int(event.id) if event.id is not None and event.id.isdigit() else None
        if seq is not None:
            if self.last_seq is not None and seq <= self.last_seq:
                return  # sent again after a reconnection: printed already
            self.last_seq = seq
        out.write(event.data + b"\n")
        out.flush()


# -- Server-Sent Events --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServerEvent:
    """One dispatched event: its type, its data (the ``data`` fields joined by line feeds)
    and the last event id when it was dispatched."""

    type: str
    data: bytes
    id: str | None


_LINE_END = re.compile(rb"\r\n|\r|\n")
_BOM = b"\xef\xbb\xbf"


_PRUNED = b"pruned before seq "


class EventStreamParser:
    """The ``text/event-stream`` parser of the WHATWG HTML standard, fed bytes as they come.

    Lines end in CRLF, CR or LF (and nothing else: a JSON string may hold U+2028); a blank
    line dispatches the event gathered so far; an event without data is not dispatched.
    """

    def __init__(self) -> None:
        self._held = bytearray()
        self._started = False
        self._after_cr = False  # the last piece ended in CR, which may be half of a CRLF
        self._data: list[bytes] = []
        self._type = ""
        self._id: str | None = None
        #: The last event id received (it persists across events, as in a browser).
        self.last_event_id: str | None = None
        #: The reconnection time of the last ``retry`` field, in milliseconds.
        self.retry_ms: int | None = None
        #: The seq the stream said it continues from, where what was asked for is pruned
        #: (the comment ``: pruned before seq H``), until read and set back to ``None``.
        self.pruned_before: int | None = None

    def feed(self, data: bytes) -> list[ServerEvent]:
        """The events that ``data`` completes."""
        if not data:
            return []  # nothing: in particular, a CR that ended the last piece stays pending
        held = self._held
        held += data
        if not self._started:
            if len(held) < len(_BOM) and _BOM.startswith(bytes(held)):
                return []
            if held.startswith(_BOM):
                del held[: len(_BOM)]
            self._started = True
        if self._after_cr and held.startswith(b"\n"):
            del held[:1]  # the second half of a CRLF whose CR ended the last piece
        self._after_cr = False
        events: list[ServerEvent] = []
        start = 0
        for match in _LINE_END.finditer(held):
            event = self._line(bytes(held[start : match.start()]))
            if event is not None:
                events.append(event)
            start = match.end()
        self._after_cr = 0 < start == len(held) and held[start - 1] == 0x0D  # CR
        del held[:start]
        return events

    def _line(self, line: bytes) -> ServerEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(b":"):
            said = line.removeprefix(b":").strip()
            if said.startswith(_PRUNED) and said[len(_PRUNED) :].isdigit():
                self.pruned_before = int(said[len(_PRUNED) :])
            return None  # any other comment: a keep-alive
        name, _, value = line.partition(b":")
        value = value.removeprefix(b" ")
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._type = value.decode("utf-8", "replace")
        elif name == b"id":
            if b"\0" not in value:
                self._id = value.decode("utf-8", "replace")
        elif name == b"retry" and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> ServerEvent | None:
        self.last_event_id = self._id
        data, self._data = self._data, []
        kind, self._type = self._type or "message", ""
        if not data:
            return None
        return ServerEvent(kind, b"\n".join(data), self.last_event_id)

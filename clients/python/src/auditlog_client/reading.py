"""Where a read is: the parameters of a page, of an export and of a live tail, and what each
piece of an answer yields. No I/O here: ``Client`` and ``AsyncClient`` drive these."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from auditlog_client.query import Params, params
from auditlog_client.sse import EventStreamParser


def page_of(
    where: Mapping[str, Any],
    pairs: list[tuple[str, Any]],
    order: str,
    page_size: int,
    cursor: str | None,
) -> Params:
    """The parameters of one page of ``GET /v1/events``."""
    found = params(where, pairs)
    found += [("order", order), ("limit", str(page_size))]
    if cursor:
        found.append(("cursor", cursor))
    return found


class ExportCursor:
    """An NDJSON export's position: the set is fixed by the first answer's
    ``Auditlog-Log-Size`` (sent back as ``before_seq``), and a resumption asks for what
    comes after the last complete line (``after_seq``)."""

    path = "/v1/events/export"

    def __init__(
        self, where: Mapping[str, Any], pairs: list[tuple[str, Any]], after_seq: int | None
    ) -> None:
        self._filters = params(where, pairs)
        self.after_seq = after_seq
        self.before_seq: int | None = None
        self.complete = False
        self._held = b""

    def params(self) -> Params:
        found = list(self._filters)
        if self.after_seq is not None:
            found.append(("after_seq", str(self.after_seq)))
        if self.before_seq is not None:
            found.append(("before_seq", str(self.before_seq)))
        return found

    def begin(self, headers: Mapping[str, str]) -> None:
        self._held = b""
        if self.before_seq is None:
            size = headers.get("auditlog-log-size")
            if size is not None and size.isdigit():
                self.before_seq = int(size)

    def feed(self, chunk: bytes) -> list[dict[str, Any]]:
        """The events that ``chunk`` completes."""
        lines = (self._held + chunk).split(b"\n")
        self._held = lines.pop()
        events = [json.loads(line) for line in lines if line]
        if events:
            self.after_seq = int(events[-1]["seq"])
        return events

    def end(self) -> None:
        """The answer ended with its last chunk: the export is complete."""
        self.complete = not self._held

    def broken(self) -> None:
        self._held = b""


class TailCursor:
    """A live tail's position: the last event id (``Last-Event-ID`` on reconnection) and
    the greatest seq yielded (anything at or before it is a repeat)."""

    path = "/v1/events/stream"

    def __init__(
        self, where: Mapping[str, Any], pairs: list[tuple[str, Any]], after_seq: int | None
    ) -> None:
        self._filters = params(where, pairs)
        self.after_seq = after_seq
        self.last_id: str | None = None
        self.last_seq = after_seq
        #: The reconnection delay the server asked for, in seconds.
        self.retry = 0.0
        self._parser = EventStreamParser()

    def params(self) -> Params:
        found = list(self._filters)
        if not self.last_id and self.after_seq is not None:
            found.append(("after_seq", str(self.after_seq)))
        return found

    def headers(self) -> dict[str, str]:
        self._parser = EventStreamParser()  # a new connection, a new stream
        found = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.last_id:
            found["Last-Event-ID"] = self.last_id
        return found

    def feed(self, chunk: bytes) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        for message in self._parser.feed(chunk):
            if message.type != "audit":
                continue
            event = json.loads(message.data)
            seq = event.get("seq")
            if isinstance(seq, int):
                if self.last_seq is not None and seq <= self.last_seq:
                    continue
                self.last_seq = seq
            events.append(event)
        if self._parser.last_event_id:
            self.last_id = self._parser.last_event_id
        if self._parser.retry_ms is not None:
            self.retry = min(self._parser.retry_ms / 1000, 30.0)
        return events

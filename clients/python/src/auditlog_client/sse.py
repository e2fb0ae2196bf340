"""Server-Sent Events (``text/event-stream``) as the WHATWG HTML standard parses them, fed
bytes as they arrive: lines end in CRLF, CR or LF; a blank line dispatches the event
gathered so far; ``id`` persists from event to event (it is what ``Last-Event-ID`` carries on
reconnection); an event without data is not dispatched."""

from __future__ import annotations

import re
from dataclasses import dataclass

_LINE_END = re.compile(rb"\r\n|\r|\n")
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class ServerEvent:
    type: str
    data: bytes
    id: str | None


class EventStreamParser:
    def __init__(self) -> None:
        self._held = bytearray()
        self._started = False
        self._after_cr = False
        self._data: list[bytes] = []
        self._type = ""
        self._id: str | None = None
        #: The last event id seen (a block with only an ``id`` sets it too).
        self.last_event_id: str | None = None
        #: The reconnection delay of the last ``retry`` field, in milliseconds.
        self.retry_ms: int | None = None

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
            del held[:1]
        self._after_cr = False
        events: list[ServerEvent] = []
        start = 0
        for match in _LINE_END.finditer(held):
            event = self._line(bytes(held[start : match.start()]))
            if event is not None:
                events.append(event)
            start = match.end()
        self._after_cr = 0 < start == len(held) and held[start - 1] == 0x0D
        del held[:start]
        return events

    def _line(self, line: bytes) -> ServerEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(b":"):
            return None
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

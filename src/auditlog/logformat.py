"""How ``auditlog serve`` and its search indexer write their logs: text lines (the default)
or JSON lines for collectors (``log_format``).

``json`` writes one JSON object per line to standard error: ``time`` (RFC 3339, UTC,
microseconds), ``level``, ``logger``, ``message``, and, for a line written while a request
was served, ``request_id``, ``method``, ``route`` (the route's pattern), ``client`` and, once
authenticated, ``credential_id``; an access line adds ``status`` and ``duration_ms``; an error
with a traceback adds ``exception``. uvicorn's own lines take the same form. Nothing secret is
added: no header, no token, no body (the credential appears by its public id).
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from auditlog.requestcontext import current

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Fields an access line carries on its record (``auditlog.server.accesslog``).
_RECORD_FIELDS = ("status", "duration_ms")


class JsonFormatter(logging.Formatter):
    """A log record as one line of JSON."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request = current()
        if request is not None:
            line["request_id"] = request.request_id
            line["method"] = request.method
            line["route"] = request.route
            line["client"] = request.client
            if request.credential_id is not None:
                line["credential_id"] = request.credential_id
        for name in _RECORD_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(line, default=str).decode()


def configure(level: str, log_format: str) -> None:
    """Set up the process's logging on standard error: ``time LEVEL logger: message`` lines,
    or (``json``) one JSON object per line, from every logger, uvicorn's too when it is
    given no configuration of its own (``log_config=None``)."""
    numeric = getattr(logging, level.upper())
    if log_format != "json":
        logging.basicConfig(level=numeric, format=TEXT_FORMAT)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)

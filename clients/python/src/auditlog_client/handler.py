"""A ``logging.Handler`` that turns log records carrying an ``audit`` extra into events.

    logger.info("invoice paid", extra={"audit": {"type": "invoice.paid", "actor": "alice",
                                                  "subject": "inv-42", "data": {"amount": 120}}})

The ``audit`` mapping takes ``log``'s keywords (``type``, ``actor``, ``subject``,
``outcome``, ``data``, ``id``, ``time``, ``source``); ``type`` defaults to the record's
message. The record's message, level and logger name are added to ``data`` under ``log``,
and the record's time is the event's time unless ``time`` is given. Records without
``audit`` are ignored, so the handler can sit on the root logger.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from auditlog_client.base import ClientBase

_FIELDS = ("actor", "subject", "outcome", "id", "time", "source")


class AuditHandler(logging.Handler):
    def __init__(self, client: ClientBase, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.client = client

    def emit(self, record: logging.LogRecord) -> None:
        audit = getattr(record, "audit", None)
        if not isinstance(audit, Mapping):
            return
        try:
            message = record.getMessage()
            data: dict[str, Any] = dict(audit.get("data") or {})
            data.setdefault(
                "log", {"message": message, "level": record.levelname, "logger": record.name}
            )
            fields = {name: audit[name] for name in _FIELDS if audit.get(name) is not None}
            fields.setdefault("time", record.created)
            self.client.log(str(audit.get("type") or message), data=data, **fields)
        except Exception:
            self.handleError(record)

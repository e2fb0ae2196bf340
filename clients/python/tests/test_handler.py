"""The logging handler: records with an ``audit`` extra become events; others are ignored."""

from __future__ import annotations

import logging

from auditlog_client import AuditHandler, Client

from .conftest import Live
from .helpers import stored


def test_records_with_an_audit_extra_become_events(live: Live, token: str) -> None:
    logger = logging.getLogger("tests.auditlog_client.handler")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    with Client(live.url, token) as client:
        handler = AuditHandler(client)
        logger.addHandler(handler)
        try:
            logger.info("just a log line")
            logger.info(
                "invoice %s paid",
                "inv-42",
                extra={
                    "audit": {
                        "type": "invoice.paid",
                        "actor": "alice",
                        "subject": {"id": "inv-42", "type": "invoice"},
                        "outcome": "success",
                        "data": {"amount": 120},
                    }
                },
            )
            logger.warning("login refused", extra={"audit": {"actor": "mallory"}})
            assert client.flush(60)
        finally:
            logger.removeHandler(handler)
    events = stored(live.url, token)
    assert [e["type"] for e in events] == ["invoice.paid", "login refused"]
    paid, refused = events
    assert paid["actor"] == {"id": "alice"}
    assert paid["subject"] == {"id": "inv-42", "type": "invoice"}
    assert paid["data"] == {
        "amount": 120,
        "log": {"message": "invoice inv-42 paid", "level": "INFO", "logger": logger.name},
    }
    assert refused["data"]["log"]["level"] == "WARNING"

"""auditlog_client: the Python client of the auditlog service.

    from auditlog_client import Client
    client = Client("https://audit.example.com", token)
    client.log("invoice.paid", actor="alice", subject={"id": "inv-42", "type": "invoice"},
               outcome="success", data={"amount": 120})

See the README of this distribution for everything else.
"""

from auditlog_client.aclient import AsyncClient
from auditlog_client.client import Client
from auditlog_client.envelope import new_id
from auditlog_client.errors import (
    APIError,
    AuditlogError,
    ClosedError,
    ConflictError,
    NotFoundError,
    QueueFullError,
    RetryableError,
    TransportError,
    VerificationError,
)
from auditlog_client.handler import AuditHandler
from auditlog_client.note import Checkpoint, VerifierKey, verify_checkpoint
from auditlog_client.receipts import Receipt, verify_inclusion
from auditlog_client.retry import RetryPolicy
from auditlog_client.sender import Failure, Stats

__all__ = [
    "APIError",
    "AsyncClient",
    "AuditHandler",
    "AuditlogError",
    "Checkpoint",
    "Client",
    "ClosedError",
    "ConflictError",
    "Failure",
    "NotFoundError",
    "QueueFullError",
    "Receipt",
    "RetryPolicy",
    "RetryableError",
    "Stats",
    "TransportError",
    "VerificationError",
    "VerifierKey",
    "new_id",
    "verify_checkpoint",
    "verify_inclusion",
]
__version__ = "0.1.0"

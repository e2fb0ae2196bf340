"""auditlog: a durable, tamper-evident audit log service."""

__version__ = "0.1.0"

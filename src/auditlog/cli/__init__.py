"""The ``auditlog`` command line."""

"""``auditlog witness``: a C2SP tlog-witness v1 server, a process of its own.

A witness cosigns the checkpoints of the logs it follows once it has checked that each one is
consistent with the last it cosigned for that log, so that a log cannot show different
histories to different people without one of them being refused here. The logs and their
keys come from a C2SP tlog-policy file; the witness's key is an Ed25519 cosigner key
(C2SP tlog-cosignature v1).

``keys``      the witness key file
``verifier``  the logs followed (from a tlog-policy file), and the decision for one
              add-checkpoint request, pure
``state``     the latest cosigned checkpoint of each log, and the refusals, in SQLite
``app``       the HTTP interface (ASGI): add-checkpoint and the monitoring route

It shares nothing with the audit log service but ``auditlog.integrity``.
"""

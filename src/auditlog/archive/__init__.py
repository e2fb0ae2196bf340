"""Archives of a tenant's log (API.md §14): a self-contained file that proves, offline, that it
holds exactly the events of seqs ``first_seq`` to ``end_seq - 1`` of that log.

``format``  the file: one ZIP of ``manifest.json``, ``events.ndjson``, ``checkpoint`` and
            ``proof.json``, written and read (the events streamed, in constant memory)
``check``   the offline check of an archive with the log's public key alone
``make``    an archive made from a ``Store``, checked before it is put in place and recorded

See docs/design/archives.md for why the prefix hashes and a consistency proof to a signed
checkpoint prove the seq range.
"""

from __future__ import annotations

from auditlog.errors import AuditlogError

__all__ = ["ArchiveError", "ArchiveFormatError"]


class ArchiveError(AuditlogError):
    """An archive cannot be made as asked (an empty range, a range no checkpoint covers yet,
    a file already there); the message says why."""


class ArchiveFormatError(ArchiveError):
    """A file is not an intact archive: not a ZIP, a member missing, damaged or malformed.

    ``seq`` is the first seq concerned, where the problem is within the events member.
    """

    def __init__(self, message: str, seq: int | None = None) -> None:
        super().__init__(message)
        self.seq = seq

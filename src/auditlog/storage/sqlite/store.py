"""The SQLite store: WAL, one writer thread, reader threads, and a search indexer process.

Concurrency model (the one place it is written down for this backend):

* One write connection, used only by one dedicated writer thread, to which the group-commit
  writer hands each group. The thread spends most of a commit in SQLite's C code and in the
  flush to disk with the GIL released, so the event loop keeps parsing and validating the next
  group meanwhile. Rows go in as multi-row INSERTs: every SQLite call gives up the GIL and has
  to win it back from the busy loop, so the writer makes few calls per group.
* Queries run on a pool of reader threads, each with its own connection; in WAL mode readers
  see the last committed state and never block the writer nor each other.
* Point lookups the request path needs (an event by id, an API key on a cache miss) use one
  more read connection on the loop's thread: each is a single B-tree probe.
* ``BEGIN IMMEDIATE`` takes the database write lock at the start of each transaction, so a
  second process (``auditlog keys revoke`` while the server runs) is serialised by SQLite, and
  ``seq`` is read from and written to the ``tenants`` row inside that same transaction, so it
  stays gap-free whoever writes.
* ``add_checkpoint`` stores a checkpoint and its leaf of the tenants log in one such
  transaction, the leaf's index one past the largest: indexes are gap-free in store order.
* The search index is built by a separate process (``indexer``) in a database file of its own
  (``<path>-terms``), attached to every reader connection as ``t``.
"""

from __future__ import annotations

from auditlog.storage.sqlite.base import SQLiteBase
from auditlog.storage.sqlite.credentials import CredentialsPart
from auditlog.storage.sqlite.events import EventsPart
from auditlog.storage.sqlite.merkle import MerklePart
from auditlog.storage.sqlite.pruning import PruningPart
from auditlog.storage.sqlite.retention import RetentionPart
from auditlog.storage.sqlite.streams import StreamsPart
from auditlog.storage.sqlite.tenantslog import TenantsLogPart


class SQLiteStore(
    EventsPart,
    CredentialsPart,
    MerklePart,
    StreamsPart,
    RetentionPart,
    PruningPart,
    TenantsLogPart,
    SQLiteBase,
):
    """``Store`` on one SQLite database file (and its search index beside it).

    ``indexer``: ``"process"`` runs the search indexer as a child process (what ``serve``
    does); ``"off"`` leaves indexing to whoever calls ``index_pending`` (commands and tests).
    Queries are complete either way: unindexed events are checked directly.
    """

"""The SQLite store: WAL, one write connection, reader threads, and a search indexer process.

Concurrency model (the one place it is written down for this backend):

* One write connection, used by one thread at a time. A group commit, and the integrator's
  round, run on the event loop's thread when the dedicated writer thread has no work and the
  write lock is free at once (``base.SQLiteBase._transact``): every SQLite call gives up the
  GIL, and from a second thread each must win it back from the busy loop, which costs more
  than the loop's pause for the flush. Everything else, and a commit while the writer thread
  has work or another process holds the lock, runs on the writer thread in submission order.
  Rows go in as multi-row INSERTs, so a group makes few SQLite calls.
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

"""The PostgreSQL store: several stateless service processes on one database.

Concurrency model (the one place it is written down for this backend):

* Each process keeps a pool of connections to the primary (``postgres_pool_size``) for writes,
  reads by id, credentials and the Merkle tree, and a second, small pool for queries, on the
  primary or on a read replica (``postgres_read_url``), whose statements stop after
  ``query_timeout_ms``.
* A group commit is one transaction. It first locks the row of each tenant it writes to, in
  tenant order, by advancing the tenant's ``next_seq`` in place; only then does it look up
  the ids the group may repeat, assign seqs, copy the rows in with binary COPY and commit.
  The row lock is held until the commit, so the transactions that write to one tenant, from
  any number of processes, run one after another: each sees every event committed before it,
  takes the seqs that follow them, and becomes visible before the next one can commit. Seqs
  are therefore gap-free in commit order, and a rolled-back transaction gives its seqs back
  (docs/design/postgres.md says why, and what it costs).
* ``add_checkpoint`` stores a checkpoint (under the tenant's advisory lock) and its leaf of
  the tenants log in one transaction, the leaf's index taken by advancing the one row of
  ``tenants_log`` in place as its last step: that row lock is held until the commit, so the
  checkpoints of every tenant, from any number of processes, take indexes one after another,
  gap-free in commit order, and a rolled-back transaction gives its index back.
* API keys are cached per process; every revocation sends a notification (``NOTIFY``) in its
  transaction, and each process listens for them and drops the key from its cache. While the
  listening connection is down, nothing is cached.
"""

from __future__ import annotations

from auditlog.storage.postgres.base import PostgresBase
from auditlog.storage.postgres.credentials import CredentialsPart
from auditlog.storage.postgres.events import EventsPart
from auditlog.storage.postgres.merkle import MerklePart
from auditlog.storage.postgres.pruning import PruningPart
from auditlog.storage.postgres.retention import RetentionPart
from auditlog.storage.postgres.streams import StreamsPart
from auditlog.storage.postgres.tenantslog import TenantsLogPart


class PostgresStore(
    EventsPart,
    CredentialsPart,
    MerklePart,
    StreamsPart,
    RetentionPart,
    PruningPart,
    TenantsLogPart,
    PostgresBase,
):
    """``Store`` on a PostgreSQL database (``postgresql://`` URL).

    ``serving``: the store backs a running service, so it also keeps the event partitions made
    ahead of time and listens for key revocations; commands leave both off.
    """

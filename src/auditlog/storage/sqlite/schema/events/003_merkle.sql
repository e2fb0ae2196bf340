-- The Merkle tree of each tenant's log, kept by the integrator (auditlog.service.integrator).

-- Every perfect subtree the integrator has completed: 2^level leaves from idx * 2^level on.
-- Level 0 holds the leaf hashes, so node (0, i) commits to the event with seq i. A proof reads
-- O(log n) of these by primary key. A node never changes once written (INSERT OR IGNORE).
CREATE TABLE tree_nodes (
    tenant_id INTEGER NOT NULL,
    level     INTEGER NOT NULL,
    idx       INTEGER NOT NULL,
    hash      BLOB NOT NULL,
    PRIMARY KEY (tenant_id, level, idx)
) WITHOUT ROWID;

-- Every signed checkpoint, by tree size. Sizes only grow: a checkpoint is inserted only when
-- it is larger than the tenant's latest, under the write lock. timestamp_us is when it was
-- signed (outside the signed note). note is the C2SP signed note, exactly as served.
CREATE TABLE checkpoints (
    tenant_id    INTEGER NOT NULL,
    size         INTEGER NOT NULL,
    root_hash    BLOB NOT NULL,
    timestamp_us INTEGER NOT NULL,
    note         TEXT NOT NULL,
    PRIMARY KEY (tenant_id, size)
) WITHOUT ROWID;

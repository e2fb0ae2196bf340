-- The tenants log (auditlog.service.integrator.tenants_tree): one Merkle log per database whose leaves are
-- the tenants' checkpoints. add_checkpoint gives each checkpoint it stores the next index, in
-- the same transaction, under the write lock: indexes are gap-free in the order stored. A leaf
-- names its checkpoint by (tenant_id, size), whose note is in checkpoints.
CREATE TABLE tenants_leaves (
    idx       INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL,
    size      INTEGER NOT NULL
);
-- A tenant's newest leaf below a given index (tenants_leaf).
CREATE INDEX tenants_leaves_tenant ON tenants_leaves (tenant_id, idx);

-- The checkpoints stored before this migration, as the first leaves: in the order they were
-- signed (timestamp_us), ties by tenant and size.
INSERT INTO tenants_leaves (idx, tenant_id, size)
SELECT row_number() OVER (ORDER BY timestamp_us, tenant_id, size) - 1, tenant_id, size
FROM checkpoints;

-- The tenants log's tree nodes, as tree_nodes holds a tenant's: written once, never changed.
CREATE TABLE tenants_nodes (
    level INTEGER NOT NULL,
    idx   INTEGER NOT NULL,
    hash  BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;

-- The tenants log's own checkpoints, by size (only larger ones are stored). note is the signed
-- note; cosigned the same note with the witnesses' cosignature lines, once they answered;
-- quorum is 1 once the cosignatures met the policy's quorum, and stays 1.
CREATE TABLE tenants_checkpoints (
    size         INTEGER PRIMARY KEY,
    root_hash    BLOB NOT NULL,
    timestamp_us INTEGER NOT NULL,
    note         TEXT NOT NULL,
    cosigned     TEXT,
    quorum       INTEGER NOT NULL DEFAULT 0
);
-- The largest witnessed one (quorum = 1) without reading past those that never were.
CREATE INDEX tenants_checkpoints_witnessed ON tenants_checkpoints (size) WHERE quorum = 1;

-- What the service last heard from each witness of its policy (auditlog.storage.base.WitnessState).
CREATE TABLE witness_states (
    name       TEXT PRIMARY KEY,
    url        TEXT NOT NULL,
    size       INTEGER NOT NULL,
    error      TEXT NOT NULL,
    refusals   INTEGER NOT NULL,
    updated_us INTEGER NOT NULL
) WITHOUT ROWID;

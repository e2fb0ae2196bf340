-- The tenants log (auditlog.service.integrator.tenants_tree): one Merkle log per schema whose leaves are
-- the tenants' checkpoints. add_checkpoint gives each checkpoint it stores the next index in
-- the same transaction, taken from the one row of tenants_log: the row lock it takes is held
-- until the commit, so the writers of every process take indexes one after another, gap-free,
-- and a rolled-back transaction gives its index back.
CREATE TABLE tenants_log (
    one  boolean PRIMARY KEY DEFAULT true CHECK (one),
    size bigint NOT NULL
);

-- A leaf names its checkpoint by (tenant_id, size), whose note is in checkpoints.
CREATE TABLE tenants_leaves (
    idx       bigint PRIMARY KEY,
    tenant_id integer NOT NULL,
    size      bigint NOT NULL
);
-- A tenant's newest leaf below a given index (tenants_leaf).
CREATE INDEX tenants_leaves_tenant ON tenants_leaves (tenant_id, idx);

-- The checkpoints stored before this migration, as the first leaves: in the order they were
-- signed (timestamp_us), ties by tenant and size. No checkpoint is added meanwhile.
LOCK TABLE checkpoints IN SHARE MODE;
INSERT INTO tenants_leaves (idx, tenant_id, size)
SELECT row_number() OVER (ORDER BY timestamp_us, tenant_id, size) - 1, tenant_id, size
FROM checkpoints;
INSERT INTO tenants_log (one, size) SELECT true, count(*) FROM tenants_leaves;

-- The tenants log's tree nodes, as tree_nodes holds a tenant's: written once, never changed.
CREATE TABLE tenants_nodes (
    level smallint NOT NULL,
    idx   bigint NOT NULL,
    hash  bytea NOT NULL,
    PRIMARY KEY (level, idx)
);

-- The tenants log's own checkpoints, by size (only larger ones are stored). note is the signed
-- note; cosigned the same note with the witnesses' cosignature lines, once they answered;
-- quorum is set once the cosignatures met the policy's quorum, and stays set.
CREATE TABLE tenants_checkpoints (
    size         bigint PRIMARY KEY,
    root_hash    bytea NOT NULL,
    timestamp_us bigint NOT NULL,
    note         text NOT NULL,
    cosigned     text,
    quorum       boolean NOT NULL DEFAULT false
);
-- The largest witnessed one without reading past those that never were.
CREATE INDEX tenants_checkpoints_witnessed ON tenants_checkpoints (size) WHERE quorum;

-- What the service last heard from each witness of its policy (auditlog.storage.base.WitnessState).
CREATE TABLE witness_states (
    name       text PRIMARY KEY,
    url        text NOT NULL,
    size       bigint NOT NULL,
    error      text NOT NULL,
    refusals   integer NOT NULL,
    updated_us bigint NOT NULL
);

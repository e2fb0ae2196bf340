-- Tenants get a small integer id; the tenant's log size is the next seq to assign.
CREATE TABLE tenants (
    tenant_id INTEGER PRIMARY KEY,
    name      TEXT NOT NULL UNIQUE,
    size      INTEGER NOT NULL DEFAULT 0
);

-- One row per event. key = tenant_id << 40 | seq: the table is clustered by (tenant, seq), so
-- a tenant's log is one contiguous, append-only range of the primary key, paging by seq is a
-- key range scan, and the full-text rowid of an event is its key.
CREATE TABLE events (
    key       INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL,
    id        TEXT NOT NULL,
    type      TEXT NOT NULL,
    time_us   INTEGER NOT NULL,
    body      BLOB NOT NULL
);
CREATE UNIQUE INDEX events_id ON events (tenant_id, id);
CREATE INDEX events_type ON events (tenant_id, type, key, time_us);
CREATE INDEX events_time ON events (tenant_id, time_us);

CREATE TABLE api_keys (
    key_id      TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL,
    scopes      TEXT NOT NULL,
    secret_hash BLOB NOT NULL,
    created_us  INTEGER NOT NULL,
    revoked_us  INTEGER
);
CREATE INDEX api_keys_tenant ON api_keys (tenant, created_us);

-- The PostgreSQL schema of auditlog. Applied by ``auditlog migrate`` (and at every start) under
-- an advisory lock, in one transaction per numbered file; the applied numbers are kept in
-- schema_migrations.

CREATE TABLE tenants (
    tenant_id  integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text NOT NULL UNIQUE,
    -- The tenant's next seq, which is also the size of its log. The row is the tenant's
    -- serialisation point: every append locks it first (docs/design/postgres.md).
    next_seq   bigint NOT NULL DEFAULT 0
);

-- One row per committed event. ``body`` holds the stored bytes exactly as the API returns and
-- hashes them; the other columns exist to find events and are derived from the body.
CREATE TABLE events (
    tenant_id   integer NOT NULL,
    seq         bigint NOT NULL,
    -- Commit time in microseconds since the epoch: the partition key.
    received_us bigint NOT NULL,
    id          text NOT NULL,
    type        text NOT NULL,
    time_us     bigint NOT NULL,
    actor       text NOT NULL,
    subject     text,
    source      text NOT NULL,
    outcome     text,
    data        jsonb NOT NULL,
    -- The distinct words of the event's searchable text (auditlog.model.text).
    words       text[] NOT NULL,
    -- Whether ``data`` holds an array directly inside an array, which JSON path's lax mode
    -- does not step through: conditions on such events are checked outside SQL.
    nested      boolean NOT NULL,
    body        bytea NOT NULL,
    PRIMARY KEY (tenant_id, seq, received_us)
) PARTITION BY RANGE (received_us);

-- Rows whose month has no partition yet land here; monthly partitions are made ahead of time
-- by the service, so this stays empty.
CREATE TABLE events_default PARTITION OF events DEFAULT;

CREATE INDEX events_id ON events (tenant_id, id);
CREATE INDEX events_type ON events (tenant_id, type, seq);
CREATE INDEX events_actor ON events (tenant_id, actor, seq);
CREATE INDEX events_subject ON events (tenant_id, subject, seq) WHERE subject IS NOT NULL;
CREATE INDEX events_source ON events (tenant_id, source, seq);
CREATE INDEX events_time ON events (tenant_id, time_us);
CREATE INDEX events_nested ON events (tenant_id, seq) WHERE nested;
CREATE INDEX events_data ON events USING gin (data jsonb_path_ops);
CREATE INDEX events_words ON events USING gin (array_to_tsvector(words));

CREATE TABLE api_keys (
    key_id      text PRIMARY KEY,
    tenant      text NOT NULL,
    name        text NOT NULL,
    scopes      text NOT NULL,
    secret_hash bytea NOT NULL,
    created_us  bigint NOT NULL,
    revoked_us  bigint
);
CREATE INDEX api_keys_tenant ON api_keys (tenant, created_us);

CREATE TABLE users (
    username      text PRIMARY KEY,
    tenant        text NOT NULL,
    scopes        text NOT NULL,
    password_hash text NOT NULL,
    created_us    bigint NOT NULL
);

CREATE TABLE secrets (
    name       text PRIMARY KEY,
    value      bytea NOT NULL,
    created_us bigint NOT NULL
);

CREATE TABLE tree_nodes (
    tenant_id integer NOT NULL,
    level     smallint NOT NULL,
    idx       bigint NOT NULL,
    hash      bytea NOT NULL,
    PRIMARY KEY (tenant_id, level, idx)
);

CREATE TABLE checkpoints (
    tenant_id    integer NOT NULL,
    size         bigint NOT NULL,
    root_hash    bytea NOT NULL,
    timestamp_us bigint NOT NULL,
    note         text NOT NULL,
    PRIMARY KEY (tenant_id, size)
);

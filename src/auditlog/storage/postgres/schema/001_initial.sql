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

-- The search index: per event, what the GIN indexes find it by. Built after the commit by the
-- search indexer (auditlog.storage.postgres.indexer), in seq order, up to search_progress;
-- queries check the events above that mark directly.
CREATE TABLE event_search (
    tenant_id   integer NOT NULL,
    seq         bigint NOT NULL,
    received_us bigint NOT NULL,
    data        jsonb NOT NULL,
    -- The distinct words of the event's searchable text (auditlog.model.text), separated
    -- by spaces (a word never holds one).
    words       text NOT NULL,
    -- The paths of ``data`` (keys joined by dots) where an array holds an array directly,
    -- which JSON path's lax mode does not step through: an event is a candidate for every
    -- condition on such a path or below it. NULL when there are none.
    nested      text[],
    PRIMARY KEY (tenant_id, seq)
);
CREATE INDEX event_search_nested ON event_search USING gin (nested) WHERE nested IS NOT NULL;
CREATE INDEX event_search_data ON event_search USING gin (data jsonb_path_ops);
CREATE INDEX event_search_words ON event_search
    USING gin (array_to_tsvector(string_to_array(words, ' ')));

CREATE TABLE search_progress (
    tenant_id integer PRIMARY KEY,
    -- Every event of the tenant with a smaller seq is in event_search.
    next_seq  bigint NOT NULL
);

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

-- The fast path of a group commit: one call that takes each tenant's serialisation point,
-- checks that no id the caller planned as new was committed meanwhile, and inserts the rows
-- with their seqs, so the tenant rows stay locked for this call and the writing of its commit
-- record only: never across round trips to the client, nor across the flush to disk.
--
-- p_tenants: the group's tenant ids, each once, in the order their rows are locked (ascending).
-- p_rows: one JSON array per new event, in seq order within each tenant:
--   [tenant (index into p_tenants, 0-based), id, type, time_us, actor, subject, source,
--    outcome, head, tail]
--   where the stored body is head || seq || tail (the event's canonical bytes split around
--   its seq).
-- p_given: [[tenant_id, id], ...] the producer-chosen ids among the rows.
-- Returns each tenant's first seq, in the order of p_tenants. Raises SQLSTATE AL409 (and the
-- transaction rolls back) when an id of p_given is already stored: the caller then plans the
-- group again under the locks.
CREATE FUNCTION auditlog_append(
    p_tenants integer[], p_received bigint, p_rows jsonb, p_given jsonb
) RETURNS bigint[]
LANGUAGE plpgsql AS $$
DECLARE
    counts bigint[];
    bases bigint[] := '{}';
    base bigint;
    i integer;
BEGIN
    -- Commit without waiting for the WAL flush, so the tenant rows are unlocked as soon as
    -- the commit record is written; the caller acknowledges nothing before it has made a
    -- later synchronous commit, whose flush covers this one (docs/design/postgres.md).
    PERFORM set_config('synchronous_commit', 'off', true);
    SELECT array_agg(coalesce(c.n, 0) ORDER BY t.i) INTO counts
    FROM generate_subscripts(p_tenants, 1) AS t(i)
    LEFT JOIN (
        SELECT (r->>0)::integer + 1 AS i, count(*) AS n
        FROM jsonb_array_elements(p_rows) AS r GROUP BY 1
    ) AS c ON c.i = t.i;
    FOR i IN 1 .. cardinality(p_tenants) LOOP
        UPDATE tenants SET next_seq = next_seq + counts[i]
        WHERE tenant_id = p_tenants[i]
        RETURNING next_seq - counts[i] INTO base;
        IF base IS NULL THEN
            RAISE EXCEPTION 'no tenant with id %', p_tenants[i];
        END IF;
        bases := bases || base;
    END LOOP;
    -- A new statement, so a new snapshot: it sees every commit made before the locks above
    -- were granted.
    IF jsonb_array_length(p_given) > 0 AND EXISTS (
        SELECT 1 FROM jsonb_array_elements(p_given) AS g
        JOIN events AS e ON e.tenant_id = (g->>0)::integer AND e.id = g->>1
    ) THEN
        RAISE EXCEPTION USING ERRCODE = 'AL409', MESSAGE = 'an id of the group is already stored';
    END IF;
    INSERT INTO events (tenant_id, seq, received_us, id, type, time_us, actor, subject, source,
                        outcome, body)
    SELECT p_tenants[x.t + 1], x.seq, p_received, x.r->>1, x.r->>2, (x.r->>3)::bigint,
           x.r->>4, x.r->>5, x.r->>6, x.r->>7,
           convert_to((x.r->>8) || x.seq::text || (x.r->>9), 'UTF8')
    FROM (
        SELECT r, (r->>0)::integer AS t,
               bases[(r->>0)::integer + 1]
                 + row_number() OVER (PARTITION BY (r->>0)::integer ORDER BY ord) - 1 AS seq
        FROM jsonb_array_elements(p_rows) WITH ORDINALITY AS e(r, ord)
    ) AS x;
    RETURN bases;
END
$$;

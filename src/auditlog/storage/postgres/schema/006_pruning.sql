-- Pruning (auditlog.service.pruning): each tenant's horizon, its first kept seq. Events below
-- it are gone for every read from the moment it moves; their rows are then swept. A table of
-- its own, so that moving it never waits on the tenant row that every append locks.
CREATE TABLE horizons (
    tenant_id integer PRIMARY KEY,
    horizon   bigint NOT NULL
);

-- The ids of swept events, as 64-bit hashes (auditlog.model.retention.id_hash), so that a
-- pruned event's id answers "pruned" rather than "never stored", without keeping the id.
CREATE TABLE pruned_ids (
    tenant_id integer NOT NULL,
    id_hash   bigint NOT NULL,
    PRIMARY KEY (tenant_id, id_hash)
);

-- Archives that auditlog archive wrote and checked: pruning removes only what they cover.
CREATE TABLE archives (
    tenant          text NOT NULL,
    sha256          text NOT NULL,
    first_seq       bigint NOT NULL,
    end_seq         bigint NOT NULL,
    location        text NOT NULL,
    checkpoint_size bigint NOT NULL,
    created_us      bigint NOT NULL,
    created_by      text NOT NULL,
    PRIMARY KEY (tenant, sha256)
);

-- The numbers of pruned events are removed by seq range, as their search rows are.
CREATE INDEX event_numbers_seq ON event_numbers (tenant_id, seq);

-- The id hash of auditlog.model.retention.id_hash, for the rows of a dropped partition.
CREATE FUNCTION auditlog_id_hash(p_id text) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT ('x' || substr(encode(sha256(convert_to(p_id, 'UTF8')), 'hex'), 1, 16))::bit(64)::bigint
$$;

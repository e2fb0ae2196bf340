-- The group commit's function again, taking the new rows as one array per column (bound in
-- binary by the caller) instead of one JSON document, and each tenant's count and each row's
-- place among its tenant's rows as the caller knows them: the server no longer parses the
-- group's JSON, counts the rows per tenant (a join and an aggregate) nor numbers them (a window
-- function). With the call below, which also makes the flush barrier, PostgreSQL's CPU per
-- event of a group commit of 8 events fell from 78 to 64 µs (bench/RESULTS.md §14).
-- What it does under the locks is unchanged (see 001_initial.sql and docs/design/postgres.md).
-- The JSON version stays, for processes of the previous version during an upgrade.
--
-- p_tenants: the group's tenant ids, each once, in the order their rows are locked (ascending);
-- p_counts: the number of new rows of each.
-- Per new row, in one array each: p_tenant (its tenant's index into p_tenants, 0-based),
-- p_offset (its place among its tenant's rows, 0-based: its seq is the tenant's first seq plus
-- this), then its columns; the stored body is head || seq || tail.
-- p_given_tenants, p_given_ids: the producer-chosen ids among the rows, with their tenant ids.
-- Returns each tenant's first seq, in the order of p_tenants; raises SQLSTATE AL409 (and the
-- transaction rolls back) when a given id is already stored.
CREATE FUNCTION auditlog_append(
    p_tenants integer[], p_counts integer[], p_received bigint,
    p_tenant integer[], p_offset integer[], p_ids text[], p_types text[], p_times bigint[],
    p_actors text[], p_subjects text[], p_sources text[], p_outcomes text[],
    p_heads bytea[], p_tails bytea[],
    p_given_tenants integer[], p_given_ids text[]
) RETURNS bigint[]
LANGUAGE plpgsql AS $$
DECLARE
    bases bigint[] := '{}';
    base bigint;
    i integer;
BEGIN
    -- Commit without waiting for the WAL flush (see 001_initial.sql).
    PERFORM set_config('synchronous_commit', 'off', true);
    FOR i IN 1 .. cardinality(p_tenants) LOOP
        UPDATE tenants SET next_seq = next_seq + p_counts[i]
        WHERE tenant_id = p_tenants[i]
        RETURNING next_seq - p_counts[i] INTO base;
        IF base IS NULL THEN
            RAISE EXCEPTION 'no tenant with id %', p_tenants[i];
        END IF;
        bases := bases || base;
    END LOOP;
    -- A new statement, so a new snapshot: it sees every commit made before the locks above
    -- were granted.
    IF cardinality(p_given_ids) > 0 AND EXISTS (
        SELECT 1 FROM unnest(p_given_tenants, p_given_ids) AS g (tenant_id, id)
        JOIN events AS e ON e.tenant_id = g.tenant_id AND e.id = g.id
    ) THEN
        RAISE EXCEPTION USING ERRCODE = 'AL409', MESSAGE = 'an id of the group is already stored';
    END IF;
    INSERT INTO events (tenant_id, seq, received_us, id, type, time_us, actor, subject, source,
                        outcome, body)
    SELECT p_tenants[r.t + 1], bases[r.t + 1] + r.o, p_received, r.id, r.type, r.time_us,
           r.actor, r.subject, r.source, r.outcome,
           r.head || convert_to((bases[r.t + 1] + r.o)::text, 'UTF8') || r.tail
    FROM unnest(p_tenant, p_offset, p_ids, p_types, p_times, p_actors, p_subjects, p_sources,
                p_outcomes, p_heads, p_tails)
         AS r (t, o, id, type, time_us, actor, subject, source, outcome, head, tail);
    RETURN bases;
END
$$;

-- The same append followed by the flush barrier, in one call (one round trip): the append's
-- transaction commits first, without waiting for the flush, which unlocks the tenant rows;
-- then a second transaction writes a transactional logical message and commits synchronously
-- when the call ends, so the call returns only once the WAL is flushed past both commits. A
-- procedure may commit in between; it must be called outside a transaction block (the pool's
-- connections are in autocommit mode). If the append fails, nothing was committed.
CREATE PROCEDURE auditlog_append_durably(
    p_tenants integer[], p_counts integer[], p_received bigint,
    p_tenant integer[], p_offset integer[], p_ids text[], p_types text[], p_times bigint[],
    p_actors text[], p_subjects text[], p_sources text[], p_outcomes text[],
    p_heads bytea[], p_tails bytea[],
    p_given_tenants integer[], p_given_ids text[],
    INOUT p_bases bigint[] DEFAULT NULL
)
LANGUAGE plpgsql AS $$
BEGIN
    p_bases := auditlog_append(p_tenants, p_counts, p_received, p_tenant, p_offset, p_ids,
                               p_types, p_times, p_actors, p_subjects, p_sources, p_outcomes,
                               p_heads, p_tails, p_given_tenants, p_given_ids);
    COMMIT;
    PERFORM pg_logical_emit_message(true, 'auditlog', '');
END
$$;

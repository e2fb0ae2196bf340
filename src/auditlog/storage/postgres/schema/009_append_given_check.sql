-- auditlog_append (008_append_columns.sql) with its check of the given ids as a statement of
-- its own, run only when the group has given ids: as one condition with the count, the check
-- was planned and started by the executor for every group, most of which give none.
CREATE OR REPLACE FUNCTION auditlog_append(
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
    IF cardinality(p_given_ids) > 0 THEN
        IF EXISTS (
            SELECT 1 FROM unnest(p_given_tenants, p_given_ids) AS g (tenant_id, id)
            JOIN events AS e ON e.tenant_id = g.tenant_id AND e.id = g.id
        ) THEN
            RAISE EXCEPTION USING ERRCODE = 'AL409',
                MESSAGE = 'an id of the group is already stored';
        END IF;
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

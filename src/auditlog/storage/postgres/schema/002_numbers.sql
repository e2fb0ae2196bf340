-- The numbers index (auditlog.storage.numbers): every number at every indexed path of each
-- indexed event, ordered for ranges, as a double (integers beyond 2^53 rounded; the store
-- checks every candidate, so the index need only hold a superset). Filled by the search
-- indexer with event_search, in the same transaction as the progress.
CREATE TABLE event_numbers (
    tenant_id   integer NOT NULL,
    path        bigint NOT NULL,
    v           double precision NOT NULL,
    seq         bigint NOT NULL,
    received_us bigint NOT NULL,
    PRIMARY KEY (tenant_id, path, v, seq)
);

-- Flags on paths: 's' where some indexed event holds a string (a range then matches strings
-- too, so the numbers alone are not every match), 'm' where some indexed event holds more
-- than one number (the bounds of several conditions then do not make one range).
CREATE TABLE path_flags (
    tenant_id integer NOT NULL,
    path      bigint NOT NULL,
    flag      text NOT NULL,
    PRIMARY KEY (tenant_id, path, flag)
);

-- Events indexed before this migration have no numbers: index everything again. The
-- progress table gets a new name so that a process of the older version still running (whose
-- indexer would index events without their numbers) fails to record any progress, rather than
-- leave events that range queries would miss.
TRUNCATE event_search;
DELETE FROM search_progress;
ALTER TABLE search_progress RENAME TO index_progress;

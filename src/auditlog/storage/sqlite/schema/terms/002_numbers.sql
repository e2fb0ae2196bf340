-- The numbers index (storage/numbers.py): every number at every indexed path of each indexed
-- event, ordered for ranges, and flags on paths: "s" where some indexed event holds a string
-- (a range then matches strings too, so the numbers alone are not every match), "m" where
-- some indexed event holds more than one number. Filled by the indexer with the tokens, in
-- the same transaction as the progress.
-- "v" has no declared type, so that integers stay integers and floats floats.
CREATE TABLE numbers (
    tenant_id INTEGER NOT NULL,
    path      INTEGER NOT NULL,
    v         NOT NULL,
    key       INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, path, v, key)
) WITHOUT ROWID;

CREATE TABLE path_flags (
    tenant_id INTEGER NOT NULL,
    path      INTEGER NOT NULL,
    flag      TEXT NOT NULL,
    PRIMARY KEY (tenant_id, path, flag)
) WITHOUT ROWID;

-- Events indexed before this migration have no numbers: index everything again.
INSERT INTO events_terms (events_terms) VALUES ('delete-all');
DELETE FROM progress;

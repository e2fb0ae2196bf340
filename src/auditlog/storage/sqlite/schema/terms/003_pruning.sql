-- How far each tenant's index entries were removed by pruning: entries of events with a
-- smaller seq are gone, and the indexer never indexes below it (auditlog.storage.sqlite.pruning).
CREATE TABLE pruned (
    tenant_id INTEGER PRIMARY KEY,
    below     INTEGER NOT NULL
);

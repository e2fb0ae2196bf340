-- Pruning (auditlog.service.pruning): each tenant's horizon, its first kept seq. Events below
-- it are gone for every read from the moment it moves; their rows are then swept in small
-- transactions. Tree nodes and checkpoints are never pruned.
ALTER TABLE tenants ADD COLUMN horizon INTEGER NOT NULL DEFAULT 0;

-- The ids of swept events, as 64-bit hashes (auditlog.model.retention.id_hash), so that a
-- pruned event's id answers "pruned" rather than "never stored", without keeping the id.
CREATE TABLE pruned_ids (
    tenant_id INTEGER NOT NULL,
    id_hash   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id_hash)
) WITHOUT ROWID;

-- Archives that auditlog archive wrote and checked (auditlog.model.retention.ArchiveRecord):
-- pruning removes only what they cover.
CREATE TABLE archives (
    tenant          TEXT NOT NULL,
    sha256          TEXT NOT NULL,
    first_seq       INTEGER NOT NULL,
    end_seq         INTEGER NOT NULL,
    location        TEXT NOT NULL,
    checkpoint_size INTEGER NOT NULL,
    created_us      INTEGER NOT NULL,
    created_by      TEXT NOT NULL,
    PRIMARY KEY (tenant, sha256)
) WITHOUT ROWID;

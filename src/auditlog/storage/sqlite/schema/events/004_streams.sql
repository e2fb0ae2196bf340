-- Log streams (auditlog.model.streams): each tenant's standing orders to push its events to a
-- destination. The definition is changed by the admin API; position and the counters only by
-- the process holding the stream's delivery lease (lease_owner until lease_until_us).
CREATE TABLE streams (
    tenant          TEXT NOT NULL,
    stream_id       TEXT NOT NULL,
    name            TEXT NOT NULL,
    destination     TEXT NOT NULL,
    filter          TEXT NOT NULL,
    start_seq       INTEGER NOT NULL,
    paused          INTEGER NOT NULL,
    created_us      INTEGER NOT NULL,
    updated_us      INTEGER NOT NULL,
    position        INTEGER NOT NULL,
    deliveries      INTEGER NOT NULL DEFAULT 0,
    failures        INTEGER NOT NULL DEFAULT 0,
    last_success_us INTEGER,
    last_error      TEXT,
    last_error_us   INTEGER,
    lease_owner     TEXT,
    lease_until_us  INTEGER,
    PRIMARY KEY (tenant, stream_id)
) WITHOUT ROWID;

-- Each tenant's retention policy (keep_seconds NULL: keep everything) and its legal hold,
-- while one is set (auditlog.model.retention). A tenant without a row has neither.
CREATE TABLE retention (
    tenant       TEXT PRIMARY KEY,
    keep_seconds INTEGER,
    updated_us   INTEGER NOT NULL,
    updated_by   TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE legal_holds (
    tenant  TEXT PRIMARY KEY,
    reason  TEXT NOT NULL,
    set_by  TEXT NOT NULL,
    set_us  INTEGER NOT NULL
) WITHOUT ROWID;

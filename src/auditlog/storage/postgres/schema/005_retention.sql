-- Each tenant's retention policy (keep_seconds NULL: keep everything) and its legal hold,
-- while one is set (auditlog.model.retention). A tenant without a row has neither.
CREATE TABLE retention (
    tenant       text PRIMARY KEY,
    keep_seconds bigint,
    updated_us   bigint NOT NULL,
    updated_by   text NOT NULL
);
CREATE TABLE legal_holds (
    tenant  text PRIMARY KEY,
    reason  text NOT NULL,
    set_by  text NOT NULL,
    set_us  bigint NOT NULL
);

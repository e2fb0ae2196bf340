-- People's logins. Usernames are global (one namespace for every tenant); the password is
-- kept only as a self-describing slow hash (see auditlog.service.passwords).
CREATE TABLE users (
    username      TEXT PRIMARY KEY,
    tenant        TEXT NOT NULL,
    scopes        TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_us    INTEGER NOT NULL
);

-- Secrets the service makes for itself on first start (the JWT signing key), shared by every
-- process on this database. A row is inserted once and never changed.
CREATE TABLE secrets (
    name       TEXT PRIMARY KEY,
    value      BLOB NOT NULL,
    created_us INTEGER NOT NULL
);

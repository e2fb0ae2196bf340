-- The search index, in a database file of its own so that the indexer process never takes
-- the events database's write lock. Everything here can be rebuilt from the events.

-- Every equality-searchable (path, value) of an event as a hashed token "k...", and every word
-- of its text as "w<word>". Contentless and without positions: it only maps tokens to keys.
CREATE VIRTUAL TABLE events_terms USING fts5 (
    terms, content = '', detail = none, tokenize = 'ascii'
);

-- How far each tenant's log is indexed: events with seq < next_seq are in events_terms.
CREATE TABLE progress (
    tenant_id INTEGER PRIMARY KEY,
    next_seq  INTEGER NOT NULL
);

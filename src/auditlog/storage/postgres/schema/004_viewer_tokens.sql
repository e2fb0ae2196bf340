-- Viewer tokens are API keys bound to a filter (JSON text of query parameters, ANDed into
-- every read they make) and with an end (expires_us); other keys have neither.
ALTER TABLE api_keys ADD COLUMN filter text;
ALTER TABLE api_keys ADD COLUMN expires_us bigint;

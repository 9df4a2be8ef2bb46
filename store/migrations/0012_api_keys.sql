-- Principals of the HTTP API: API keys per org (stored hashed, shown once), and the org of every
-- wait, so an event resolves only waits of its own org.
CREATE TABLE api_keys (
    prefix text PRIMARY KEY,                  -- dk_<org>_<id>: shown in lists, not secret
    org_id text NOT NULL CHECK (org_id <> ''),
    name text NOT NULL CHECK (name <> ''),
    scopes text[] NOT NULL CHECK (cardinality(scopes) > 0),
    secret_sha256 text NOT NULL,              -- hex SHA-256 of the whole key
    created_by text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at timestamptz,
    revoked_at timestamptz,
    UNIQUE (org_id, name)
);
ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY api_keys_by_org ON api_keys
    USING (org_id = current_setting('app.org_id', true))
    WITH CHECK (org_id = current_setting('app.org_id', true));
GRANT SELECT, INSERT, UPDATE ON api_keys TO durable_app;

-- The org of the run that waits ('' for a run of no org); 0013 fills in the waits opened
-- before this migration.
ALTER TABLE waits ADD COLUMN org_id text;

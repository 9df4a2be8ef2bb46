-- The step audit: one row per step attempt, per org, under row-level security; and the org an
-- event belongs to, so the runs it starts inherit it.
ALTER TABLE events ADD COLUMN tenancy jsonb;

-- The application role: every read and write of tenant data runs under it (store/_org.py), so
-- row-level security applies whoever logged in. NOLOGIN, not superuser, no BYPASSRLS. Roles are
-- cluster-wide: made once, here when the migrating role may create roles (the embedded
-- database), or beforehand by the operator (deploy/postgres/initdb/10-roles.sh).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'durable_app') THEN
        IF NOT (SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user) THEN
            RAISE EXCEPTION 'role durable_app does not exist and % may not create it: create it '
                'first, as deploy/postgres/initdb/10-roles.sh does (CREATE ROLE durable_app '
                'NOLOGIN NOSUPERUSER NOBYPASSRLS)', current_user;
        END IF;
        CREATE ROLE durable_app NOLOGIN NOSUPERUSER NOBYPASSRLS;
    END IF;
END
$$;

CREATE TABLE step_executions (
    id bigserial PRIMARY KEY,
    org_id text NOT NULL,
    workspace_id text NOT NULL DEFAULT '',
    project_id text NOT NULL DEFAULT '',
    instance_id text NOT NULL,      -- the Temporal run id of the execution
    node_id text NOT NULL,          -- the workflow id
    workflow_type text NOT NULL,
    step_id text NOT NULL,
    action text NOT NULL,           -- the activity name
    attempt integer NOT NULL,
    status text NOT NULL CHECK (status IN ('started', 'completed', 'failed', 'cancelled')),
    started_at timestamptz NOT NULL,
    ended_at timestamptz,
    error text,
    UNIQUE (node_id, instance_id, step_id, attempt)
);
CREATE INDEX step_executions_run ON step_executions (org_id, node_id, started_at);

ALTER TABLE step_executions ENABLE ROW LEVEL SECURITY;
ALTER TABLE step_executions FORCE ROW LEVEL SECURITY;
CREATE POLICY step_executions_by_org ON step_executions
    USING (org_id = current_setting('app.org_id', true))
    WITH CHECK (org_id = current_setting('app.org_id', true));
GRANT SELECT, INSERT ON step_executions TO durable_app;
GRANT USAGE ON SEQUENCE step_executions_id_seq TO durable_app;

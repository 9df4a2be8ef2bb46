-- The step audit: one row per step attempt, per org, under row-level security; and the org an
-- event belongs to, so the runs it starts inherit it.
ALTER TABLE events ADD COLUMN tenancy jsonb;

-- The application role (reads and writes run under SET LOCAL ROLE durable_app) and the table's
-- owner are separate roles, neither superuser nor BYPASSRLS. Roles are cluster-wide: made once.
-- Migrations on a real cluster run as a role that may create roles (see README).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'durable_app') THEN
        CREATE ROLE durable_app NOLOGIN NOSUPERUSER NOBYPASSRLS;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'durable_audit_owner') THEN
        CREATE ROLE durable_audit_owner NOLOGIN NOSUPERUSER NOBYPASSRLS;
    END IF;
END
$$;
GRANT durable_app TO CURRENT_USER;
GRANT durable_audit_owner TO CURRENT_USER;

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

ALTER TABLE step_executions OWNER TO durable_audit_owner;
ALTER SEQUENCE step_executions_id_seq OWNER TO durable_audit_owner;
ALTER TABLE step_executions ENABLE ROW LEVEL SECURITY;
ALTER TABLE step_executions FORCE ROW LEVEL SECURITY;
CREATE POLICY step_executions_by_org ON step_executions
    USING (org_id = current_setting('app.org_id', true))
    WITH CHECK (org_id = current_setting('app.org_id', true));
GRANT SELECT, INSERT ON step_executions TO durable_app;
GRANT USAGE ON SEQUENCE step_executions_id_seq TO durable_app;

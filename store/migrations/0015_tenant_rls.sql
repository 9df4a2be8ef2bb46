-- Row-level security on every table that holds an org's data (fleet tables: 0016). Each gets
-- an `org_id` ('' for runs of no org), ENABLE and FORCE ROW LEVEL SECURITY, and one policy that
-- limits reads to `app.org_id` and refuses writes for another org. The application role reads and
-- writes them; the owner (the migrating role) is bound by the policy too (FORCE), so a later
-- migration that backfills a column must do so before it enables a policy, or as a superuser.

-- The orgs that have data here, and nothing else: cross-org work (the delivery sweep, slot
-- checks, memory consolidation, liveness) lists them and then acts per org.
CREATE TABLE tenant_orgs (
    org_id text PRIMARY KEY,
    first_seen timestamptz NOT NULL DEFAULT clock_timestamp()
);
GRANT SELECT ON tenant_orgs TO durable_app;

-- Only this trigger adds to it (as the owner, SECURITY DEFINER): the application role cannot
-- list orgs that have no data, for the sweeps to walk.
CREATE FUNCTION durable_note_org() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM public.tenant_orgs WHERE org_id = NEW.org_id) THEN
        INSERT INTO public.tenant_orgs (org_id) VALUES (NEW.org_id) ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION durable_note_org() FROM PUBLIC;

-- The org of every row, taken from where it came from.
ALTER TABLE events ADD COLUMN org_id text NOT NULL DEFAULT '';
UPDATE events SET org_id = tenancy->>'org_id' WHERE tenancy->>'org_id' IS NOT NULL;

ALTER TABLE deliveries ADD COLUMN org_id text NOT NULL DEFAULT '';
UPDATE deliveries d SET org_id = e.org_id FROM events e WHERE e.id = d.event_id AND e.org_id <> '';

ALTER TABLE throttle_slots ADD COLUMN org_id text NOT NULL DEFAULT '';
UPDATE throttle_slots t SET org_id = e.org_id FROM events e
WHERE e.id = t.event_id AND e.org_id <> '';

ALTER TABLE concurrency_slots ADD COLUMN org_id text NOT NULL DEFAULT '';
UPDATE concurrency_slots c SET org_id = d.org_id FROM deliveries d
WHERE d.kind = 'start' AND d.workflow_id = c.workflow_id AND d.org_id <> '';

ALTER TABLE agent_session_progress ADD COLUMN org_id text NOT NULL DEFAULT '';
UPDATE agent_session_progress p SET org_id = s.org_id FROM agent_sessions s
WHERE s.session_id = p.session_id AND s.org_id <> '';

ALTER TABLE notes ADD COLUMN org_id text NOT NULL DEFAULT '';
UPDATE notes n SET org_id = d.org_id FROM deliveries d
WHERE d.kind = 'start' AND d.workflow_id = n.workflow_id AND d.org_id <> '';

INSERT INTO tenant_orgs (org_id)
SELECT org_id FROM events UNION SELECT org_id FROM waits UNION SELECT org_id FROM deliveries
UNION SELECT org_id FROM concurrency_slots UNION SELECT org_id FROM agent_sessions
UNION SELECT org_id FROM api_keys UNION SELECT org_id FROM step_executions
UNION SELECT ''
ON CONFLICT DO NOTHING;

-- What makes a table an org's: ENABLE and FORCE, the org policy, the application role's grants,
-- and the trigger that notes its orgs. Later migrations call it for the tables they add.
CREATE FUNCTION durable_tenant_table(t text, note_org boolean) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format(
        'CREATE POLICY %I ON %I'
        ' USING (org_id = current_setting(''app.org_id'', true))'
        ' WITH CHECK (org_id = current_setting(''app.org_id'', true))',
        t || '_by_org', t);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON %I TO durable_app', t);
    IF note_org THEN
        EXECUTE format(
            'CREATE TRIGGER %I AFTER INSERT ON %I FOR EACH ROW EXECUTE FUNCTION durable_note_org()',
            t || '_note_org', t);
    END IF;
END
$$;
-- Only migrations call it.
REVOKE ALL ON FUNCTION durable_tenant_table(text, boolean) FROM PUBLIC;

-- The tables whose rows always come with one of a noted table (an event's deliveries, a
-- session's progress, ...) need no trigger of their own.
SELECT durable_tenant_table(t, t = ANY(ARRAY[
           'events', 'waits', 'deliveries', 'concurrency_slots', 'agent_sessions']))
FROM unnest(ARRAY[
    'events', 'waits', 'deliveries', 'throttle_slots', 'concurrency_slots', 'notes',
    'agent_sessions', 'agent_session_progress', 'pm_cursors', 'project_memory',
    'memory_consolidated', 'memory_writes'
]) AS t;
CREATE TRIGGER api_keys_note_org AFTER INSERT ON api_keys
    FOR EACH ROW EXECUTE FUNCTION durable_note_org();
-- Rows the application deletes: slots given back. Nothing else is ever deleted by it.
GRANT DELETE ON throttle_slots, concurrency_slots TO durable_app;
GRANT USAGE ON SEQUENCE agent_session_progress_id_seq TO durable_app;
-- The migrations applied, so a worker can say which are missing; nothing else of it.
GRANT SELECT ON schema_migrations TO durable_app;

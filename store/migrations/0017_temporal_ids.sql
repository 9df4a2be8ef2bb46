-- One vocabulary, Temporal's: a workflow id is the id a run was started under, a run id one
-- execution of it. The step audit said instance_id/node_id, and pm_cursors.run_id held a
-- workflow id; the columns now say what they hold. Renames keep data, grants and policies.
ALTER TABLE step_executions RENAME COLUMN instance_id TO run_id;
ALTER TABLE step_executions RENAME COLUMN node_id TO workflow_id;
ALTER TABLE pm_cursors RENAME COLUMN run_id TO workflow_id;

-- Waits for an approval opened before this release match on data.run_id, which approvals now
-- send as data.workflow_id: rewrite their match documents, org by org (the owner is bound by
-- each table's policy too).
DO $$
DECLARE
    org text;
BEGIN
    FOR org IN SELECT org_id FROM tenant_orgs LOOP
        PERFORM set_config('app.org_id', org, true);
        UPDATE waits
        SET match = jsonb_set(match #- '{data,run_id}', '{data,workflow_id}',
                              match #> '{data,run_id}')
        WHERE event_type = 'rensei/approval.resolved' AND event_id IS NULL
          AND match #> '{data,run_id}' IS NOT NULL;
    END LOOP;
    PERFORM set_config('app.org_id', '', true);
END
$$;

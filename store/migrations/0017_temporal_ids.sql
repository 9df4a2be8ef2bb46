-- One vocabulary, Temporal's: a workflow id is the id a run was started under, a run id one
-- execution of it. The step audit said instance_id/node_id, and pm_cursors.run_id held a
-- workflow id; the columns now say what they hold. Renames keep data, grants and policies.
ALTER TABLE step_executions RENAME COLUMN instance_id TO run_id;
ALTER TABLE step_executions RENAME COLUMN node_id TO workflow_id;
ALTER TABLE pm_cursors RENAME COLUMN run_id TO workflow_id;

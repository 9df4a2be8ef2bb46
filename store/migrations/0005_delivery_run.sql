-- A signal delivery names the execution (Temporal run id) whose wait it resolves, so an
-- execution that continued-as-new ignores a late delivery meant for its predecessor.
ALTER TABLE deliveries ADD COLUMN run_id text NOT NULL DEFAULT '';

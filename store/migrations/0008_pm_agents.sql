-- PM agents: which agent a session worked for (the completion bridge and memory consolidation
-- find sessions by it), and each PM agent's "since the last run" cursor per org and scope.
ALTER TABLE agent_sessions ADD COLUMN agent_id text NOT NULL DEFAULT '';
CREATE INDEX agent_sessions_agent_finished ON agent_sessions (agent_id, finished_at);

-- One row per (agent, org, scope): the time up to which the agent has looked. It only moves
-- forward, and only when a run finishes its work, so a run that fails or is cancelled leaves it
-- where it was and the next run looks at the same changes again.
CREATE TABLE pm_cursors (
    agent_id text NOT NULL,
    org_id text NOT NULL,
    scope text NOT NULL,                  -- e.g. a team id; '' for the whole org
    cursor timestamptz NOT NULL,
    run_id text NOT NULL,                 -- the run that moved it last
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (agent_id, org_id, scope)
);

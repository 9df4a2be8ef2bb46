-- Agent sessions: what a session was asked, its status, the progress lines it reported while it
-- ran, and its transcript and result. Workflow history carries only the session id (the
-- result reference); the content lives here.
CREATE TABLE agent_sessions (
    session_id text PRIMARY KEY,          -- the session run's workflow id
    run_id text NOT NULL,                 -- its Temporal run id
    requested_by text NOT NULL DEFAULT '', -- the run that dispatched it
    org_id text NOT NULL DEFAULT '',
    project text NOT NULL DEFAULT '',
    runtime text NOT NULL,
    prompt text NOT NULL,
    status text NOT NULL
        CHECK (status IN ('running', 'completed', 'failed', 'cancelled', 'timed_out')),
    error text,
    result jsonb,
    transcript jsonb,
    attempt integer NOT NULL DEFAULT 0,   -- the runtime attempt that wrote result/transcript
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz
);
CREATE INDEX agent_sessions_requested_by ON agent_sessions (requested_by);

-- One row per progress line, numbered per runtime attempt, so a retried attempt's lines are
-- kept apart and a repeated write of one line is a no-op.
CREATE TABLE agent_session_progress (
    id bigserial PRIMARY KEY,
    session_id text NOT NULL REFERENCES agent_sessions (session_id) ON DELETE CASCADE,
    attempt integer NOT NULL,
    seq integer NOT NULL,
    line text NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (session_id, attempt, seq)
);

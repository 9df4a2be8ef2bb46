-- Memory consolidation: one memory note per org and project, and which agent sessions have
-- gone into it, so none is counted twice.
CREATE TABLE project_memory (
    org_id text NOT NULL,
    project text NOT NULL,                -- '' for work that belongs to no project
    note text NOT NULL,
    sessions integer NOT NULL DEFAULT 0,  -- sessions consolidated into it so far
    updated_by text NOT NULL,             -- the run that wrote it last
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (org_id, project)
);

CREATE TABLE memory_consolidated (
    session_id text PRIMARY KEY REFERENCES agent_sessions (session_id) ON DELETE CASCADE,
    org_id text NOT NULL,
    project text NOT NULL,
    write_key text NOT NULL,              -- the write that counted it
    consolidated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX memory_consolidated_write ON memory_consolidated (write_key);

-- One row per note write, so a retried write is recognised and does nothing.
CREATE TABLE memory_writes (
    write_key text PRIMARY KEY,
    org_id text NOT NULL,
    project text NOT NULL,
    counted integer NOT NULL,
    written_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

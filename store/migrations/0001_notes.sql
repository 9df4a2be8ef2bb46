-- Notes written by the example workflow's last step. The primary key is the step's
-- idempotency key, so a retried attempt finds the note it already wrote.
CREATE TABLE notes (
    idempotency_key text PRIMARY KEY,
    workflow_id text NOT NULL,
    topic text NOT NULL,
    body text NOT NULL,
    attempt integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notes_workflow_id ON notes (workflow_id);

-- Events, the waits that consume them, and the outbox of deliveries (signals and starts).
CREATE TABLE events (
    id text PRIMARY KEY,
    type text NOT NULL,
    data jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX events_type_received ON events (type, received_at);

CREATE TABLE waits (
    workflow_id text NOT NULL,
    run_id text NOT NULL,
    step_id text NOT NULL,
    event_type text NOT NULL,
    match jsonb NOT NULL,             -- containment document, e.g. {"data": {"run_id": "r1"}}
    not_before timestamptz NOT NULL,  -- only events received since the run started
    state text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'resolved', 'timed-out')),
    event_id text REFERENCES events (id),
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    closed_at timestamptz,
    PRIMARY KEY (workflow_id, run_id, step_id)
);
CREATE INDEX waits_open ON waits (event_type) WHERE state = 'open';
-- An event is consumed at most once per workflow, across its waits.
CREATE UNIQUE INDEX waits_event_once ON waits (workflow_id, event_id) WHERE event_id IS NOT NULL;

CREATE TABLE deliveries (
    event_id text NOT NULL REFERENCES events (id),
    kind text NOT NULL CHECK (kind IN ('signal', 'start')),
    workflow_id text NOT NULL,
    step_id text NOT NULL DEFAULT '',
    workflow_type text NOT NULL DEFAULT '',
    state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'undeliverable')),
    attempts integer NOT NULL DEFAULT 0,
    last_error text,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (event_id, kind, workflow_id, step_id)
);
CREATE INDEX deliveries_pending ON deliveries (updated_at) WHERE state = 'pending';

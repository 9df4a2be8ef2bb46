-- Flow control for event-triggered starts: throttle windows and concurrency slots, per key.

-- A start over a throttle's limit is delayed until `start_at`, or (excess = skip) recorded as
-- throttled and not made.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_state_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_state_check
    CHECK (state IN ('pending', 'delivered', 'undeliverable', 'throttled'));
ALTER TABLE deliveries ADD COLUMN start_at timestamptz;

-- The starts a throttle has granted per key; rows older than the period are swept.
CREATE TABLE throttle_slots (
    workflow_type text NOT NULL,
    key text NOT NULL,
    slot_at timestamptz NOT NULL,
    event_id text NOT NULL REFERENCES events (id)
);
CREATE INDEX throttle_slots_key ON throttle_slots (workflow_type, key, slot_at DESC);

-- Runs holding or queued for a concurrency slot; a run leaves when it finishes.
CREATE TABLE concurrency_slots (
    workflow_type text NOT NULL,
    key text NOT NULL,
    workflow_id text NOT NULL,
    state text NOT NULL CHECK (state IN ('holding', 'queued')),
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    checked_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (workflow_type, key, workflow_id)
);
CREATE INDEX concurrency_slots_queue ON concurrency_slots (workflow_type, key, created_at);

-- When a wait with a timeout is due: a wait still open well past it is overdue (no worker
-- fired its timer), and `durable stuck` lists it. NULL: a wait without a timeout.
ALTER TABLE waits ADD COLUMN expires_at timestamptz;
CREATE INDEX waits_open_expiry ON waits (expires_at) WHERE state = 'open';

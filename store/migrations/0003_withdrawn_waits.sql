-- A wait of wait_for_any that lost is withdrawn, and gives back any event it had claimed.
ALTER TABLE waits DROP CONSTRAINT waits_state_check;
ALTER TABLE waits ADD CONSTRAINT waits_state_check
    CHECK (state IN ('open', 'resolved', 'timed-out', 'withdrawn'));

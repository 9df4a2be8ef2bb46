-- The worker fleet, part two: the workers that registered (one row per registration of a
-- daemon), the pool a registration token binds a worker to, where each agent session was
-- placed, and the legacy per-project sandbox settings the compatibility layer translates.
ALTER TABLE registration_tokens
    ADD COLUMN pool_id uuid REFERENCES execution_pools (id),
    ADD COLUMN name text NOT NULL DEFAULT '';

CREATE TABLE fleet_workers (
    id text PRIMARY KEY,                      -- wkr_...
    org_id text NOT NULL,
    project_id text NOT NULL,
    pool_id uuid NOT NULL REFERENCES execution_pools (id),
    registration_id uuid NOT NULL REFERENCES registration_tokens (id),
    hostname text NOT NULL DEFAULT '',
    version text NOT NULL DEFAULT '',
    capabilities jsonb NOT NULL DEFAULT '[]',
    max_concurrency integer NOT NULL CHECK (max_concurrency > 0),
    active integer NOT NULL DEFAULT 0,        -- sessions running, as its last heartbeat said
    status text NOT NULL DEFAULT 'online'
        CHECK (status IN ('online', 'offline', 'deregistered')),
    registered_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_heartbeat_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    deregistered_at timestamptz
);
CREATE INDEX fleet_workers_pool ON fleet_workers (pool_id, project_id, status);

-- Where a session was placed: the pool the route resolved (stamped at dispatch) and when, the
-- worker that claimed it and when, how many claims it has had (a claim's number is the attempt its
-- progress lines are kept under), and, while it waits, why ("waiting for capacity in pools ...").
ALTER TABLE agent_sessions
    ADD COLUMN pool_id uuid,
    ADD COLUMN pool_name text NOT NULL DEFAULT '',
    ADD COLUMN placed_at timestamptz,
    ADD COLUMN worker_id text NOT NULL DEFAULT '',
    ADD COLUMN claimed_at timestamptz,
    ADD COLUMN claims integer NOT NULL DEFAULT 0,
    ADD COLUMN released_at timestamptz,  -- its worker's heartbeats stopped listing it
    ADD COLUMN placement text NOT NULL DEFAULT '';
CREATE INDEX agent_sessions_pool ON agent_sessions (pool_id, status);
CREATE INDEX agent_sessions_running_worker ON agent_sessions (worker_id) WHERE status = 'running';

-- Legacy per-project sandbox settings (the projects.sandbox_* columns of the old model). They
-- stay readable and writable; a project with these and no execution route is given a pool and
-- a route the first time one of its sessions is dispatched.
CREATE TABLE legacy_project_sandbox (
    org_id text NOT NULL,
    project_id text NOT NULL,
    sandbox_provider text NOT NULL,
    sandbox_mode text NOT NULL DEFAULT 'managed',
    sandbox_credential_id text,
    PRIMARY KEY (org_id, project_id)
);

-- The runtime JWT signing keys (P-256 private scalars, 32 bytes), newest first by created_at,
-- when DURABLE_FLEET_SIGNING_KEY does not supply one: every API instance signs with the same key.
CREATE TABLE fleet_signing_keys (
    kid text PRIMARY KEY,
    private_key bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- The worker fleet (issue 7, in progress): execution provider pools per org, each project's
-- execution route, and the registration tokens workers register with (kept only as a hash).
CREATE TABLE execution_pools (
    id uuid PRIMARY KEY,
    org_id text NOT NULL,
    name text NOT NULL,                    -- also its Temporal task queue
    provider text NOT NULL CHECK (provider IN
        ('local', 'docker', 'kubernetes', 'e2b', 'daytona', 'modal', 'vercel')),
    mode text NOT NULL DEFAULT 'managed',
    capacity jsonb NOT NULL DEFAULT '{}',  -- capacity policy, e.g. {"max_workers": 4}
    credential_ref text,                   -- a reference to where its credential lives
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (org_id, name)
);

CREATE TABLE execution_routes (
    org_id text NOT NULL,
    project_id text NOT NULL,
    preferred uuid[] NOT NULL DEFAULT '{}',
    allowed uuid[] NOT NULL DEFAULT '{}',
    forbidden uuid[] NOT NULL DEFAULT '{}',
    fallback uuid,
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (org_id, project_id)
);

CREATE TABLE registration_tokens (
    id uuid PRIMARY KEY,
    org_id text NOT NULL,
    project_id text NOT NULL,
    token_hash text NOT NULL UNIQUE,       -- SHA-256 of the token; the token itself is never kept
    prefix text NOT NULL,                  -- what logs may show
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz,
    uses integer NOT NULL DEFAULT 0,
    last_used_at timestamptz
);

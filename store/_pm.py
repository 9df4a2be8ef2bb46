"""PM agents' durable state: each agent's "since the last run" cursor per org and scope."""

from __future__ import annotations

from datetime import datetime

import asyncpg
from opentelemetry.trace import TracerProvider

from ._org import as_org
from ._tracing import db_spans, store_tracer

_span = db_spans("pm")


class PmStore:
    def __init__(
        self, pool: asyncpg.Pool, *, tracer_provider: TracerProvider | None = None
    ) -> None:
        self.pool = pool
        self._tracer = store_tracer(tracer_provider)

    @_span
    async def cursor(self, agent_id: str, org_id: str, scope: str) -> datetime | None:
        """Where the agent's last finished run left off, or None before its first."""
        async with as_org(self.pool, org_id) as conn:
            value: datetime | None = await conn.fetchval(
                "SELECT cursor FROM pm_cursors WHERE agent_id = $1 AND org_id = $2 AND scope = $3",
                agent_id,
                org_id,
                scope,
            )
        return value

    @_span
    async def advance(
        self, agent_id: str, org_id: str, scope: str, cursor: datetime, workflow_id: str
    ) -> datetime:
        """Move the cursor to `cursor` unless it is already further; returns the stored value.
        Idempotent: a retried step, or an older run finishing late, never moves it back."""
        async with as_org(self.pool, org_id) as conn:
            stored: datetime | None = await conn.fetchval(
                """INSERT INTO pm_cursors (agent_id, org_id, scope, cursor, workflow_id)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (agent_id, org_id, scope) DO UPDATE
                   SET cursor = excluded.cursor, workflow_id = excluded.workflow_id,
                       updated_at = clock_timestamp()
                   WHERE pm_cursors.cursor < excluded.cursor
               RETURNING cursor""",
                agent_id,
                org_id,
                scope,
                cursor,
                workflow_id,
            ) or await conn.fetchval(
                "SELECT cursor FROM pm_cursors WHERE agent_id = $1 AND org_id = $2 AND scope = $3",
                agent_id,
                org_id,
                scope,
            )
        assert stored is not None  # the row exists: it was written or was further on
        return stored

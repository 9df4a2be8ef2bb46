"""The step audit: one `step_executions` row per step attempt, written in one commit, read per
org, under PostgreSQL row-level security.

Every statement runs as the application role with the row's org set (`_org.as_org`): the
table's policy limits reads to that org and refuses a write for another (`WITH CHECK`). The
application role may insert and read rows, never change or delete them.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from ._org import as_org

# A row for an attempt that never reported: recorded by the next attempt of the step.
LOST_ATTEMPT = (
    "this attempt did not report: its worker was lost, it timed out, or its audit write failed"
)


@dataclass(frozen=True)
class StepAttempt:
    org_id: str
    workspace_id: str
    project_id: str
    run_id: str  # Temporal run id (the execution)
    workflow_id: str  # Temporal workflow id
    workflow_type: str
    step_id: str
    action: str
    attempt: int
    status: str  # started, completed, failed, cancelled
    started_at: datetime
    ended_at: datetime | None = None
    error: str | None = None


_COLUMNS = (
    "org_id, workspace_id, project_id, run_id, workflow_id, workflow_type, step_id, action,"
    " attempt, status, started_at, ended_at, error"
)


class StepAudit:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    def as_org(self, org_id: str) -> AbstractAsyncContextManager[Any]:
        """A connection in a transaction as the application role, scoped to `org_id`."""
        return as_org(self.pool, org_id)

    async def record(self, row: StepAttempt) -> None:
        """Write an attempt's row, and rows for earlier attempts of the step that never
        reported; one statement, one commit."""
        async with self.as_org(row.org_id) as conn:
            await conn.execute(
                f"INSERT INTO step_executions ({_COLUMNS})"
                " SELECT $1, $2, $3, $4, $5, $6, $7, $8, n,"
                "   CASE WHEN n = $9::int THEN $10::text ELSE 'failed' END, $11::timestamptz,"
                "   CASE WHEN n = $9::int THEN $12::timestamptz END,"
                "   CASE WHEN n = $9::int THEN $13::text ELSE $14::text END"
                " FROM generate_series(1, $9::int) AS n"
                " ON CONFLICT (workflow_id, run_id, step_id, attempt) DO NOTHING",
                row.org_id,
                row.workspace_id,
                row.project_id,
                row.run_id,
                row.workflow_id,
                row.workflow_type,
                row.step_id,
                row.action,
                row.attempt,
                row.status,
                row.started_at,
                row.ended_at,
                row.error,
                LOST_ATTEMPT,
            )

    async def steps(self, org_id: str, workflow_id: str) -> list[StepAttempt]:
        """Every recorded attempt of a run (all its executions), oldest first; nothing for a
        run of another org, exactly as for a run that does not exist."""
        async with self.as_org(org_id) as conn:
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM step_executions WHERE workflow_id = $1"
                " ORDER BY started_at, step_id, attempt",
                workflow_id,
            )
        return [StepAttempt(**dict(r)) for r in rows]

"""Memory consolidation in Postgres: per-project memory notes, and which completed agent
sessions went into them. A session is counted once: the note and the sessions it consumed are
written in one transaction, under a write key that makes a retried write a no-op, and a note
written from a version that another run has replaced meanwhile is refused rather than folding
the same outcomes in twice (or dropping the other run's)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from opentelemetry.trace import TracerProvider

from ._org import as_org, each_org
from ._tracing import db_spans, store_tracer

_span = db_spans("memory")


@dataclass(frozen=True)
class SessionOutcome:
    session_id: str
    org_id: str
    project: str
    agent_id: str
    summary: str
    finished_at: datetime


@dataclass(frozen=True)
class MemoryNote:
    org_id: str
    project: str
    note: str
    sessions: int
    updated_by: str
    updated_at: datetime


@dataclass(frozen=True)
class Written:
    counted: int  # sessions newly consolidated by this write
    already: int  # sessions another write had already counted (left out)
    repeated: bool = False  # this write key was written before: nothing was done
    stale: bool = False  # the note changed since `based_on`: nothing was done


# A session's outcome as the consolidating agent sees it; bounded, since a run carries up to
# thousands of them in one step result.
SUMMARY_CHARS = 500


def _summary(result: Any, prompt: str) -> str:
    if isinstance(result, dict) and isinstance(result.get("summary"), str):
        return str(result["summary"])[:SUMMARY_CHARS]
    return prompt[:200]


# The completed sessions of the connection's org not yet consolidated ($1: agents left out).
_PENDING = """FROM agent_sessions s
    LEFT JOIN memory_consolidated m ON m.session_id = s.session_id
    WHERE s.status = 'completed' AND m.session_id IS NULL AND NOT (s.agent_id = ANY($1::text[]))"""


class MemoryStore:
    def __init__(
        self, pool: asyncpg.Pool, *, tracer_provider: TracerProvider | None = None
    ) -> None:
        self.pool = pool
        self._tracer = store_tracer(tracer_provider)

    @_span
    async def pending(
        self, *, org_id: str | None, exclude_agents: list[str], limit: int
    ) -> list[SessionOutcome]:
        """Completed sessions not yet consolidated, oldest first; of one org, or of every org
        (one org at a time) when `org_id` is None."""

        async def of_org(conn: Any, _org: str, room: int) -> list[SessionOutcome]:
            rows = await conn.fetch(
                f"""SELECT s.session_id, s.org_id, s.project, s.agent_id, s.prompt,
                           s.result::text AS result, s.finished_at {_PENDING}
                    ORDER BY s.finished_at, s.session_id LIMIT $2""",
                exclude_agents,
                room,
            )
            return [
                SessionOutcome(
                    session_id=r["session_id"],
                    org_id=r["org_id"],
                    project=r["project"],
                    agent_id=r["agent_id"],
                    summary=_summary(json.loads(r["result"]) if r["result"] else None, r["prompt"]),
                    finished_at=r["finished_at"],
                )
                for r in rows
            ]

        if org_id is None:
            return await each_org(self.pool, of_org, limit)
        async with as_org(self.pool, org_id) as conn:
            return await of_org(conn, org_id, limit)

    @_span
    async def pending_orgs(self, *, org_id: str | None, exclude_agents: list[str]) -> list[str]:
        """The orgs ('' for sessions of no org) with completed sessions not yet consolidated;
        only `org_id` itself when it is given. Nothing of the sessions but their org."""

        async def of_org(conn: Any, org: str, _room: int) -> list[str]:
            found = await conn.fetchval(f"SELECT EXISTS (SELECT 1 {_PENDING})", exclude_agents)
            return [org] if found else []

        if org_id is None:
            return sorted(await each_org(self.pool, of_org, limit=1_000_000))
        async with as_org(self.pool, org_id) as conn:
            return await of_org(conn, org_id, 1)

    @_span
    async def note(self, org_id: str, project: str) -> MemoryNote | None:
        async with as_org(self.pool, org_id) as conn:
            row = await conn.fetchrow(
                "SELECT org_id, project, note, sessions, updated_by, updated_at FROM project_memory"
                " WHERE org_id = $1 AND project = $2",
                org_id,
                project,
            )
        return None if row is None else MemoryNote(**dict(row))

    @_span
    async def notes(self, org_id: str) -> list[MemoryNote]:
        """Every memory note of one org (never another's)."""
        async with as_org(self.pool, org_id) as conn:
            rows = await conn.fetch(
                "SELECT org_id, project, note, sessions, updated_by, updated_at FROM project_memory"
                " WHERE org_id = $1 ORDER BY project",
                org_id,
            )
        return [MemoryNote(**dict(r)) for r in rows]

    @_span
    async def write(
        self,
        *,
        write_key: str,
        org_id: str,
        project: str,
        note: str,
        session_ids: list[str],
        workflow_id: str,
        based_on: int | None = None,
    ) -> Written:
        """Store the project's note and count `session_ids` as consolidated, in one
        transaction. A write key seen before does nothing; sessions another write counted in
        the meantime are left out, and if every one was, the note is left as it was.

        `based_on` is the note's `sessions` when it was read for this write (0: no note yet).
        If another write changed the note since, this one is refused (`stale`): nothing is
        written or counted, and its sessions stay pending for the next run. Writes to one note
        take turns (a transaction-scoped advisory lock), so the check cannot race."""
        async with as_org(self.pool, org_id) as conn:
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended('memory:' || $1 || '/' || $2, 0))",
                org_id,
                project,
            )
            previous = await conn.fetchval(
                "SELECT counted FROM memory_writes WHERE write_key = $1", write_key
            )
            if previous is not None:
                return Written(counted=previous, already=0, repeated=True)
            if based_on is not None:
                now = await conn.fetchval(
                    "SELECT sessions FROM project_memory WHERE org_id = $1 AND project = $2",
                    org_id,
                    project,
                )
                if (now or 0) != based_on:
                    return Written(counted=0, already=0, stale=True)
            counted = await conn.fetch(
                """INSERT INTO memory_consolidated (session_id, org_id, project, write_key)
                   SELECT unnest($1::text[]), $2, $3, $4
                   ON CONFLICT (session_id) DO NOTHING RETURNING session_id""",
                session_ids,
                org_id,
                project,
                write_key,
            )
            await conn.execute(
                "INSERT INTO memory_writes (write_key, org_id, project, counted)"
                " VALUES ($1, $2, $3, $4)",
                write_key,
                org_id,
                project,
                len(counted),
            )
            if counted:
                await conn.execute(
                    """INSERT INTO project_memory (org_id, project, note, sessions, updated_by)
                       VALUES ($1, $2, $3, $4, $5)
                       ON CONFLICT (org_id, project) DO UPDATE
                           SET note = excluded.note,
                               sessions = project_memory.sessions + excluded.sessions,
                               updated_by = excluded.updated_by,
                               updated_at = clock_timestamp()""",
                    org_id,
                    project,
                    note,
                    len(counted),
                    workflow_id,
                )
        return Written(counted=len(counted), already=len(session_ids) - len(counted))

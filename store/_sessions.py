"""Agent sessions in Postgres: status, progress lines, transcript and result.

A session's run keeps only references in its workflow history; the content is here. Every
write is idempotent, so a retried step finds what an earlier attempt wrote.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
from opentelemetry.trace import TracerProvider

from ._org import as_org
from ._tracing import db_spans, store_tracer

TERMINAL = ("completed", "failed", "cancelled", "timed_out")
RESULT_REF_PREFIX = "agent-session:"
_span = db_spans("sessions")


def result_ref(session_id: str) -> str:
    """The reference a session's completion carries to its stored result and transcript."""
    return f"{RESULT_REF_PREFIX}{session_id}"


def session_of(ref: str) -> str:
    """The session id a result reference points at; raises ValueError for another kind."""
    if not ref.startswith(RESULT_REF_PREFIX):
        raise ValueError(f"{ref!r} is not an agent session result reference")
    return ref[len(RESULT_REF_PREFIX) :]


@dataclass(frozen=True)
class ProgressLine:
    seq: int
    attempt: int
    line: str
    at: datetime
    id: int = 0


@dataclass(frozen=True)
class SessionRecord:
    session_id: str
    run_id: str
    requested_by: str
    org_id: str
    project: str
    runtime: str
    prompt: str
    status: str
    error: str | None
    result: Any
    started_at: datetime
    finished_at: datetime | None
    transcript: list[dict[str, Any]] | None = None
    progress: list[ProgressLine] = field(default_factory=list)
    agent_id: str = ""
    pool: str = ""  # the fleet pool its route resolved to ('' : the run's own queue)
    worker_id: str = ""  # the fleet worker that ran it
    placement: str = ""  # where it runs, or why it waits ("waiting for capacity in pools ...")

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL


@dataclass(frozen=True)
class NewSession:
    """What a session is when it opens."""

    session_id: str
    run_id: str
    runtime: str
    prompt: str
    requested_by: str = ""
    org_id: str = ""
    project: str = ""
    agent_id: str = ""


def _loads(value: str | None) -> Any:
    return None if value is None else json.loads(value)


class SessionStore:
    def __init__(
        self, pool: asyncpg.Pool, *, tracer_provider: TracerProvider | None = None
    ) -> None:
        self.pool = pool
        self._tracer = store_tracer(tracer_provider)

    @_span
    async def open(self, session: NewSession) -> str:
        """Record a session as running (once); returns its status, which is the stored one if
        it was opened before."""
        async with as_org(self.pool, session.org_id) as conn:
            status: str = await conn.fetchval(
                """WITH new AS (
                   INSERT INTO agent_sessions (session_id, run_id, requested_by, org_id, project,
                                               runtime, prompt, agent_id, status)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'running')
                   ON CONFLICT (session_id) DO NOTHING RETURNING status)
               SELECT status FROM new
               UNION ALL SELECT status FROM agent_sessions WHERE session_id = $1
               LIMIT 1""",
                session.session_id,
                session.run_id,
                session.requested_by,
                session.org_id,
                session.project,
                session.runtime,
                session.prompt,
                session.agent_id,
            )
        return status

    @_span
    async def add_progress(
        self, session_id: str, attempt: int, seq: int, line: str, *, org_id: str
    ) -> None:
        async with as_org(self.pool, org_id) as conn:
            await conn.execute(
                "INSERT INTO agent_session_progress (session_id, attempt, seq, line, org_id)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (session_id, attempt, seq) DO NOTHING",
                session_id,
                attempt,
                seq,
                line,
                org_id,
            )

    @_span
    async def save_output(
        self,
        session_id: str,
        attempt: int,
        transcript: list[dict[str, Any]],
        result: Any,
        *,
        org_id: str,
    ) -> None:
        """Keep an attempt's transcript and result (None while it has none); a later attempt's
        output replaces an earlier one's, never the other way round."""
        async with as_org(self.pool, org_id) as conn:
            await conn.execute(
                "UPDATE agent_sessions SET transcript = $3::jsonb, result = $4::jsonb, attempt = $2"
                " WHERE session_id = $1 AND attempt <= $2",
                session_id,
                attempt,
                json.dumps(transcript),
                None if result is None else json.dumps(result),
            )

    @_span
    async def finish(self, session: NewSession, status: str, error: str | None) -> str:
        """Record the terminal status, once: a session already finished keeps its status.
        Returns the stored status. A session that never opened (cancelled before it ran) is
        recorded here."""
        if status not in TERMINAL:
            raise ValueError(f"{status!r} is not a terminal session status")
        async with as_org(self.pool, session.org_id) as conn:
            stored: str = await conn.fetchval(
                """INSERT INTO agent_sessions (session_id, run_id, requested_by, org_id, project,
                                           runtime, prompt, status, error, agent_id, finished_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, clock_timestamp())
               ON CONFLICT (session_id) DO UPDATE
                   SET status = excluded.status, error = excluded.error,
                       finished_at = excluded.finished_at,
                       placement = regexp_replace(agent_sessions.placement, '^running on', 'ran on')
                   WHERE agent_sessions.status = 'running'
               RETURNING status""",
                session.session_id,
                session.run_id,
                session.requested_by,
                session.org_id,
                session.project,
                session.runtime,
                session.prompt,
                status,
                error,
                session.agent_id,
            ) or await conn.fetchval(
                "SELECT status FROM agent_sessions WHERE session_id = $1", session.session_id
            )
        return stored

    @_span
    async def get(
        self, session_id: str, *, org_id: str, transcript: bool = False
    ) -> SessionRecord | None:
        """The session of `org_id` with its progress lines (and transcript if asked), or None
        (also for a session of another org)."""
        async with as_org(self.pool, org_id) as conn:
            row = await conn.fetchrow(
                "SELECT session_id, run_id, requested_by, org_id, project, runtime, prompt, status,"
                " error, result::text AS result, started_at, finished_at, agent_id, pool_name,"
                " worker_id, placement,"
                f" {'transcript::text' if transcript else 'NULL::text'} AS transcript"
                " FROM agent_sessions WHERE session_id = $1",
                session_id,
            )
        if row is None:
            return None
        return SessionRecord(
            session_id=row["session_id"],
            run_id=row["run_id"],
            requested_by=row["requested_by"],
            org_id=row["org_id"],
            project=row["project"],
            runtime=row["runtime"],
            prompt=row["prompt"],
            status=row["status"],
            error=row["error"],
            result=_loads(row["result"]),
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            transcript=_loads(row["transcript"]),
            progress=await self.progress(session_id, org_id=org_id),
            agent_id=row["agent_id"],
            pool=row["pool_name"],
            worker_id=row["worker_id"],
            placement=row["placement"],
        )

    @_span
    async def progress(self, session_id: str, after: int = 0, *, org_id: str) -> list[ProgressLine]:
        """Progress lines in the order they were written; `after` an `id` seen before."""
        async with as_org(self.pool, org_id) as conn:
            rows = await conn.fetch(
                "SELECT id, seq, attempt, line, at FROM agent_session_progress"
                " WHERE session_id = $1 AND id > $2 ORDER BY id",
                session_id,
                after,
            )
        return [ProgressLine(r["seq"], r["attempt"], r["line"], r["at"], r["id"]) for r in rows]

    @_span
    async def result(self, ref: str, *, org_id: str) -> Any:
        """The stored result a completion's `result_ref` points at (None if it has none)."""
        async with as_org(self.pool, org_id) as conn:
            value = await conn.fetchval(
                "SELECT result::text FROM agent_sessions WHERE session_id = $1", session_of(ref)
            )
        return _loads(value)

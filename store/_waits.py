"""Waits: a run's open wait for an event, claimed by a stored event or resolved by a new one,
timed out, or withdrawn (the other branches of a wait_for_any). Every statement runs as the
run's org, so only an event of that org resolves it."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg
from opentelemetry import trace

from ._org import as_org, each_org
from ._records import LOCK, StoredEvent, event_of, load_event
from ._tracing import db_spans

# How far the Temporal cluster's clock and the database's may disagree.
CLOCK_SKEW_SECONDS = 5.0
_span = db_spans("events")


class WaitMethods:
    pool: asyncpg.Pool
    _tracer: trace.Tracer

    @_span
    async def register_wait(
        self,
        workflow_id: str,
        run_id: str,
        step_id: str,
        event_type: str,
        match: dict[str, Any],
        not_before: datetime,
        org_id: str = "",
        expires_at: datetime | None = None,
    ) -> StoredEvent | None:
        """Open a wait, or claim the oldest stored event it matches that this workflow has not
        consumed; one transaction. Idempotent: a retried call returns what the first one did.
        Only an event of the run's own org (`org_id`, '' for a run of none) resolves it.

        `not_before` is the run's start by the workflow's clock. It is moved back by
        CLOCK_SKEW and capped at the database's now: the two clocks differ (by a little on a
        cluster, by days under a time-skipping test server)."""
        async with as_org(self.pool, org_id) as conn:
            not_before = await conn.fetchval(
                "SELECT least($1::timestamptz - make_interval(secs => $2), clock_timestamp())",
                not_before,
                CLOCK_SKEW_SECONDS,
            )
            await conn.execute(LOCK, event_type)
            existing = await conn.fetchrow(
                "SELECT state, event_id FROM waits "
                "WHERE workflow_id = $1 AND run_id = $2 AND step_id = $3",
                workflow_id,
                run_id,
                step_id,
            )
            if existing is not None:
                return await load_event(conn, existing["event_id"])
            row = await conn.fetchrow(
                """
                SELECT e.id, e.type, e.data, e.received_at, e.tenancy FROM events e
                WHERE e.type = $1 AND jsonb_build_object('data', e.data) @> $2::jsonb
                  AND e.received_at >= $3
                  AND NOT EXISTS (SELECT 1 FROM waits w
                                  WHERE w.workflow_id = $4 AND w.event_id = e.id)
                ORDER BY e.received_at, e.id LIMIT 1
                """,
                event_type,
                json.dumps(match),
                not_before,
                workflow_id,
            )
            await conn.execute(
                "INSERT INTO waits (workflow_id, run_id, step_id, event_type, match, not_before,"
                " state, event_id, closed_at, org_id, expires_at) VALUES ($1, $2, $3, $4,"
                " $5::jsonb, $6, $7, $8, CASE WHEN $7 = 'resolved' THEN clock_timestamp() END,"
                " $9, $10)",
                workflow_id,
                run_id,
                step_id,
                event_type,
                json.dumps(match),
                not_before,
                "resolved" if row else "open",
                row["id"] if row else None,
                org_id,
                expires_at,
            )
            return event_of(row) if row else None

    @_span
    async def close_wait(
        self, workflow_id: str, run_id: str, step_id: str, *, org_id: str
    ) -> StoredEvent | None:
        """Time a wait out, unless an event resolved it first: then return that event."""
        async with as_org(self.pool, org_id) as conn:
            row = await conn.fetchrow(
                "SELECT event_type FROM waits "
                "WHERE workflow_id = $1 AND run_id = $2 AND step_id = $3",
                workflow_id,
                run_id,
                step_id,
            )
            if row is None:
                return None
            await conn.execute(LOCK, row["event_type"])
            event_id = await conn.fetchval(
                "UPDATE waits SET state = CASE WHEN state = 'open' THEN 'timed-out' ELSE state END,"
                " closed_at = coalesce(closed_at, clock_timestamp())"
                " WHERE workflow_id = $1 AND run_id = $2 AND step_id = $3 RETURNING event_id",
                workflow_id,
                run_id,
                step_id,
            )
            return await load_event(conn, event_id)

    @_span
    async def settle_any(
        self,
        workflow_id: str,
        run_id: str,
        step_ids: list[str],
        keep: str | None,
        *,
        org_id: str,
    ) -> tuple[str | None, StoredEvent | None]:
        """Finish the waits of one wait_for_any. The wait `keep` (or, with None, the first one
        an event resolved) keeps its event; the others are withdrawn and give back any event
        they claimed, for later waits. Returns (the kept wait, its event)."""
        async with as_org(self.pool, org_id) as conn:
            rows = await conn.fetch(
                "SELECT step_id, event_type, event_id, closed_at FROM waits"
                " WHERE workflow_id = $1 AND run_id = $2 AND step_id = ANY($3::text[])"
                " ORDER BY closed_at NULLS LAST, step_id",
                workflow_id,
                run_id,
                step_ids,
            )
            for event_type in sorted({r["event_type"] for r in rows}):
                await conn.execute(LOCK, event_type)
            rows = await conn.fetch(
                "SELECT step_id, event_id FROM waits"
                " WHERE workflow_id = $1 AND run_id = $2 AND step_id = ANY($3::text[])"
                " ORDER BY closed_at NULLS LAST, step_id",
                workflow_id,
                run_id,
                step_ids,
            )
            if keep is None:
                keep = next((r["step_id"] for r in rows if r["event_id"] is not None), None)
            kept = next((r["event_id"] for r in rows if r["step_id"] == keep), None)
            await conn.execute(
                "UPDATE waits SET state = 'withdrawn', event_id = NULL,"
                " closed_at = coalesce(closed_at, clock_timestamp())"
                " WHERE workflow_id = $1 AND run_id = $2 AND step_id = ANY($3::text[])"
                "   AND step_id IS DISTINCT FROM $4",
                workflow_id,
                run_id,
                step_ids,
                keep,
            )
            if keep is not None and kept is None:
                await conn.execute(
                    "UPDATE waits SET state = 'timed-out', closed_at = clock_timestamp()"
                    " WHERE workflow_id = $1 AND run_id = $2 AND step_id = $3 AND state = 'open'",
                    workflow_id,
                    run_id,
                    keep,
                )
            return keep, await load_event(conn, kept)

    @_span
    async def open_waits(self, workflow_id: str, *, org_id: str) -> list[dict[str, Any]]:
        """The run's open waits, oldest first; none for a run of another org."""
        async with as_org(self.pool, org_id) as conn:
            rows = await conn.fetch(
                "SELECT step_id, event_type, match, created_at FROM waits"
                " WHERE workflow_id = $1 AND state = 'open' ORDER BY created_at",
                workflow_id,
            )
        return [{**dict(r), "match": json.loads(r["match"])} for r in rows]

    @_span
    async def overdue_waits(
        self, *, org_id: str | None, grace_seconds: float = 60.0, limit: int = 200
    ) -> list[dict[str, Any]]:
        """Open waits still open `grace_seconds` past when they were due (their timeout): of
        `org_id`, or of every org (None), most overdue first."""
        query = (
            "SELECT workflow_id, run_id, step_id, event_type, created_at, expires_at, org_id"
            " FROM waits WHERE state = 'open' AND expires_at IS NOT NULL"
            " AND expires_at < clock_timestamp() - make_interval(secs => $1)"
            " ORDER BY expires_at LIMIT $2"
        )

        async def of_org(conn: Any, _org: str, room: int) -> list[dict[str, Any]]:
            return [dict(r) for r in await conn.fetch(query, grace_seconds, room)]

        if org_id is not None:
            async with as_org(self.pool, org_id) as conn:
                return await of_org(conn, org_id, limit)
        found = await each_org(self.pool, of_org, limit)
        return sorted(found, key=lambda w: w["expires_at"])

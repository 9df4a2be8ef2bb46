"""Events, waits and the delivery outbox in Postgres.

Storing an event and registering a wait take the same per-type advisory lock, so of an event
and a wait that arrive together exactly one sees the other: the wait claims the stored event,
or the event resolves the open wait. Nothing falls between them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

# A pending delivery this old is taken to be abandoned by a crashed sender and is re-sent.
REDELIVER_AFTER_SECONDS = 5.0
# How far the Temporal cluster's clock and the database's may disagree.
CLOCK_SKEW_SECONDS = 5.0
_LOCK = "SELECT pg_advisory_xact_lock(hashtext('durable-events:' || $1))"


@dataclass(frozen=True)
class StoredEvent:
    id: str
    type: str
    data: dict[str, Any]
    received_at: datetime

    def document(self) -> dict[str, Any]:
        return {"id": self.id, "data": self.data, "received_at": self.received_at.isoformat()}


@dataclass(frozen=True)
class Delivery:
    event_id: str
    kind: str  # "signal" or "start"
    workflow_id: str
    step_id: str
    workflow_type: str


def _event(row: asyncpg.Record) -> StoredEvent:
    return StoredEvent(row["id"], row["type"], json.loads(row["data"]), row["received_at"])


class EventStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def ingest(
        self, event_id: str, event_type: str, data: dict[str, Any], starts: list[tuple[str, str]]
    ) -> tuple[bool, list[Delivery]]:
        """Store an event once; queue a start per `(workflow_type, workflow_id)` and a signal per
        open wait it satisfies (one per workflow). Returns (new, every pending delivery of it),
        so a redelivered duplicate still finishes what a crash left undone."""
        doc = json.dumps({"data": data})
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(_LOCK, event_type)
            received = await conn.fetchval(
                "INSERT INTO events (id, type, data) VALUES ($1, $2, $3::jsonb) "
                "ON CONFLICT (id) DO NOTHING RETURNING received_at",
                event_id,
                event_type,
                json.dumps(data),
            )
            if received is not None:
                await conn.executemany(
                    "INSERT INTO deliveries (event_id, kind, workflow_id, workflow_type) "
                    "VALUES ($1, 'start', $2, $3) ON CONFLICT DO NOTHING",
                    [(event_id, workflow_id, wf_type) for wf_type, workflow_id in starts],
                )
                resolved = await conn.fetch(
                    """
                    WITH candidates AS (
                        SELECT DISTINCT ON (workflow_id) workflow_id, run_id, step_id
                        FROM waits
                        WHERE state = 'open' AND event_type = $2 AND $3::jsonb @> match
                          AND not_before <= $4
                        ORDER BY workflow_id, created_at
                    )
                    UPDATE waits w SET state = 'resolved', event_id = $1,
                                       closed_at = clock_timestamp()
                    FROM candidates c
                    WHERE w.workflow_id = c.workflow_id AND w.run_id = c.run_id
                      AND w.step_id = c.step_id
                    RETURNING w.workflow_id, w.step_id
                    """,
                    event_id,
                    event_type,
                    doc,
                    received,
                )
                await conn.executemany(
                    "INSERT INTO deliveries (event_id, kind, workflow_id, step_id) "
                    "VALUES ($1, 'signal', $2, $3) ON CONFLICT DO NOTHING",
                    [(event_id, r["workflow_id"], r["step_id"]) for r in resolved],
                )
            # A duplicate finishes only what was left pending for a while (a crash), not what
            # the first send is delivering right now.
            pending = await conn.fetch(
                "SELECT event_id, kind, workflow_id, step_id, workflow_type FROM deliveries"
                " WHERE event_id = $1 AND state = 'pending'"
                "   AND ($2 OR updated_at < clock_timestamp() - make_interval(secs => $3))",
                event_id,
                received is not None,
                REDELIVER_AFTER_SECONDS,
            )
        return received is not None, [Delivery(**dict(r)) for r in pending]

    async def register_wait(
        self,
        workflow_id: str,
        run_id: str,
        step_id: str,
        event_type: str,
        match: dict[str, Any],
        not_before: datetime,
    ) -> StoredEvent | None:
        """Open a wait, or claim the oldest stored event it matches that this workflow has not
        consumed; one transaction. Idempotent: a retried call returns what the first one did.

        `not_before` is the run's start by the workflow's clock. It is moved back by
        CLOCK_SKEW and capped at the database's now: the two clocks differ (by a little on a
        cluster, by days under a time-skipping test server)."""
        async with self.pool.acquire() as conn, conn.transaction():
            not_before = await conn.fetchval(
                "SELECT least($1::timestamptz - make_interval(secs => $2), clock_timestamp())",
                not_before,
                CLOCK_SKEW_SECONDS,
            )
            await conn.execute(_LOCK, event_type)
            existing = await conn.fetchrow(
                "SELECT state, event_id FROM waits "
                "WHERE workflow_id = $1 AND run_id = $2 AND step_id = $3",
                workflow_id,
                run_id,
                step_id,
            )
            if existing is not None:
                return await self._event(conn, existing["event_id"])
            row = await conn.fetchrow(
                """
                SELECT e.id, e.type, e.data, e.received_at FROM events e
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
                " state, event_id, closed_at) VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8,"
                " CASE WHEN $7 = 'resolved' THEN clock_timestamp() END)",
                workflow_id,
                run_id,
                step_id,
                event_type,
                json.dumps(match),
                not_before,
                "resolved" if row else "open",
                row["id"] if row else None,
            )
            return _event(row) if row else None

    async def close_wait(self, workflow_id: str, run_id: str, step_id: str) -> StoredEvent | None:
        """Time a wait out, unless an event resolved it first: then return that event."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT event_type FROM waits "
                "WHERE workflow_id = $1 AND run_id = $2 AND step_id = $3",
                workflow_id,
                run_id,
                step_id,
            )
            if row is None:
                return None
            await conn.execute(_LOCK, row["event_type"])
            event_id = await conn.fetchval(
                "UPDATE waits SET state = CASE WHEN state = 'open' THEN 'timed-out' ELSE state END,"
                " closed_at = coalesce(closed_at, clock_timestamp())"
                " WHERE workflow_id = $1 AND run_id = $2 AND step_id = $3 RETURNING event_id",
                workflow_id,
                run_id,
                step_id,
            )
            return await self._event(conn, event_id)

    async def settle_any(
        self, workflow_id: str, run_id: str, step_ids: list[str], keep: str | None
    ) -> tuple[str | None, StoredEvent | None]:
        """Finish the waits of one wait_for_any. The wait `keep` (or, with None, the first one
        an event resolved) keeps its event; the others are withdrawn and give back any event
        they claimed, for later waits. Returns (the kept wait, its event)."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT step_id, event_type, event_id, closed_at FROM waits"
                " WHERE workflow_id = $1 AND run_id = $2 AND step_id = ANY($3::text[])"
                " ORDER BY closed_at NULLS LAST, step_id",
                workflow_id,
                run_id,
                step_ids,
            )
            for event_type in sorted({r["event_type"] for r in rows}):
                await conn.execute(_LOCK, event_type)
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
            return keep, await self._event(conn, kept)

    async def _event(self, conn: Any, event_id: str | None) -> StoredEvent | None:
        if event_id is None:
            return None
        row = await conn.fetchrow(
            "SELECT id, type, data, received_at FROM events WHERE id = $1", event_id
        )
        return _event(row) if row else None

    async def get(self, event_id: str) -> StoredEvent | None:
        async with self.pool.acquire() as conn:
            return await self._event(conn, event_id)

    async def finish(self, delivery: Delivery, state: str, error: str | None = None) -> None:
        await self.pool.execute(
            "UPDATE deliveries SET state = $5, last_error = $6, attempts = attempts + 1,"
            " updated_at = clock_timestamp()"
            " WHERE event_id = $1 AND kind = $2 AND workflow_id = $3 AND step_id = $4",
            delivery.event_id,
            delivery.kind,
            delivery.workflow_id,
            delivery.step_id,
            state,
            error,
        )

    async def stale(
        self, older_than_seconds: float = REDELIVER_AFTER_SECONDS, limit: int = 100
    ) -> list[Delivery]:
        """Pending deliveries nobody finished: what a crash between commit and delivery left."""
        rows = await self.pool.fetch(
            "SELECT event_id, kind, workflow_id, step_id, workflow_type FROM deliveries"
            " WHERE state = 'pending'"
            "   AND updated_at < clock_timestamp() - make_interval(secs => $1)"
            " ORDER BY updated_at LIMIT $2",
            older_than_seconds,
            limit,
        )
        return [Delivery(**dict(r)) for r in rows]

    async def deliveries_of(self, event_id: str) -> list[tuple[Delivery, str]]:
        rows = await self.pool.fetch(
            "SELECT event_id, kind, workflow_id, step_id, workflow_type, state FROM deliveries"
            " WHERE event_id = $1 ORDER BY created_at",
            event_id,
        )
        return [
            (
                Delivery(
                    r["event_id"], r["kind"], r["workflow_id"], r["step_id"], r["workflow_type"]
                ),
                r["state"],
            )
            for r in rows
        ]

    async def open_waits(self, workflow_id: str) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT step_id, event_type, match, created_at FROM waits"
            " WHERE workflow_id = $1 AND state = 'open' ORDER BY created_at",
            workflow_id,
        )
        return [{**dict(r), "match": json.loads(r["match"])} for r in rows]

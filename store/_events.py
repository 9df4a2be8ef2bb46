"""Events, waits and the delivery outbox in Postgres.

Storing an event and registering a wait take the same per-type advisory lock, so of an event
and a wait that arrive together exactly one sees the other: the wait claims the stored event,
or the event resolves the open wait. Nothing falls between them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from opentelemetry.trace import TracerProvider

from durable import EventConflict, Tenancy
from durable._limits import SLOT_GRANTED

from ._tracing import db_spans, store_tracer

# A pending delivery this old is taken to be abandoned by a crashed sender and is re-sent.
REDELIVER_AFTER_SECONDS = 5.0
# How far the Temporal cluster's clock and the database's may disagree.
CLOCK_SKEW_SECONDS = 5.0
_LOCK = "SELECT pg_advisory_xact_lock(hashtext('durable-events:' || $1))"
_SLOT_LOCK = "SELECT pg_advisory_xact_lock(hashtext('durable-slots:' || $1 || ':' || $2))"
# Each public method's database work is a span `db.events.<method>`; the dispatcher's
# polls get one only inside a trace, so they do not start a trace every pass.
_span = db_spans("events")
_span_in_trace = db_spans("events", root=False)


@dataclass(frozen=True)
class StoredEvent:
    id: str
    type: str
    data: dict[str, Any]
    received_at: datetime
    tenancy: Tenancy | None = None

    def document(self) -> dict[str, Any]:
        doc = {"id": self.id, "data": self.data, "received_at": self.received_at.isoformat()}
        if self.tenancy is not None:
            doc["tenancy"] = self.tenancy.model_dump()
        return doc


@dataclass(frozen=True)
class Delivery:
    event_id: str
    kind: str  # "signal" or "start"
    workflow_id: str
    step_id: str
    workflow_type: str
    delay_seconds: float = 0.0  # a throttled start waits this long before its first step
    run_id: str = ""  # a signal's execution (Temporal run id); '' for a start


@dataclass(frozen=True)
class ThrottleKey:
    """A throttle applied to one start: `limit` starts of the type per `key` per period."""

    key: str
    limit: int
    period_seconds: float
    skip: bool  # over the limit: True records the start as throttled, False delays it


@dataclass(frozen=True)
class StartRequest:
    workflow_type: str
    workflow_id: str
    throttle: ThrottleKey | None = None
    concurrency: tuple[str, int] | None = None  # (key, limit): slots go in event order


@dataclass(frozen=True)
class Ingested:
    new: bool  # False: the id was stored before, nothing new was queued
    pending: list[Delivery]  # what the caller should deliver now
    throttled: list[str]  # starts a throttle skipped


# The columns of a Delivery, with the delay a throttled start still has to wait.
_DELIVERY = (
    "event_id, kind, workflow_id, step_id, workflow_type, run_id,"
    " coalesce(greatest(extract(epoch FROM start_at - clock_timestamp()), 0), 0)::float8"
    " AS delay_seconds"
)


def _event(row: asyncpg.Record) -> StoredEvent:
    scope = row["tenancy"]
    return StoredEvent(
        row["id"],
        row["type"],
        json.loads(row["data"]),
        row["received_at"],
        Tenancy.model_validate_json(scope) if scope else None,
    )


async def _throttle(
    conn: Any, workflow_type: str, throttle: ThrottleKey, event_id: str, now: datetime
) -> datetime | None:
    """When a start may begin under a sliding-window throttle, or None if it is skipped.

    With the window's starts s1 >= s2 >= ... (granted times, some in the future for delayed
    starts), the next start can go at max(now, s_limit + period): then no window of `period`
    holds more than `limit` starts."""
    period = timedelta(seconds=throttle.period_seconds)
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext('durable-throttle:' || $1 || ':' || $2))",
        workflow_type,
        throttle.key,
    )
    await conn.execute(
        "DELETE FROM throttle_slots WHERE workflow_type = $1 AND key = $2 AND slot_at <= $3",
        workflow_type,
        throttle.key,
        now - period,
    )
    recent = await conn.fetch(
        "SELECT slot_at FROM throttle_slots WHERE workflow_type = $1 AND key = $2"
        " ORDER BY slot_at DESC LIMIT $3",
        workflow_type,
        throttle.key,
        throttle.limit,
    )
    at = now if len(recent) < throttle.limit else max(now, recent[-1]["slot_at"] + period)
    if at > now and throttle.skip:
        return None
    await conn.execute(
        "INSERT INTO throttle_slots (workflow_type, key, slot_at, event_id)"
        " VALUES ($1, $2, $3, $4)",
        workflow_type,
        throttle.key,
        at,
        event_id,
    )
    return at


async def _take_slot(conn: Any, workflow_type: str, key: str, limit: int, workflow_id: str) -> bool:
    await conn.execute(_SLOT_LOCK, workflow_type, key)
    state = await conn.fetchval(
        "SELECT state FROM concurrency_slots"
        " WHERE workflow_type = $1 AND key = $2 AND workflow_id = $3",
        workflow_type,
        key,
        workflow_id,
    )
    if state is None:
        holding = await conn.fetchval(
            "SELECT count(*) FROM concurrency_slots"
            " WHERE workflow_type = $1 AND key = $2 AND state = 'holding'",
            workflow_type,
            key,
        )
        state = "holding" if holding < limit else "queued"
        await conn.execute(
            "INSERT INTO concurrency_slots (workflow_type, key, workflow_id, state)"
            " VALUES ($1, $2, $3, $4)",
            workflow_type,
            key,
            workflow_id,
            state,
        )
    return bool(state == "holding")


class EventStore:
    def __init__(
        self, pool: asyncpg.Pool, *, tracer_provider: TracerProvider | None = None
    ) -> None:
        self.pool = pool
        self._tracer = store_tracer(tracer_provider)

    @_span
    async def ingest(
        self,
        event_id: str,
        event_type: str,
        data: dict[str, Any],
        starts: list[StartRequest],
        tenancy: Tenancy | None = None,
    ) -> Ingested:
        """Store an event once; queue each start it triggers (subject to its throttle) and a
        signal per open wait it satisfies (one per workflow). Returns every pending delivery of
        it, so a redelivered duplicate still finishes what a crash left undone."""
        async with self.pool.acquire() as conn, conn.transaction():
            return await self._ingest(conn, event_id, event_type, data, starts, tenancy)

    async def _ingest(
        self,
        conn: Any,
        event_id: str,
        event_type: str,
        data: dict[str, Any],
        starts: list[StartRequest],
        tenancy: Tenancy | None = None,
    ) -> Ingested:
        doc = json.dumps({"data": data})
        await conn.execute(_LOCK, event_type)
        received = await conn.fetchval(
            "INSERT INTO events (id, type, data, tenancy) VALUES ($1, $2, $3::jsonb, $4::jsonb)"
            " ON CONFLICT (id) DO NOTHING RETURNING received_at",
            event_id,
            event_type,
            json.dumps(data),
            tenancy.model_dump_json() if tenancy is not None else None,
        )
        throttled: list[str] = []
        org_id = tenancy.org_id if tenancy is not None else ""
        if received is None:
            same = await conn.fetchval(
                "SELECT type = $2 AND data = $3::jsonb"
                " AND coalesce(tenancy->>'org_id', '') = $4 FROM events WHERE id = $1",
                event_id,
                event_type,
                json.dumps(data),
                org_id,
            )
            if same is False:
                raise EventConflict(event_id)
        if received is not None:
            for start in starts:
                at: datetime | None = received
                if start.throttle is not None:
                    at = await _throttle(
                        conn, start.workflow_type, start.throttle, event_id, received
                    )
                if at is None:
                    throttled.append(start.workflow_id)
                elif start.concurrency is not None and at == received:
                    # Take the run's place now, so slots go in the order events arrived.
                    key, limit = start.concurrency
                    await _take_slot(conn, start.workflow_type, key, limit, start.workflow_id)
                await conn.execute(
                    "INSERT INTO deliveries (event_id, kind, workflow_id, workflow_type, state,"
                    " start_at) VALUES ($1, 'start', $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                    event_id,
                    start.workflow_id,
                    start.workflow_type,
                    "pending" if at is not None else "throttled",
                    at,
                )
            resolved = await conn.fetch(
                """
                WITH candidates AS (
                    SELECT DISTINCT ON (workflow_id) workflow_id, run_id, step_id
                    FROM waits
                    WHERE state = 'open' AND event_type = $2 AND $3::jsonb @> match
                      AND not_before <= $4 AND org_id = $5
                    ORDER BY workflow_id, created_at
                )
                UPDATE waits w SET state = 'resolved', event_id = $1,
                                   closed_at = clock_timestamp()
                FROM candidates c
                WHERE w.workflow_id = c.workflow_id AND w.run_id = c.run_id
                  AND w.step_id = c.step_id
                RETURNING w.workflow_id, w.run_id, w.step_id
                """,
                event_id,
                event_type,
                doc,
                received,
                org_id,
            )
            await conn.executemany(
                "INSERT INTO deliveries (event_id, kind, workflow_id, step_id, run_id) "
                "VALUES ($1, 'signal', $2, $3, $4) ON CONFLICT DO NOTHING",
                [(event_id, r["workflow_id"], r["step_id"], r["run_id"]) for r in resolved],
            )
        # A duplicate finishes only what was left pending for a while (a crash), not what
        # the first send is delivering right now.
        pending = await conn.fetch(
            f"SELECT {_DELIVERY} FROM deliveries"
            " WHERE event_id = $1 AND state = 'pending'"
            "   AND ($2 OR updated_at < clock_timestamp() - make_interval(secs => $3))",
            event_id,
            received is not None,
            REDELIVER_AFTER_SECONDS,
        )
        return Ingested(received is not None, [Delivery(**dict(r)) for r in pending], throttled)

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
    ) -> StoredEvent | None:
        """Open a wait, or claim the oldest stored event it matches that this workflow has not
        consumed; one transaction. Idempotent: a retried call returns what the first one did.
        Only an event of the run's own org (`org_id`, '' for a run of none) resolves it.

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
                SELECT e.id, e.type, e.data, e.received_at, e.tenancy FROM events e
                WHERE e.type = $1 AND jsonb_build_object('data', e.data) @> $2::jsonb
                  AND e.received_at >= $3 AND coalesce(e.tenancy->>'org_id', '') = $5
                  AND NOT EXISTS (SELECT 1 FROM waits w
                                  WHERE w.workflow_id = $4 AND w.event_id = e.id)
                ORDER BY e.received_at, e.id LIMIT 1
                """,
                event_type,
                json.dumps(match),
                not_before,
                workflow_id,
                org_id,
            )
            await conn.execute(
                "INSERT INTO waits (workflow_id, run_id, step_id, event_type, match, not_before,"
                " state, event_id, closed_at, org_id) VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7,"
                " $8, CASE WHEN $7 = 'resolved' THEN clock_timestamp() END, $9)",
                workflow_id,
                run_id,
                step_id,
                event_type,
                json.dumps(match),
                not_before,
                "resolved" if row else "open",
                row["id"] if row else None,
                org_id,
            )
            return _event(row) if row else None

    @_span
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

    @_span
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
            "SELECT id, type, data, received_at, tenancy FROM events WHERE id = $1", event_id
        )
        return _event(row) if row else None

    @_span
    async def get(self, event_id: str) -> StoredEvent | None:
        async with self.pool.acquire() as conn:
            return await self._event(conn, event_id)

    @_span
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

    @_span_in_trace
    async def stale(
        self, older_than_seconds: float = REDELIVER_AFTER_SECONDS, limit: int = 100
    ) -> list[Delivery]:
        """Pending deliveries nobody finished: what a crash between commit and delivery left."""
        rows = await self.pool.fetch(
            f"SELECT {_DELIVERY} FROM deliveries"
            " WHERE state = 'pending'"
            "   AND updated_at < clock_timestamp() - make_interval(secs => $1)"
            " ORDER BY updated_at LIMIT $2",
            older_than_seconds,
            limit,
        )
        return [Delivery(**dict(r)) for r in rows]

    @_span
    async def deliveries_of(self, event_id: str) -> list[tuple[Delivery, str]]:
        rows = await self.pool.fetch(
            f"SELECT {_DELIVERY}, state FROM deliveries WHERE event_id = $1 ORDER BY created_at",
            event_id,
        )
        return [
            (Delivery(**{k: v for k, v in dict(r).items() if k != "state"}), r["state"])
            for r in rows
        ]

    @_span
    async def acquire_slot(
        self, workflow_type: str, key: str, limit: int, workflow_id: str
    ) -> bool:
        """Take one of `limit` concurrency slots for `key`, or join its queue. Returns whether
        the run holds a slot; when it is queued, `release_slot` of an earlier run sends it a
        `durable/slot.granted` event. Idempotent: a retry returns the run's current state, and
        a run started by an event finds the place its event took on arrival."""
        async with self.pool.acquire() as conn, conn.transaction():
            return await _take_slot(conn, workflow_type, key, limit, workflow_id)

    @_span
    async def release_slot(
        self, workflow_type: str, key: str, limit: int, workflow_id: str
    ) -> list[Delivery]:
        """Leave the slot (or the queue) of `key`, and hand free slots to the oldest queued
        runs: each gets a `durable/slot.granted` event, stored in this transaction, so a grant
        is never lost. Returns the deliveries to make now."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(_SLOT_LOCK, workflow_type, key)
            await conn.execute(
                "DELETE FROM concurrency_slots"
                " WHERE workflow_type = $1 AND key = $2 AND workflow_id = $3",
                workflow_type,
                key,
                workflow_id,
            )
            promoted = await conn.fetch(
                """
                UPDATE concurrency_slots SET state = 'holding', checked_at = clock_timestamp()
                WHERE workflow_type = $1 AND key = $2 AND workflow_id IN (
                    SELECT workflow_id FROM concurrency_slots
                    WHERE workflow_type = $1 AND key = $2 AND state = 'queued'
                    ORDER BY created_at, workflow_id
                    LIMIT greatest($3 - (SELECT count(*) FROM concurrency_slots
                                         WHERE workflow_type = $1 AND key = $2
                                           AND state = 'holding'), 0))
                RETURNING workflow_id
                """,
                workflow_type,
                key,
                limit,
            )
            pending: list[Delivery] = []
            for row in promoted:
                granted = await self._ingest(
                    conn,
                    f"durable-slot:{row['workflow_id']}",
                    SLOT_GRANTED,
                    {"workflow_id": row["workflow_id"], "key": key},
                    [],
                )
                pending += granted.pending
            return pending

    @_span_in_trace
    async def slots_to_check(
        self, older_than_seconds: float, limit: int = 100
    ) -> list[tuple[str, str, str]]:
        """Slot holders and queued runs not checked for a while, as (type, key, workflow id),
        marked checked: the dispatcher releases those whose run has ended without releasing
        (terminated, timed out)."""
        rows = await self.pool.fetch(
            """
            UPDATE concurrency_slots SET checked_at = clock_timestamp()
            WHERE (workflow_type, key, workflow_id) IN (
                SELECT workflow_type, key, workflow_id FROM concurrency_slots
                WHERE checked_at < clock_timestamp() - make_interval(secs => $1)
                ORDER BY checked_at LIMIT $2)
            RETURNING workflow_type, key, workflow_id
            """,
            older_than_seconds,
            limit,
        )
        return [(r["workflow_type"], r["key"], r["workflow_id"]) for r in rows]

    @_span
    async def slots(self, workflow_type: str, key: str) -> dict[str, list[str]]:
        """Who holds and who queues for the slots of `key`, oldest first."""
        rows = await self.pool.fetch(
            "SELECT workflow_id, state FROM concurrency_slots"
            " WHERE workflow_type = $1 AND key = $2 ORDER BY created_at, workflow_id",
            workflow_type,
            key,
        )
        out: dict[str, list[str]] = {"holding": [], "queued": []}
        for r in rows:
            out[r["state"]].append(r["workflow_id"])
        return out

    @_span
    async def open_waits(self, workflow_id: str) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT step_id, event_type, match, created_at FROM waits"
            " WHERE workflow_id = $1 AND state = 'open' ORDER BY created_at",
            workflow_id,
        )
        return [{**dict(r), "match": json.loads(r["match"])} for r in rows]

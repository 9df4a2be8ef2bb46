"""Events and the delivery outbox in Postgres, per org.

Storing an event and registering a wait (`_waits.py`) take the same per-type advisory lock, so
of an event and a wait that arrive together exactly one sees the other: the wait claims the
stored event, or the event resolves the open wait. Nothing falls between them. Every statement
runs as the event's org under row-level security (`_org.py`): an event resolves waits of its
own org only, and an id another org has used is a conflict, never a duplicate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from opentelemetry.trace import TracerProvider

from durable import EventConflict, Tenancy
from durable._limits import SLOT_GRANTED

from ._org import as_org, each_org
from ._records import DELIVERY_COLUMNS, LOCK, Delivery, StoredEvent, load_event
from ._slots import ThrottleKey, holders, leave_slot, take_slot, throttle, unchecked
from ._tracing import db_spans, store_tracer
from ._waits import CLOCK_SKEW_SECONDS, WaitMethods

__all__ = ["CLOCK_SKEW_SECONDS", "EventStore", "Ingested", "StartRequest"]

# A pending delivery this old is taken to be abandoned by a crashed sender and is re-sent.
REDELIVER_AFTER_SECONDS = 5.0
# Each public method's database work is a span `db.events.<method>`; the dispatcher's
# polls get one only inside a trace, so they do not start a trace every pass.
_span = db_spans("events")
_span_in_trace = db_spans("events", root=False)


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


def _delivery(row: asyncpg.Record) -> Delivery:
    return Delivery(**{k: v for k, v in dict(row).items() if k != "state"})


class EventStore(WaitMethods):
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
        org_id = tenancy.org_id if tenancy is not None else ""
        async with as_org(self.pool, org_id) as conn:
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
        org_id = tenancy.org_id if tenancy is not None else ""
        await conn.execute(LOCK, event_type)
        received = await conn.fetchval(
            "INSERT INTO events (id, type, data, tenancy, org_id)"
            " VALUES ($1, $2, $3::jsonb, $4::jsonb, $5)"
            " ON CONFLICT (id) DO NOTHING RETURNING received_at",
            event_id,
            event_type,
            json.dumps(data),
            tenancy.model_dump_json() if tenancy is not None else None,
            org_id,
        )
        throttled: list[str] = []
        if received is None:
            # Not visible at all: another org holds the id. A conflict, like different content.
            same = await conn.fetchval(
                "SELECT type = $2 AND data = $3::jsonb FROM events WHERE id = $1",
                event_id,
                event_type,
                json.dumps(data),
            )
            if same is not True:
                raise EventConflict(event_id)
        if received is not None:
            for start in starts:
                at: datetime | None = received
                if start.throttle is not None:
                    at = await throttle(
                        conn, start.workflow_type, start.throttle, event_id, received, org_id
                    )
                if at is None:
                    throttled.append(start.workflow_id)
                elif start.concurrency is not None and at == received:
                    # Take the run's place now, so slots go in the order events arrived.
                    key, limit = start.concurrency
                    await take_slot(
                        conn, start.workflow_type, key, limit, start.workflow_id, org_id
                    )
                await conn.execute(
                    "INSERT INTO deliveries (event_id, kind, workflow_id, workflow_type, state,"
                    " start_at, org_id) VALUES ($1, 'start', $2, $3, $4, $5, $6)"
                    " ON CONFLICT DO NOTHING",
                    event_id,
                    start.workflow_id,
                    start.workflow_type,
                    "pending" if at is not None else "throttled",
                    at,
                    org_id,
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
                RETURNING w.workflow_id, w.run_id, w.step_id
                """,
                event_id,
                event_type,
                doc,
                received,
            )
            await conn.executemany(
                "INSERT INTO deliveries (event_id, kind, workflow_id, step_id, run_id, org_id) "
                "VALUES ($1, 'signal', $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                [(event_id, r["workflow_id"], r["step_id"], r["run_id"], org_id) for r in resolved],
            )
        # A duplicate finishes only what was left pending for a while (a crash), not what
        # the first send is delivering right now.
        pending = await conn.fetch(
            f"SELECT {DELIVERY_COLUMNS} FROM deliveries"
            " WHERE event_id = $1 AND state = 'pending'"
            "   AND ($2 OR updated_at < clock_timestamp() - make_interval(secs => $3))",
            event_id,
            received is not None,
            REDELIVER_AFTER_SECONDS,
        )
        return Ingested(received is not None, [_delivery(r) for r in pending], throttled)

    @_span
    async def get(self, event_id: str, *, org_id: str) -> StoredEvent | None:
        """The stored event of `org_id`; None for an id unknown to that org."""
        async with as_org(self.pool, org_id) as conn:
            return await load_event(conn, event_id)

    @_span
    async def finish(self, delivery: Delivery, state: str, error: str | None = None) -> None:
        async with as_org(self.pool, delivery.org_id) as conn:
            await conn.execute(
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
        """Pending deliveries nobody finished, of every org: what a crash between commit and
        delivery left."""

        async def of_org(conn: Any, _org: str, room: int) -> list[Delivery]:
            rows = await conn.fetch(
                f"SELECT {DELIVERY_COLUMNS} FROM deliveries"
                " WHERE state = 'pending'"
                "   AND updated_at < clock_timestamp() - make_interval(secs => $1)"
                " ORDER BY updated_at LIMIT $2",
                older_than_seconds,
                room,
            )
            return [_delivery(r) for r in rows]

        return await each_org(self.pool, of_org, limit)

    @_span
    async def deliveries_of(self, event_id: str, *, org_id: str) -> list[tuple[Delivery, str]]:
        async with as_org(self.pool, org_id) as conn:
            rows = await conn.fetch(
                f"SELECT {DELIVERY_COLUMNS}, state FROM deliveries WHERE event_id = $1"
                " ORDER BY created_at",
                event_id,
            )
        return [(_delivery(r), r["state"]) for r in rows]

    @_span
    async def acquire_slot(
        self, workflow_type: str, key: str, limit: int, workflow_id: str, *, org_id: str
    ) -> bool:
        """Take one of `limit` concurrency slots for `key`, or join its queue. Returns whether
        the run holds a slot; when it is queued, `release_slot` of an earlier run sends it a
        `durable/slot.granted` event. Idempotent: a retry returns the run's current state, and
        a run started by an event finds the place its event took on arrival."""
        async with as_org(self.pool, org_id) as conn:
            return await take_slot(conn, workflow_type, key, limit, workflow_id, org_id)

    @_span
    async def release_slot(
        self, workflow_type: str, key: str, limit: int, workflow_id: str, *, org_id: str
    ) -> list[Delivery]:
        """Leave the slot (or the queue) of `key`, and hand free slots to the oldest queued
        runs: each gets a `durable/slot.granted` event, stored in this transaction, so a grant
        is never lost. Returns the deliveries to make now."""
        async with as_org(self.pool, org_id) as conn:
            pending: list[Delivery] = []
            for promoted in await leave_slot(conn, workflow_type, key, limit, workflow_id):
                granted = await self._ingest(
                    conn,
                    f"durable-slot:{promoted}",
                    SLOT_GRANTED,
                    {"workflow_id": promoted, "key": key},
                    [],
                    Tenancy(org_id=org_id) if org_id else None,
                )
                pending += granted.pending
            return pending

    @_span_in_trace
    async def slots_to_check(
        self, older_than_seconds: float, limit: int = 100
    ) -> list[tuple[str, str, str, str]]:
        """Slot holders and queued runs of every org not checked for a while, as (type, key,
        workflow id, org), marked checked: the dispatcher releases those whose run has ended
        without releasing (terminated, timed out)."""

        async def of_org(conn: Any, org_id: str, room: int) -> list[tuple[str, str, str, str]]:
            return [(*row, org_id) for row in await unchecked(conn, older_than_seconds, room)]

        return await each_org(self.pool, of_org, limit)

    @_span
    async def slots(self, workflow_type: str, key: str, *, org_id: str) -> dict[str, list[str]]:
        """Who holds and who queues for the slots of `key` in `org_id`, oldest first."""
        async with as_org(self.pool, org_id) as conn:
            return await holders(conn, workflow_type, key)

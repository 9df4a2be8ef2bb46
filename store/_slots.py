"""Flow control for event-triggered starts, per org: throttle windows and concurrency slots.

A throttle is a sliding window of granted start times per (workflow type, key); a concurrency
limit is a set of holders and a queue per (workflow type, key), granted in event order. Both
live under row-level security, so two orgs using the same key never share a limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

_SLOT_LOCK = "SELECT pg_advisory_xact_lock(hashtext('durable-slots:' || $1 || ':' || $2))"
_THROTTLE_LOCK = "SELECT pg_advisory_xact_lock(hashtext('durable-throttle:' || $1 || ':' || $2))"


@dataclass(frozen=True)
class ThrottleKey:
    """A throttle applied to one start: `limit` starts of the type per `key` per period."""

    key: str
    limit: int
    period_seconds: float
    skip: bool  # over the limit: True records the start as throttled, False delays it


async def throttle(
    conn: Any, workflow_type: str, key: ThrottleKey, event_id: str, now: datetime, org_id: str
) -> datetime | None:
    """When a start may begin under a sliding-window throttle, or None if it is skipped.

    With the window's starts s1 >= s2 >= ... (granted times, some in the future for delayed
    starts), the next start can go at max(now, s_limit + period): then no window of `period`
    holds more than `limit` starts."""
    period = timedelta(seconds=key.period_seconds)
    await conn.execute(_THROTTLE_LOCK, workflow_type, key.key)
    await conn.execute(
        "DELETE FROM throttle_slots WHERE workflow_type = $1 AND key = $2 AND slot_at <= $3",
        workflow_type,
        key.key,
        now - period,
    )
    recent = await conn.fetch(
        "SELECT slot_at FROM throttle_slots WHERE workflow_type = $1 AND key = $2"
        " ORDER BY slot_at DESC LIMIT $3",
        workflow_type,
        key.key,
        key.limit,
    )
    at = now if len(recent) < key.limit else max(now, recent[-1]["slot_at"] + period)
    if at > now and key.skip:
        return None
    await conn.execute(
        "INSERT INTO throttle_slots (workflow_type, key, slot_at, event_id, org_id)"
        " VALUES ($1, $2, $3, $4, $5)",
        workflow_type,
        key.key,
        at,
        event_id,
        org_id,
    )
    return at


async def take_slot(
    conn: Any, workflow_type: str, key: str, limit: int, workflow_id: str, org_id: str
) -> bool:
    """Hold one of `limit` slots of `key`, or join its queue; whether the run holds one."""
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
            "INSERT INTO concurrency_slots (workflow_type, key, workflow_id, state, org_id)"
            " VALUES ($1, $2, $3, $4, $5)",
            workflow_type,
            key,
            workflow_id,
            state,
            org_id,
        )
    return bool(state == "holding")


async def leave_slot(
    conn: Any, workflow_type: str, key: str, limit: int, workflow_id: str
) -> list[str]:
    """Leave the slot (or the queue) of `key`; the queued runs promoted to the free slots,
    oldest first."""
    await conn.execute(_SLOT_LOCK, workflow_type, key)
    await conn.execute(
        "DELETE FROM concurrency_slots WHERE workflow_type = $1 AND key = $2 AND workflow_id = $3",
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
    return [r["workflow_id"] for r in promoted]


async def unchecked(conn: Any, older_than_seconds: float, limit: int) -> list[tuple[str, str, str]]:
    """Slot holders and queued runs of the connection's org not checked for a while, as (type,
    key, workflow id), marked checked."""
    rows = await conn.fetch(
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


async def holders(conn: Any, workflow_type: str, key: str) -> dict[str, list[str]]:
    """Who holds and who queues for the slots of `key`, oldest first."""
    rows = await conn.fetch(
        "SELECT workflow_id, state FROM concurrency_slots"
        " WHERE workflow_type = $1 AND key = $2 ORDER BY created_at, workflow_id",
        workflow_type,
        key,
    )
    out: dict[str, list[str]] = {"holding": [], "queued": []}
    for r in rows:
        out[r["state"]].append(r["workflow_id"])
    return out

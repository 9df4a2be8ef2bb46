"""What the event store hands out: stored events and deliveries, and how they are read."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from durable import Tenancy

# Storing an event and registering a wait take the same per-type advisory lock, so of an event
# and a wait that arrive together exactly one sees the other.
LOCK = "SELECT pg_advisory_xact_lock(hashtext('durable-events:' || $1))"


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
    org_id: str = ""  # the org of its event ('' for none)


# The columns of a Delivery, with the delay a throttled start still has to wait.
DELIVERY_COLUMNS = (
    "event_id, kind, workflow_id, step_id, workflow_type, run_id, org_id,"
    " coalesce(greatest(extract(epoch FROM start_at - clock_timestamp()), 0), 0)::float8"
    " AS delay_seconds"
)


def event_of(row: asyncpg.Record) -> StoredEvent:
    scope = row["tenancy"]
    return StoredEvent(
        row["id"],
        row["type"],
        json.loads(row["data"]),
        row["received_at"],
        Tenancy.model_validate_json(scope) if scope else None,
    )


async def load_event(conn: Any, event_id: str | None) -> StoredEvent | None:
    """The stored event `event_id` of the connection's org, or None."""
    if event_id is None:
        return None
    row = await conn.fetchrow(
        "SELECT id, type, data, received_at, tenancy FROM events WHERE id = $1", event_id
    )
    return event_of(row) if row else None

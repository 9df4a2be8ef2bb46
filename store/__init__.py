"""Postgres: the connection pool and versioned migrations."""

from ._events import Delivery, EventStore, Ingested, StartRequest, StoredEvent, ThrottleKey
from ._migrations import MIGRATIONS, Migration, applied_versions, migrate
from ._pool import DatabaseUnreachable, create_pool

__all__ = [
    "MIGRATIONS",
    "DatabaseUnreachable",
    "Delivery",
    "EventStore",
    "Ingested",
    "StartRequest",
    "ThrottleKey",
    "StoredEvent",
    "Migration",
    "applied_versions",
    "create_pool",
    "migrate",
]

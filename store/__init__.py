"""Postgres: the connection pool and versioned migrations."""

from ._audit import LOST_ATTEMPT, StepAttempt, StepAudit
from ._events import EventStore, Ingested, StartRequest
from ._fleet import (
    PROJECT_ID,
    PROVIDERS,
    Capacity,
    FleetError,
    FleetStore,
    Placement,
    Pool,
    Registration,
    RegistrationRefused,
    Route,
    WorkerRecord,
    pool_task_queue,
)
from ._keys import ApiKey, KeyRefused, KeyStore, NewKey, org_of_key
from ._memory import MemoryNote, MemoryStore, SessionOutcome, Written
from ._migrations import MIGRATIONS, Migration, applied_versions, migrate
from ._org import APP_ROLE, as_org
from ._pm import PmStore
from ._pool import (
    CONNECTION_ERRORS,
    DatabaseUnreachable,
    StoreUnavailable,
    create_pool,
    describe_connection_error,
)
from ._records import Delivery, StoredEvent
from ._sessions import (
    NewSession,
    ProgressLine,
    SessionRecord,
    SessionStore,
    result_ref,
    session_of,
)
from ._slots import ThrottleKey

__all__ = [
    "APP_ROLE",
    "as_org",
    "ApiKey",
    "KeyRefused",
    "KeyStore",
    "NewKey",
    "org_of_key",
    "CONNECTION_ERRORS",
    "StoreUnavailable",
    "LOST_ATTEMPT",
    "MIGRATIONS",
    "DatabaseUnreachable",
    "Delivery",
    "EventStore",
    "FleetStore",
    "FleetError",
    "PROJECT_ID",
    "PROVIDERS",
    "Capacity",
    "pool_task_queue",
    "Placement",
    "Pool",
    "Route",
    "WorkerRecord",
    "Registration",
    "RegistrationRefused",
    "Ingested",
    "StartRequest",
    "StepAttempt",
    "StepAudit",
    "ThrottleKey",
    "StoredEvent",
    "Migration",
    "applied_versions",
    "create_pool",
    "describe_connection_error",
    "migrate",
    "MemoryNote",
    "MemoryStore",
    "NewSession",
    "SessionOutcome",
    "Written",
    "PmStore",
    "ProgressLine",
    "SessionRecord",
    "SessionStore",
    "result_ref",
    "session_of",
]

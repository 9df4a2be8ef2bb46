"""The provider-neutral interface for durable workflows.

Workflows are written against this package only; adapters (such as `adapters.temporal`) run
them. Nothing here imports a provider SDK.
"""

from ._activity import (
    DEFAULT_FAST_STEP_TIMEOUT,
    DEFAULT_HEARTBEAT_TIMEOUT,
    DEFAULT_STEP_TIMEOUT,
    Activity,
    activity,
    declare_activity,
    implements,
)
from ._activity_context import ActivityContext, StepInfo, activity_context
from ._client import DurableClient, RunDescription, RunHandle, RunStatus, StuckRun
from ._context import Steps, WorkflowContext
from ._duration import Duration, DurationText, parse_duration
from ._errors import (
    DuplicateStepId,
    DurableError,
    InputValidationError,
    InvalidDefinition,
    InvalidDuration,
    InvalidTrigger,
    NonRetryableError,
    RetryAfter,
    RunAlreadyStarted,
    RunCancelled,
    ServiceUnavailable,
    StepFailed,
    UnknownActivity,
    UnknownRun,
    UnknownWorkflow,
    WorkflowCancelled,
    WorkflowFailed,
    validation_message,
)
from ._events import (
    MAX_EVENT_BYTES,
    MAX_EVENT_ID,
    MAX_JSON_DEPTH,
    Event,
    EventConflict,
    EventError,
    EventNotAcknowledged,
    EventReceipt,
    On,
    Wait,
    derived_event_id,
    parse_event,
    reserved_producer,
    scoped_event_id,
)
from ._limits import Concurrency, Throttle
from ._registry import Registry
from ._retry import DEFAULT_RETRY, NO_RETRY, RetryPolicy
from ._schedule import Schedule
from ._tenancy import Tenancy
from ._trigger import CronTrigger, EventTrigger, Trigger, parse_trigger, validate_event_name
from ._workflow import Approvers, DurableWorkflow, workflow

__all__ = [
    "ServiceUnavailable",
    "StuckRun",
    "validation_message",
    "MAX_JSON_DEPTH",
    "DurationText",
    "reserved_producer",
    "scoped_event_id",
    "Approvers",
    "DEFAULT_FAST_STEP_TIMEOUT",
    "DEFAULT_HEARTBEAT_TIMEOUT",
    "DEFAULT_RETRY",
    "DEFAULT_STEP_TIMEOUT",
    "MAX_EVENT_BYTES",
    "MAX_EVENT_ID",
    "NO_RETRY",
    "Activity",
    "ActivityContext",
    "Concurrency",
    "CronTrigger",
    "DuplicateStepId",
    "DurableClient",
    "DurableError",
    "DurableWorkflow",
    "Duration",
    "Event",
    "EventConflict",
    "EventError",
    "EventNotAcknowledged",
    "EventReceipt",
    "EventTrigger",
    "InputValidationError",
    "InvalidDefinition",
    "InvalidDuration",
    "InvalidTrigger",
    "NonRetryableError",
    "On",
    "Registry",
    "RetryAfter",
    "RetryPolicy",
    "RunAlreadyStarted",
    "RunCancelled",
    "RunDescription",
    "RunHandle",
    "RunStatus",
    "Schedule",
    "StepFailed",
    "StepInfo",
    "Tenancy",
    "Steps",
    "Throttle",
    "Trigger",
    "UnknownActivity",
    "UnknownRun",
    "UnknownWorkflow",
    "WorkflowCancelled",
    "WorkflowContext",
    "Wait",
    "WorkflowFailed",
    "activity",
    "activity_context",
    "declare_activity",
    "derived_event_id",
    "implements",
    "parse_duration",
    "parse_event",
    "parse_trigger",
    "validate_event_name",
    "workflow",
]

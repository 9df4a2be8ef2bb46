"""PM agents: long-running product-management agents on durable workflows (see `registered`)."""

from .registered import (
    PM_AGENT_REGISTRATIONS,
    PmAgentRegistration,
    observed_agent_ids,
    pm_events,
    pm_schedules,
    pm_workflows,
)

__all__ = [
    "PM_AGENT_REGISTRATIONS",
    "PmAgentRegistration",
    "observed_agent_ids",
    "pm_events",
    "pm_schedules",
    "pm_workflows",
]

"""The workflows this product ships, written only against `durable`."""

from durable import Registry

from .agents import AGENT_EVENTS, AGENT_WORKFLOWS
from .audit import AUDIT_EVENTS, AUDIT_WORKFLOWS
from .events import ApprovalResolved
from .example import example, summarise
from .linear_events import LINEAR_EVENTS
from .memory import consolidate_memory, consolidate_org
from .pm import pm_events, pm_schedules, pm_workflows


def registry() -> Registry:
    """Every shipped workflow and the activities that need no injected client."""
    from activities.example import compose, plan, research

    return Registry(
        [
            example,
            summarise,
            *AGENT_WORKFLOWS,
            *pm_workflows(),
            *AUDIT_WORKFLOWS,
            consolidate_memory,
            consolidate_org,
        ],
        [plan, research, compose],
        [ApprovalResolved, *LINEAR_EVENTS, *AGENT_EVENTS, *pm_events(), *AUDIT_EVENTS],
        pm_schedules(),
    )


__all__ = ["registry"]

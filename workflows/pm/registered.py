"""The PM agents: `PM_AGENT_REGISTRATIONS`, and what is derived from it.

Adding a PM agent means writing its workflow (event-triggered by its manual trigger event, with
an input whose fields all have defaults) and appending one registration here. Everything else
follows from the list: the workflow and its events are registered, a cron schedule
`durable:pm.<agent>` starts `rensei/pm.schedule.tick`, which sends the manual trigger event once
per org the worker has Linear credentials for (so scheduled and manual runs take the same
path, with the same dedupe and the org's tenancy), and the completion bridge stamps the agent's
sessions with its observation agent id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

import durable
from activities.pm import ScheduledOrgs, scheduled_orgs

from .backlog_triage import AGENT_ID as TRIAGE_AGENT
from .backlog_triage import BacklogTriageRequested, backlog_triage
from .stale_sweeper import AGENT_ID as SWEEPER_AGENT
from .stale_sweeper import StaleSweepRequested, stale_sweeper
from .status_review import AGENT_ID as REVIEW_AGENT
from .status_review import StatusReviewRequested, status_review


@dataclass(frozen=True)
class PmAgentRegistration:
    """One PM agent.

    Attributes:
        workflow: Its workflow, triggered by `event`.
        cron: When it runs on its own (UTC), for every org with Linear credentials.
        event: Its manual trigger event; its data model's fields all have defaults.
        observation_agent_id: The agent id its sessions carry (`SessionRequest.agent_id`):
            the completion bridge and memory consolidation find its sessions by it.
    """

    workflow: durable.DurableWorkflow[Any, Any]
    cron: str
    event: type[durable.Event[Any]]
    observation_agent_id: str

    def __post_init__(self) -> None:
        if self.workflow.trigger_event is not self.event:
            raise durable.InvalidDefinition(
                f"PM agent {self.workflow.id!r} must be triggered by its manual trigger event "
                f"{self.event.type!r}"
            )
        durable.Schedule(self.schedule_id, TICK_WORKFLOW, self.cron)  # checks the cron

    @property
    def name(self) -> str:
        """`backlog-triage` for `rensei/pm.backlog-triage.run`."""
        return self.workflow.id.split("/", 1)[1].removeprefix("pm.").rsplit(".", 1)[0]

    @property
    def schedule_id(self) -> str:
        return f"pm.{self.name}"


TICK_WORKFLOW = "rensei/pm.schedule.tick"

PM_AGENT_REGISTRATIONS: list[PmAgentRegistration] = [
    PmAgentRegistration(
        workflow=backlog_triage,
        cron="0 9 * * 1-5",
        event=BacklogTriageRequested,
        observation_agent_id=TRIAGE_AGENT,
    ),
    PmAgentRegistration(
        workflow=status_review,
        cron="0 9 * * 1",
        event=StatusReviewRequested,
        observation_agent_id=REVIEW_AGENT,
    ),
    PmAgentRegistration(
        workflow=stale_sweeper,
        cron="0 8 * * 1",
        event=StaleSweepRequested,
        observation_agent_id=SWEEPER_AGENT,
    ),
]


def registration(name: str) -> PmAgentRegistration:
    for reg in PM_AGENT_REGISTRATIONS:
        if reg.name == name:
            return reg
    known = ", ".join(r.name for r in PM_AGENT_REGISTRATIONS)
    raise durable.InvalidDefinition(f"no PM agent {name!r} is registered (known: {known})")


def observed_agent_ids() -> list[str]:
    """The agent ids whose sessions the completion bridge and memory consolidation watch."""
    return sorted({reg.observation_agent_id for reg in PM_AGENT_REGISTRATIONS})


class PmTick(BaseModel):
    agent: str  # a registration's name, e.g. backlog-triage


class PmTickOutput(BaseModel):
    event: str
    orgs: list[str] = []
    events: list[str] = []


@durable.workflow(
    TICK_WORKFLOW, description="A PM agent's cron: send its trigger event once per org"
)
async def pm_tick(ctx: durable.WorkflowContext, input: PmTick) -> PmTickOutput:
    reg = registration(input.agent)
    orgs = await ctx.step.run("orgs", scheduled_orgs, ScheduledOrgs())
    out = PmTickOutput(event=reg.event.type, orgs=orgs.orgs)
    for org in orgs.orgs:
        event = reg.event.model_validate(
            {"id": "scheduled", "data": {}, "tenancy": {"org_id": org}}
        )
        out.events.append(await ctx.step.send_event(f"trigger:{org}", event))
    return out


def pm_workflows() -> list[durable.DurableWorkflow[Any, Any]]:
    return [pm_tick, *(reg.workflow for reg in PM_AGENT_REGISTRATIONS)]


def pm_events() -> list[type[durable.Event[Any]]]:
    return [reg.event for reg in PM_AGENT_REGISTRATIONS]


def pm_schedules() -> list[durable.Schedule]:
    return [
        durable.Schedule(reg.schedule_id, TICK_WORKFLOW, reg.cron, {"agent": reg.name})
        for reg in PM_AGENT_REGISTRATIONS
    ]

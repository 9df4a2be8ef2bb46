"""Memory consolidation: every night (or on demand) gather the agent sessions that completed
since the last consolidation, group them per org and project, and for each group dispatch an
agent that folds their outcomes into the project's memory note (given the note so far). The
note and the sessions it consumed are written in one transaction, once per group and run, so a
session is counted once however often a step is retried or a worker dies; a session that
completes while the run is going is left for the next run, since the run consumes only the
sessions it gathered. If another run (a manual one overlapping the nightly one) rewrote the
note after this run read it, this run's write is refused and its sessions are left for the
next run, rather than folding outcomes in twice or dropping the other run's.

A run started with an org (`durable start rensei/memory.consolidate.run --org acme`)
consolidates only that org's sessions. A scheduled run has no org: it is platform work across
every org, so it does none of an org's work itself. It finds the orgs with sessions to
consolidate and starts one run of each org (`rensei/memory.consolidate-org.run`, by an event
of that org's tenancy), so each group's agent session, its dispatch and completion events, the
wait for it and the note all belong to the group's org, never to org '' (which any reader of
no org could read). Sessions of no org are consolidated by such a run of no org, which takes
only those. A run still going makes the next scheduled one skip. Its own sessions (agent
`memory-consolidation`) are never consolidated.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, Field

import durable
from activities.agents import SessionRequest
from activities.memory import (
    NoteQuery,
    PendingQuery,
    ProjectGroup,
    WriteNote,
    current_note,
    pending_orgs,
    pending_sessions,
    write_note,
)
from workflows.pm.common import consult_agent

MEMORY_AGENT = "memory-consolidation"
ORG_WORKFLOW = "rensei/memory.consolidate-org.run"
# The patch that made a run of no org start a run per org instead of consolidating every org's
# sessions itself, under org '' (runs begun before it replay the old path).
PER_ORG_RUNS = "memory-per-org-runs"


class ConsolidateInput(BaseModel):
    max_sessions: int = Field(500, ge=1, le=5000, description="At most this many per run")
    runtime: str = "local"
    agent_timeout: durable.DurationText = "30m"


class GroupResult(BaseModel):
    org_id: str
    project: str
    sessions: int
    counted: int = 0
    error: str = ""


class OrgRun(BaseModel):
    org_id: str
    workflow_id: str


class ConsolidateOutput(BaseModel):
    gathered: int = 0
    counted: int = 0
    groups: list[GroupResult] = []
    started: list[OrgRun] = []  # a run of no org: the run of each org it started


class ConsolidateOrgRequested(durable.Event[ConsolidateInput]):
    """Consolidate the sessions of the event's org (its tenancy; none: the sessions of no org)."""

    type: ClassVar[str] = "rensei/memory.consolidate.requested"


def _label(group: ProjectGroup) -> str:
    return f"{group.org_id or '-'}/{group.project or '-'}"


async def _consolidate(
    ctx: durable.WorkflowContext, input: ConsolidateInput, org: str | None = None
) -> ConsolidateOutput:
    """Consolidate the sessions the run sees: its org's (or, asked, `org`'s only)."""
    pending = await ctx.step.run(
        "gather",
        pending_sessions,
        PendingQuery(limit=input.max_sessions, exclude_agents=[MEMORY_AGENT], org_id=org),
    )
    out = ConsolidateOutput(gathered=pending.count)
    for group in pending.groups:
        label = _label(group)
        result = GroupResult(
            org_id=group.org_id, project=group.project, sessions=len(group.sessions)
        )
        out.groups.append(result)
        current = await ctx.step.run(
            f"note:{label}", current_note, NoteQuery(org_id=group.org_id, project=group.project)
        )
        answer = await consult_agent(
            ctx,
            f"consolidate:{label}",
            SessionRequest(
                prompt=f"Consolidate what agents learned about {group.project or 'the org'}.",
                context={
                    "task": "consolidate-memory",
                    "project": group.project,
                    "previous": current.note,
                    "sessions": [s.model_dump() for s in group.sessions],
                },
                runtime=input.runtime,
                timeout=input.agent_timeout,
                agent_id=MEMORY_AGENT,
                project=group.project,
            ),
        )
        note = answer.result.get("note") if isinstance(answer.result, dict) else None
        if not answer.ok or not isinstance(note, str) or not note.strip():
            # Left unconsumed: the next run tries these sessions again.
            result.error = answer.error or "the agent's answer has no note"
            continue
        written = await ctx.step.run(
            f"write:{label}",
            write_note,
            WriteNote(
                org_id=group.org_id,
                project=group.project,
                note=note,
                session_ids=[s.session_id for s in group.sessions],
                based_on=current.sessions,
            ),
        )
        if written.stale:
            result.error = "another run changed the note meanwhile; left for the next run"
            continue
        result.counted = written.counted
        out.counted += written.counted
    return out


async def _start_per_org(
    ctx: durable.WorkflowContext, input: ConsolidateInput
) -> ConsolidateOutput:
    """A run of no org: start a run of each org with sessions to consolidate, under that org."""
    pending = await ctx.step.run(
        "orgs",
        pending_orgs,
        PendingQuery(limit=input.max_sessions, exclude_agents=[MEMORY_AGENT]),
    )
    out = ConsolidateOutput()
    for org in pending.orgs:
        event = ConsolidateOrgRequested(
            data=input, tenancy=durable.Tenancy(org_id=org) if org else None
        )
        event_id = await ctx.step.send_event(f"start:{org}", event)
        out.started.append(OrgRun(org_id=org, workflow_id=f"{ORG_WORKFLOW}:{event_id}"))
    return out


@durable.workflow(
    ORG_WORKFLOW,
    trigger=ConsolidateOrgRequested,
    description="Fold one org's completed agent sessions into its memory notes, in that org",
)
async def consolidate_org(
    ctx: durable.WorkflowContext, input: ConsolidateOrgRequested
) -> ConsolidateOutput:
    # Only the run's own org, even for a run of none: it never does another org's work.
    return await _consolidate(ctx, input.data, org=ctx.tenancy.org_id)


@durable.workflow(
    "rensei/memory.consolidate.run",
    trigger="0 3 * * *",
    description="Fold completed agent sessions into per-project memory notes",
)
async def consolidate_memory(
    ctx: durable.WorkflowContext, input: ConsolidateInput
) -> ConsolidateOutput:
    if ctx.tenancy.org_id or not ctx.patched(PER_ORG_RUNS):
        # A run of an org; or a run of none begun before PER_ORG_RUNS (replayed as it ran).
        return await _consolidate(ctx, input)
    return await _start_per_org(ctx, input)

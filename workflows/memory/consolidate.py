"""Memory consolidation: every night (or on demand) gather the agent sessions that completed
since the last consolidation, group them per org and project, and for each group dispatch an
agent that folds their outcomes into the project's memory note (given the note so far). The
note and the sessions it consumed are written in one transaction, once per group and run, so a
session is counted once however often a step is retried or a worker dies; a session that
completes while the run is going is left for the next run, since the run consumes only the
sessions it gathered. If another run (a manual one overlapping the nightly one) rewrote the
note after this run read it, this run's write is refused and its sessions are left for the
next run, rather than folding outcomes in twice or dropping the other run's.

A scheduled run has no org: it is platform work across every org, and writes each org's note
under that org. A run started with an org (`durable start rensei/memory.consolidate.run --org
acme`) consolidates only that org's sessions. A run still going makes the next scheduled one
skip. Its own sessions (agent `memory-consolidation`) are never consolidated.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

import durable
from activities.agents import SessionRequest
from activities.memory import (
    NoteQuery,
    PendingQuery,
    ProjectGroup,
    WriteNote,
    current_note,
    pending_sessions,
    write_note,
)
from workflows.pm.common import consult_agent

MEMORY_AGENT = "memory-consolidation"


class ConsolidateInput(BaseModel):
    max_sessions: int = Field(500, ge=1, le=5000, description="At most this many per run")
    runtime: str = "local"
    agent_timeout: str = "30m"


class GroupResult(BaseModel):
    org_id: str
    project: str
    sessions: int
    counted: int = 0
    error: str = ""


class ConsolidateOutput(BaseModel):
    gathered: int = 0
    counted: int = 0
    groups: list[GroupResult] = []


def _label(group: ProjectGroup) -> str:
    return f"{group.org_id or '-'}/{group.project or '-'}"


async def _consolidate(ctx: durable.WorkflowContext, input: ConsolidateInput) -> ConsolidateOutput:
    pending = await ctx.step.run(
        "gather",
        pending_sessions,
        PendingQuery(limit=input.max_sessions, exclude_agents=[MEMORY_AGENT]),
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


@durable.workflow(
    "rensei/memory.consolidate.run",
    trigger="0 3 * * *",
    description="Fold completed agent sessions into per-project memory notes",
)
async def consolidate_memory(
    ctx: durable.WorkflowContext, input: ConsolidateInput
) -> ConsolidateOutput:
    return await _consolidate(ctx, input)

"""Workflows that wait for a human's approval (`rensei/approval.resolved`, as the PM agents do),
for the API's authentication tests. Written against `durable` only."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel

import durable
from workflows.agents import AgentSessionCompleted
from workflows.events import Approval, ApprovalResolved
from workflows.linear_events import LINEAR_EVENTS


class Gate(BaseModel):
    topic: str = ""


class GateRequested(durable.Event[Gate]):
    type: ClassVar[str] = "tests/gate.requested"


class Note(durable.Event[Gate]):
    """An event that starts nothing and answers nothing: needs only `events:send`."""

    type: ClassVar[str] = "tests/note.posted"


class Decided(BaseModel):
    decision: str = ""
    by: str = ""
    via: str = ""
    timed_out: bool = False


async def _await(ctx: durable.WorkflowContext) -> Decided:
    answer = await ctx.step.wait_for_event(
        "await-approval",
        ApprovalResolved,
        where={"data.workflow_id": ctx.workflow_id},
        timeout="10m",
    )
    if answer is None:
        return Decided(timed_out=True)
    approval: Approval = answer.data
    return Decided(decision=approval.decision, by=approval.by, via=approval.via)


@durable.workflow("tests/gate.run", trigger=GateRequested)
async def gate(ctx: durable.WorkflowContext, input: GateRequested) -> Decided:
    return await _await(ctx)


@durable.workflow(
    "tests/release-gate.run",
    approvers=durable.Approvers(scope="approve", principals=("key:release-manager",)),
)
async def release_gate(ctx: durable.WorkflowContext, input: Gate) -> Decided:
    return await _await(ctx)


REGISTRY = durable.Registry(
    [gate, release_gate],
    [],
    [GateRequested, Note, ApprovalResolved, AgentSessionCompleted, *LINEAR_EVENTS],
)

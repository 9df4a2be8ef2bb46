"""A dispatching workflow for the agent-session tests, written against `durable` only."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel

import durable
from workflows.agents import (
    AGENT_EVENTS,
    SessionRequest,
    agent_session,
    await_session,
    dispatch_agent,
    stop_sessions,
)


class Go(BaseModel):
    workflow_id: str


class GoAhead(durable.Event[Go]):
    """Lets a held parent go on to wait for its session."""

    type: ClassVar[str] = "tests/agents.go-ahead"


class ParentInput(BaseModel):
    prompt: str = "Triage these issues"
    context: dict[str, Any] = {}
    runtime: str = "local"
    project: str = ""
    timeout: str = "1m"
    # Wait for a GoAhead before waiting for the session, so the session can end first.
    hold: bool = False


class ParentOutput(BaseModel):
    session_id: str
    status: str = ""
    result_ref: str = ""
    summary: str = ""
    error: str = ""
    completion_id: str = ""


@durable.workflow("tests/agents-parent.run")
async def parent(ctx: durable.WorkflowContext, input: ParentInput) -> ParentOutput:
    session_id = await dispatch_agent(
        ctx,
        "dispatch",
        SessionRequest(
            prompt=input.prompt,
            context=input.context,
            runtime=input.runtime,
            project=input.project,
            timeout=input.timeout,
        ),
    )
    try:
        if input.hold:
            await ctx.step.wait_for_event(
                "hold", GoAhead, where={"data.workflow_id": ctx.workflow_id}, timeout="1h"
            )
        done = await await_session(ctx, "await-agent", session_id, timeout="1h")
    except durable.WorkflowCancelled:
        await stop_sessions(ctx, "stop-agent", [session_id], "the parent was cancelled")
        raise
    if done is None:
        return ParentOutput(session_id=session_id, status="no answer")
    return ParentOutput(
        session_id=session_id,
        status=done.data.status,
        result_ref=done.data.result_ref,
        summary=done.data.summary,
        error=done.data.error,
        completion_id=done.id,
    )


REGISTRY = durable.Registry([agent_session, parent], events=[*AGENT_EVENTS, GoAhead])

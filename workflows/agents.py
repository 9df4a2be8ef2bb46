"""Agent sessions: a run of their own per session, and the completion bridge.

A workflow dispatches a session with `dispatch_agent` (it returns the session id at once and
goes on), and later resumes from `await_session` (a wait for
`rensei/pm.agent-session.completed` with `data.session_id`). The completion is stored in the
event store even when the session ends before anyone waits, and a wait counts events since its
run started, so a session that finishes first is not missed.

    session_id = await dispatch_agent(ctx, "dispatch", SessionRequest(prompt=..., context=...))
    ...                                    # other steps while the agent works
    done = await await_session(ctx, "await-agent", session_id, timeout="2h")

A session is an event-triggered run (`rensei/pm.agent-session.run`), so it is started once per
dispatch step, with the id `rensei/pm.agent-session.run:<dispatch event id>`: that is the
session id. It is not a child run, so cancelling the dispatching run does not reach it by
itself: catch `WorkflowCancelled` and call `stop_sessions` (see `agent_demo`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel

import durable
from activities.agents import (
    AgentSessionCompleted,
    AgentSessionRequested,
    Announce,
    CancelSessions,
    FinishSession,
    RunAgent,
    SessionCompletion,
    SessionRequest,
    SessionStatus,
    announce_completion,
    cancel_sessions,
    clip,
    finish_session,
    run_agent,
)
from activities.agents.models import MAX_ERROR_CHARS, AgentRan
from activities.fleet import RouteSession, route_session
from store import result_ref

SESSION_WORKFLOW = "rensei/pm.agent-session.run"
# The runtime step may run this much longer than the session's own timeout (which the runtime
# enforces and reports as `timed_out`) before the provider stops it.
RUNTIME_GRACE = timedelta(minutes=1)
# A worker lost mid-session: run the agent again elsewhere, twice at most. Misbehaving agents
# (unreadable output, non-zero exit, timeout) fail at once: they raise non-retryable errors.
RUNTIME_RETRY = durable.RetryPolicy(max_attempts=3, initial_interval="5s")
# Recording the end is idempotent and must happen: retry until the store is back.
FINISH_RETRY = durable.RetryPolicy(max_attempts=0, max_interval="30s")
CANCELLED = "the session was cancelled"
# On a fleet pool the step gets one attempt per placement; a failure the agent did not cause
# (not a NonRetryableError, not the session's own timeout) sends the session back to the route,
# which places it again, up to MAX_PLACEMENTS times. When the worker was lost (its heartbeats
# stopped, or nobody picked the session up in QUEUE_TIMEOUT), its pool is tried last from then on.
PLACED_RETRY = durable.RetryPolicy(max_attempts=1)
QUEUE_TIMEOUT = timedelta(minutes=2)
MAX_PLACEMENTS = 3
LOST_WORKER = ("timed out (heartbeat)", "timed out (schedule-to-start)")
FLEET_ROUTES = "fleet-routes"  # the patch that brought routing (runs begun before skip it)
TIMED_OUT_CAUSES = ("AgentTimedOut", "Timeout")


def session_id_for(dispatch_event_id: str) -> str:
    """The session started by a dispatch event: the ingress names an event-triggered run
    `{workflow id}:{event id}`."""
    return f"{SESSION_WORKFLOW}:{dispatch_event_id}"


def _failed(err: durable.StepFailed) -> SessionStatus:
    """`timed_out` is the agent running past its time; a worker lost on every try is a failure
    of where it ran, not a timeout of the agent."""
    if err.cause in LOST_WORKER:
        return "failed"
    return "timed_out" if err.cause_type in TIMED_OUT_CAUSES else "failed"


def _error_of(err: durable.StepFailed) -> str:
    if err.cause in LOST_WORKER:
        return (
            f"the worker running it was lost ({err.cause}) on every try; see `durable fleet status`"
        )
    return clip(err.cause, MAX_ERROR_CHARS)


async def _close(
    ctx: durable.WorkflowContext,
    request: SessionRequest,
    outcome: SessionCompletion,
    *,
    again: bool,
) -> SessionCompletion:
    """Record the terminal status, then send the completion. The event id is fixed per run, so
    a second round after a cancellation interrupted the first sends nothing twice."""
    suffix = "-after-cancel" if again else ""
    finished = await ctx.step.run(
        f"finish{suffix}",
        finish_session,
        FinishSession(
            session_id=outcome.session_id,
            runtime=request.runtime,
            status=outcome.status,
            error=outcome.error,
            requested_by=request.requested_by,
            project=request.project,
            agent_id=request.agent_id,
        ),
        retry=FINISH_RETRY,
    )
    outcome = outcome.model_copy(update={"status": finished.status, "agent_id": request.agent_id})
    await ctx.step.run(
        f"announce{suffix}",
        announce_completion,
        Announce(
            event_id=durable.derived_event_id(ctx.workflow_id, ctx.run_id, "completed"),
            completion=outcome,
        ),
    )
    return outcome


async def _run_placed(
    ctx: durable.WorkflowContext, request: SessionRequest, run: RunAgent, limit: timedelta
) -> AgentRan:
    deadline = ctx.now() + limit  # waiting for capacity ends with the session's own time
    """Route the session (a project without a route runs on the run's own queue, as before),
    run it on the pool's queue, and place it again when its worker is lost."""
    avoid: list[str] = []
    lost = False
    for n in range(1, MAX_PLACEMENTS + 1):
        suffix = "" if n == 1 else f"#{n}"
        routed = await ctx.step.run(
            f"route{suffix}",
            route_session,
            RouteSession(
                session_id=run.session_id,
                project=request.project,
                runtime=request.runtime,
                prompt=request.prompt,
                requested_by=request.requested_by,
                agent_id=request.agent_id,
                auth_mode=request.auth_mode,
                avoid=avoid,
                lost=lost,
                deadline=deadline,
            ),
        )
        own_queue = routed.queue is None  # no route: as before, retried in place
        try:
            return await ctx.step.run(
                f"run-agent{suffix}",
                run_agent,
                run,
                retry=RUNTIME_RETRY if own_queue else PLACED_RETRY,
                timeout=limit + RUNTIME_GRACE,
                queue=routed.queue,
                queue_timeout=None if own_queue else QUEUE_TIMEOUT,
            )
        except durable.StepFailed as err:
            lost = err.cause in LOST_WORKER
            own_fault = err.non_retryable or (err.cause_type == "Timeout" and not lost)
            if own_queue or n == MAX_PLACEMENTS or own_fault:
                raise
            if lost:
                avoid = [*avoid, routed.pool_id]
    raise AssertionError("unreachable")  # the loop returns or raises


@durable.workflow(
    SESSION_WORKFLOW,
    trigger=AgentSessionRequested,
    description="Run an agent session; announce its end once",
)
async def agent_session(
    ctx: durable.WorkflowContext, input: AgentSessionRequested
) -> SessionCompletion:
    request = input.data
    session_id = ctx.workflow_id
    limit = durable.parse_duration(request.timeout)
    reference = result_ref(session_id)
    cancelled = False
    run = RunAgent(
        session_id=session_id,
        runtime=request.runtime,
        prompt=request.prompt,
        context=request.context,
        timeout_seconds=limit.total_seconds(),
        requested_by=request.requested_by,
        project=request.project,
        linear_agent_session_id=request.linear_agent_session_id,
        agent_id=request.agent_id,
    )
    try:
        if ctx.patched(FLEET_ROUTES):
            ran = await _run_placed(ctx, request, run, limit)
        else:
            ran = await ctx.step.run(
                "run-agent", run_agent, run, retry=RUNTIME_RETRY, timeout=limit + RUNTIME_GRACE
            )
        outcome = SessionCompletion(
            session_id=session_id,
            status="completed",
            result_ref=ran.result_ref,
            summary=ran.summary,
        )
    except durable.StepFailed as err:
        outcome = SessionCompletion(
            session_id=session_id, status=_failed(err), result_ref=reference, error=_error_of(err)
        )
    except durable.WorkflowCancelled:
        cancelled = True
        outcome = SessionCompletion(
            session_id=session_id, status="cancelled", result_ref=reference, error=CANCELLED
        )
    try:
        outcome = await _close(ctx, request, outcome, again=False)
    except durable.WorkflowCancelled:
        # A cancellation that lands while the end is announced is delivered once: the second
        # round runs to the end. The outcome stays what the agent did.
        outcome = await _close(ctx, request, outcome, again=True)
    if cancelled:
        raise durable.WorkflowCancelled(f"agent session {session_id} was cancelled")
    return outcome


# --- what a dispatching workflow calls ---------------------------------------------------------


async def dispatch_agent(
    ctx: durable.WorkflowContext, step_id: str, request: SessionRequest
) -> str:
    """Start an agent session and return its id at once; the session runs on its own, on the
    task queue its project routes to (the dispatching run's project when none is given)."""
    request = request.model_copy(
        update={
            "requested_by": request.requested_by or ctx.workflow_id,
            "project": request.project or ctx.tenancy.project_id,
        }
    )
    event_id = await ctx.step.send_event(step_id, AgentSessionRequested(data=request))
    return session_id_for(event_id)


async def await_session(
    ctx: durable.WorkflowContext, step_id: str, session_id: str, *, timeout: durable.Duration
) -> AgentSessionCompleted | None:
    """Wait for a session's completion (None after `timeout`). A completion sent before this
    wait began counts, as long as it came after this run started."""
    return await ctx.step.wait_for_event(
        step_id, AgentSessionCompleted, where={"data.session_id": session_id}, timeout=timeout
    )


async def stop_sessions(
    ctx: durable.WorkflowContext, step_id: str, session_ids: list[str], reason: str = ""
) -> None:
    """Cancel sessions (those still running): their runtimes are stopped and each announces
    its end as `cancelled`. Call it when the dispatching run is cancelled."""
    if session_ids:
        await ctx.step.run(
            step_id, cancel_sessions, CancelSessions(session_ids=session_ids, reason=reason)
        )


# --- the demo ----------------------------------------------------------------------------------


# The demo waits this much longer than the session may run, so it hears the session's own end.
DEMO_WAIT_MARGIN = timedelta(minutes=1)


class AgentDemoInput(BaseModel):
    prompt: str = "Triage these issues: propose labels and a priority for each."
    issues: list[dict[str, str]] = [
        {"id": "DEMO-1", "title": "App crashes when saving a draft"},
        {"id": "DEMO-2", "title": "Add support for dark mode"},
        {"id": "DEMO-3", "title": "Typo in the README"},
    ]
    runtime: str = "local"
    project: str = ""
    timeout: durable.DurationText = "10m"
    # Seconds the local agent works (reporting progress each second), to watch it with
    # `durable session` or cancel it.
    work_seconds: float = 0.0


class AgentDemoOutput(BaseModel):
    session_id: str
    status: str
    result_ref: str = ""
    summary: str = ""
    error: str = ""


@durable.workflow(
    "rensei/pm.agent-demo.run", description="Dispatch an agent session and resume on its end"
)
async def agent_demo(ctx: durable.WorkflowContext, input: AgentDemoInput) -> AgentDemoOutput:
    context: dict[str, object] = {"issues": input.issues}
    if input.work_seconds:
        context["sleep"] = input.work_seconds
    session_id = await dispatch_agent(
        ctx,
        "dispatch",
        SessionRequest(
            prompt=input.prompt,
            context=context,
            runtime=input.runtime,
            project=input.project,
            timeout=input.timeout,
        ),
    )
    wait = durable.parse_duration(input.timeout) + RUNTIME_GRACE + DEMO_WAIT_MARGIN
    try:
        done = await await_session(ctx, "await-agent", session_id, timeout=wait)
    except durable.WorkflowCancelled:
        await stop_sessions(ctx, "stop-agent", [session_id], "the dispatching run was cancelled")
        raise
    if done is None:
        await stop_sessions(ctx, "stop-agent", [session_id], "no answer in time")
        return AgentDemoOutput(session_id=session_id, status="timed_out")
    return AgentDemoOutput(
        session_id=session_id,
        status=done.data.status,
        result_ref=done.data.result_ref,
        summary=done.data.summary,
        error=done.data.error,
    )


AGENT_EVENTS: list[type[durable.Event[Any]]] = [AgentSessionRequested, AgentSessionCompleted]
AGENT_WORKFLOWS: list[durable.DurableWorkflow[Any, Any]] = [agent_session, agent_demo]

__all__ = [
    "AGENT_EVENTS",
    "AGENT_WORKFLOWS",
    "SESSION_WORKFLOW",
    "AgentDemoInput",
    "AgentDemoOutput",
    "AgentSessionCompleted",
    "AgentSessionRequested",
    "SessionCompletion",
    "SessionRequest",
    "agent_demo",
    "agent_session",
    "await_session",
    "dispatch_agent",
    "session_id_for",
    "stop_sessions",
]

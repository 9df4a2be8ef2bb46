"""Approval-style workflows for the event tests, written against `durable` only."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel

import durable


class Requested(BaseModel):
    request_id: str
    delay: str = ""  # sleep this long before waiting, so the answer can arrive first
    timeout: str = "1h"


class Resolved(BaseModel):
    request_id: str
    decision: str
    notes: str = ""


class ApprovalRequested(durable.Event[Requested]):
    type: ClassVar[str] = "tests/approval.requested"


class ApprovalResolved(durable.Event[Resolved]):
    type: ClassVar[str] = "tests/approval.resolved"


class Outcome(BaseModel):
    decisions: list[str] = []
    event_ids: list[str] = []
    timed_out: bool = False


@durable.workflow(
    "tests/approval.run",
    trigger=ApprovalRequested,
    waits=[durable.Wait(event=ApprovalResolved, match="data.request_id")],
)
async def approval(ctx: durable.WorkflowContext, input: ApprovalRequested) -> Outcome:
    if input.data.delay:
        await ctx.step.sleep("delay", input.data.delay)
    answer = await ctx.step.wait_for_event(
        "await-approval", ApprovalResolved, match="data.request_id", timeout=input.data.timeout
    )
    if answer is None:
        return Outcome(timed_out=True)
    return Outcome(decisions=[answer.data.decision], event_ids=[answer.id])


class Review(BaseModel):
    request_id: str
    rounds: int = 3


@durable.workflow("tests/review.run")
async def review(ctx: durable.WorkflowContext, input: Review) -> Outcome:
    """An approve/revise loop: each round consumes a different event."""
    out = Outcome()
    for _ in range(input.rounds):
        answer = await ctx.step.wait_for_event(
            ctx.step.indexed("review"),
            ApprovalResolved,
            where={"data.request_id": input.request_id},
            timeout="1h",
        )
        if answer is None:
            out.timed_out = True
            break
        out.decisions.append(answer.data.decision)
        out.event_ids.append(answer.id)
        if answer.data.decision == "approve":
            break
    return out


class Announce(BaseModel):
    request_id: str


class Sent(BaseModel):
    event_id: str


@durable.workflow("tests/announce.run")
async def announce(ctx: durable.WorkflowContext, input: Announce) -> Sent:
    event_id = await ctx.step.send_event(
        "announce",
        ApprovalResolved(data=Resolved(request_id=input.request_id, decision="approve")),
    )
    return Sent(event_id=event_id)


REGISTRY = durable.Registry([approval, review, announce])


class CancelledData(BaseModel):
    request_id: str


class RequestCancelled(durable.Event[CancelledData]):
    type: ClassVar[str] = "tests/request.cancelled"


class FirstOf(BaseModel):
    request_id: str


@durable.workflow("tests/first-of.run")
async def first_of(ctx: durable.WorkflowContext, input: FirstOf) -> Outcome:
    """The first of an answer or a cancellation; then, to show the withdrawn wait took nothing,
    a plain wait for the answer."""
    where = {"data.request_id": input.request_id}
    first = await ctx.step.wait_for_any(
        "answer-or-cancel",
        [durable.On(ApprovalResolved, where=where), durable.On(RequestCancelled, where=where)],
        timeout="1h",
    )
    out = Outcome()
    if first is None:
        out.timed_out = True
        return out
    out.decisions.append(first.type)
    out.event_ids.append(first.id)
    later = await ctx.step.wait_for_event("answer", ApprovalResolved, where=where, timeout="1h")
    if later is not None:
        out.decisions.append(later.type)
        out.event_ids.append(later.id)
    return out


REGISTRY.add_workflow(first_of)
REGISTRY.add_event(RequestCancelled)


# Flow control: throttle (delay), dedupe (throttle with excess="skip"), concurrency per key.


class Message(BaseModel):
    conversation_id: str


class MessageReceived(durable.Event[Message]):
    type: ClassVar[str] = "tests/message.received"


@durable.workflow(
    "tests/dedupe.run",
    trigger=MessageReceived,
    throttle=durable.Throttle("data.conversation_id", 1, "1h", excess="skip"),
)
async def deduped(ctx: durable.WorkflowContext, input: MessageReceived) -> Sent:
    """One run per conversation per hour; the rest are recorded as throttled."""
    return Sent(event_id=input.id)


@durable.workflow(
    "tests/throttled.run", trigger=MessageReceived, throttle=("data.conversation_id", 2, "1h")
)
async def throttled(ctx: durable.WorkflowContext, input: MessageReceived) -> Sent:
    """Two runs per conversation per hour; the rest start later."""
    return Sent(event_id=input.id)


class Job(BaseModel):
    project_id: str
    job_id: str


class JobQueued(durable.Event[Job]):
    type: ClassVar[str] = "tests/job.queued"


class JobFinished(durable.Event[Job]):
    type: ClassVar[str] = "tests/job.finished"


@durable.workflow(
    "tests/limited.run",
    trigger=JobQueued,
    concurrency=durable.Concurrency("data.project_id", 2),
    waits=[durable.Wait(JobFinished, match="data.job_id")],
)
async def limited(ctx: durable.WorkflowContext, input: JobQueued) -> Sent:
    """At most two jobs per project at once; each runs until told it finished."""
    done = await ctx.step.wait_for_event("work", JobFinished, match="data.job_id", timeout="1h")
    return Sent(event_id=done.id if done else "")


for _flow in (deduped, throttled, limited):
    REGISTRY.add_workflow(_flow)


class Rounds(BaseModel):
    request_id: str
    rounds: int = 3
    decisions: list[str] = []
    event_ids: list[str] = []


@durable.workflow("tests/rounds.run")
async def rounds(ctx: durable.WorkflowContext, input: Rounds) -> Outcome:
    """One answer per execution, continuing as new between rounds, as a long review loop does
    to keep its history small. The step id is the same in every execution."""
    answer = await ctx.step.wait_for_event(
        "answer", ApprovalResolved, where={"data.request_id": input.request_id}, timeout="1h"
    )
    if answer is None:
        return Outcome(decisions=input.decisions, event_ids=input.event_ids, timed_out=True)
    done = input.model_copy(
        update={
            "decisions": [*input.decisions, answer.data.decision],
            "event_ids": [*input.event_ids, answer.id],
        }
    )
    if len(done.event_ids) >= input.rounds:
        return Outcome(decisions=done.decisions, event_ids=done.event_ids)
    ctx.continue_as_new(done)


REGISTRY.add_workflow(rounds)


class Careless(BaseModel):
    wait: str = "1s"


class Strict(BaseModel):
    wait: durable.DurationText


@durable.workflow("tests/careless.run")
async def careless(ctx: durable.WorkflowContext, input: Careless) -> Outcome:
    """Builds, in workflow code, data its own models refuse (its input was not checked)."""
    Strict(wait=input.wait)
    return Outcome()


REGISTRY.add_workflow(careless)

"""Steps that never succeed: one that may retry for ever (what `durable stuck` must notice),
one whose error is huge."""

from __future__ import annotations

from pydantic import BaseModel

import durable


class Nothing(BaseModel):
    pass


@durable.activity(
    "tests.unreachable-service",
    retry=durable.RetryPolicy(max_attempts=0, initial_interval="200ms", max_interval="500ms"),
)
async def unreachable_service(input: Nothing) -> Nothing:
    raise RuntimeError("the billing service answered 400: card declined")


@durable.workflow("tests/stubborn.run")
async def stubborn(ctx: durable.WorkflowContext, input: Nothing) -> Nothing:
    return await ctx.step.run("charge", unreachable_service, input)


class Cause(BaseModel):
    cause: str = ""
    cause_type: str = ""


@durable.activity("tests.verbose-failure", retry=durable.RetryPolicy(max_attempts=1))
async def verbose_failure(input: Nothing) -> Nothing:
    raise RuntimeError("the agent said: " + "blah " * 100_000 + "and then it gave up")


@durable.workflow("tests/verbose.run")
async def verbose(ctx: durable.WorkflowContext, input: Nothing) -> Cause:
    try:
        await ctx.step.run("talk", verbose_failure, input)
    except durable.StepFailed as failed:
        return Cause(cause=failed.cause, cause_type=failed.cause_type)
    return Cause()


class Reached(BaseModel):
    attempt: int
    calls: int


_CALLS: dict[str, int] = {}


@durable.activity(
    "tests.service-down-for-a-while", retry=durable.RetryPolicy(max_attempts=1), timeout="60s"
)
async def service_down_for_a_while(input: Nothing) -> Reached:
    """Its service is away for the first four calls of the run, then back."""
    info = durable.activity_context().info
    calls = _CALLS[info.workflow_id] = _CALLS.get(info.workflow_id, 0) + 1
    if calls <= 4:
        raise durable.ServiceUnavailable("billing is down for maintenance", service="billing")
    return Reached(attempt=info.attempt, calls=calls)


@durable.workflow("tests/outlast.run")
async def outlast(ctx: durable.WorkflowContext, input: Nothing) -> Reached:
    return await ctx.step.run("charge", service_down_for_a_while, input)

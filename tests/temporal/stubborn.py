"""A step that never succeeds and may retry for ever: what `durable stuck` must notice."""

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
    raise ConnectionRefusedError("the billing service at 127.0.0.1:9 refused the connection")


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

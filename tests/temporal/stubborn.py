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

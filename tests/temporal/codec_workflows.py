"""A run that carries a secret: in its input, through a step, and in its output."""

from __future__ import annotations

from pydantic import BaseModel

import durable


class Secret(BaseModel):
    canary: str


class Seen(BaseModel):
    text: str


class Revealed(BaseModel):
    given: str
    from_step: str


@durable.activity("tests.codec.reveal")
async def reveal(input: Secret) -> Seen:
    return Seen(text=f"the step saw {input.canary}")


@durable.workflow("tests/codec.run")
async def carry_secret(ctx: durable.WorkflowContext, input: Secret) -> Revealed:
    seen = await ctx.step.run("reveal", reveal, input)
    return Revealed(given=input.canary, from_step=seen.text)


REGISTRY = durable.Registry([carry_secret], [reveal])

"""The same workload written against `durable`."""

from __future__ import annotations

import durable

from .models import Inp, Out


@durable.activity("bench.step")
async def step(input: Inp) -> Out:
    return Out(n=input.n + 1)


@durable.workflow("bench/steps.run")
async def steps(ctx: durable.WorkflowContext, input: Inp) -> Out:
    value = input
    out = Out(n=input.n)
    for i in range(input.steps):
        out = await ctx.step.run(f"step-{i}", step, value, fast=input.fast)
        value = Inp(n=out.n, steps=input.steps, fast=input.fast)
    return out


REGISTRY = durable.Registry([steps], [step])

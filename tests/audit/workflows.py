"""Workflows whose steps the audit tests count, written against `durable` only."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel

import durable


class Job(BaseModel):
    key: str
    fail_times: int = 0
    seconds: float = 0.0
    secret: str = ""


class Done(BaseModel):
    attempt: int
    org_id: str
    project_id: str


@durable.activity("audit.work", retry=durable.RetryPolicy(max_attempts=3, initial_interval="100ms"))
async def work(input: Job) -> Done:
    """Fails its first `fail_times` attempts; reports the tenancy it was given."""
    info = durable.activity_context().info
    if info.attempt <= input.fail_times:
        raise RuntimeError(f"flaky {input.key} (attempt {info.attempt})")
    await asyncio.sleep(input.seconds)
    return Done(
        attempt=info.attempt, org_id=info.tenancy.org_id, project_id=info.tenancy.project_id
    )


@durable.activity(
    "audit.doomed", retry=durable.RetryPolicy(max_attempts=2, initial_interval="100ms")
)
async def doomed(input: Job) -> Done:
    raise RuntimeError(f"the upstream refused {input.key}")


class Report(BaseModel):
    results: list[Done] = []
    failure: str = ""


@durable.workflow("tests/audit-three.run")
async def three_steps(ctx: durable.WorkflowContext, input: Job) -> Report:
    """Three steps: one plain, one that fails once, one short (a local activity)."""
    first = await ctx.step.run("fetch", work, input)
    second = await ctx.step.run("analyse", work, input.model_copy(update={"fail_times": 1}))
    third = await ctx.step.run("record", work, input, fast=True)
    return Report(results=[first, second, third])


@durable.workflow("tests/audit-fail.run")
async def failing(ctx: durable.WorkflowContext, input: Job) -> Report:
    try:
        await ctx.step.run("call-upstream", doomed, input)
    except durable.StepFailed as err:
        return Report(failure=str(err))
    return Report()


@durable.workflow("tests/audit-long.run")
async def long_running(ctx: durable.WorkflowContext, input: Job) -> Report:
    done = await ctx.step.run("long-work", work, input)
    return Report(results=[done])


@durable.workflow("tests/audit-parent.run")
async def parent(ctx: durable.WorkflowContext, input: Job) -> Report:
    """A child run inherits the tenancy."""
    child = await ctx.step.invoke("child", long_running, input)
    return child


BODY_RUNS: dict[str, int] = {}


@durable.activity(
    "audit.patient",
    retry=durable.RetryPolicy(max_attempts=30, initial_interval="200ms", max_interval="500ms"),
)
async def patient(input: Job) -> Done:
    """Succeeds every time; counts how often its body ran."""
    BODY_RUNS[input.key] = BODY_RUNS.get(input.key, 0) + 1
    info = durable.activity_context().info
    return Done(attempt=info.attempt, org_id=info.tenancy.org_id, project_id="")


@durable.workflow("tests/audit-patient.run")
async def patient_run(ctx: durable.WorkflowContext, input: Job) -> Report:
    return Report(results=[await ctx.step.run("write", patient, input)])


REGISTRY = durable.Registry(
    [three_steps, failing, long_running, parent, patient_run], [work, doomed, patient]
)

"""Workflows and activities the conformance suite runs. Written against `durable` only.

Activities count their calls in `CALLS` (keyed by the run's `key`), so tests can see how many
times a side effect really happened. Workflows never touch `CALLS`.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import timedelta
from typing import Any

from pydantic import BaseModel

import durable

CALLS: Counter[tuple[str, str]] = Counter()
EVENTS: dict[str, list[str]] = {}
_IN_FLIGHT: dict[str, int] = {}


class Key(BaseModel):
    key: str
    fail_times: int = 0
    seconds: float = 0.0
    message: str = "boom"


class Count(BaseModel):
    calls: int
    attempt: int = 1


def _record(key: str, what: str) -> int:
    CALLS[(key, what)] += 1
    EVENTS.setdefault(key, []).append(what)
    return CALLS[(key, what)]


@durable.activity("conformance.effect")
async def effect(input: Key) -> Count:
    """A side effect that counts itself."""
    return Count(calls=_record(input.key, "effect"))


@durable.activity(
    "conformance.flaky", retry=durable.RetryPolicy(max_attempts=5, initial_interval="100ms")
)
async def flaky(input: Key) -> Count:
    """Fails its first `fail_times` attempts."""
    calls = _record(input.key, "flaky")
    attempt = durable.activity_context().info.attempt
    if attempt <= input.fail_times:
        raise RuntimeError(f"{input.message} (attempt {attempt})")
    return Count(calls=calls, attempt=attempt)


@durable.activity("conformance.business-error")
async def business_error(input: Key) -> Count:
    _record(input.key, "business-error")
    raise durable.NonRetryableError(f"rejected: {input.message}", kind="Rejected")


@durable.activity("conformance.gather")
async def gather_point(input: Key) -> Count:
    """Waits until three attempts are in flight at once: only parallel steps get past it."""
    _IN_FLIGHT[input.key] = _IN_FLIGHT.get(input.key, 0) + 1
    for _ in range(200):
        if _IN_FLIGHT[input.key] >= 3:
            return Count(calls=_record(input.key, "gather"))
        await asyncio.sleep(0.05)
    raise durable.NonRetryableError("the three steps never ran at the same time")


@durable.activity("conformance.long", heartbeat_timeout="10s")
async def long_step(input: Key) -> Count:
    """Works for `seconds`; records whether it saw a cancellation and cleaned up."""
    _record(input.key, "long-started")
    try:
        await asyncio.sleep(input.seconds)
    except asyncio.CancelledError:
        _record(input.key, "long-cancelled-cleanup")
        raise
    return Count(calls=_record(input.key, "long-finished"))


@durable.activity("conformance.cleanup")
async def cleanup(input: Key) -> Count:
    return Count(calls=_record(input.key, "cleanup"))


ATTEMPT_TIMES: dict[str, list[float]] = {}


@durable.activity(
    "conformance.told-to-wait", retry=durable.RetryPolicy(max_attempts=3, initial_interval="50ms")
)
async def told_to_wait(input: Key) -> Count:
    """The first attempt is told to come back after `seconds` (a rate limit's reset)."""
    times = ATTEMPT_TIMES.setdefault(input.key, [])
    times.append(time.monotonic())
    attempt = durable.activity_context().info.attempt
    if attempt == 1:
        raise durable.RetryAfter("rate limited", timedelta(seconds=input.seconds))
    return Count(calls=len(times), attempt=attempt)


# --- workflows -------------------------------------------------------------------------------


class Outcome(BaseModel):
    values: list[int] = []
    step_id: str = ""
    attempts: int = 0
    cause: str = ""
    elapsed_seconds: float = 0.0
    flag: bool = False


@durable.workflow("conformance/memo.run")
async def memo(ctx: durable.WorkflowContext, input: Key) -> Outcome:
    first = await ctx.step.run("first", effect, input)
    await ctx.step.sleep("pause", timedelta(seconds=input.seconds or 0.1))
    second = await ctx.step.run("second", flaky, input)
    return Outcome(values=[first.calls, second.calls, second.attempt])


@durable.workflow("conformance/catch-failure.run")
async def catch_failure(ctx: durable.WorkflowContext, input: Key) -> Outcome:
    try:
        await ctx.step.run(
            "doomed",
            flaky,
            input,
            retry=durable.RetryPolicy(max_attempts=3, initial_interval="50ms"),
        )
    except durable.StepFailed as failed:
        return Outcome(step_id=failed.step_id, attempts=failed.attempts, cause=failed.cause)
    return Outcome()


@durable.workflow("conformance/retry-after.run")
async def retry_after(ctx: durable.WorkflowContext, input: Key) -> Outcome:
    done = await ctx.step.run("call", told_to_wait, input)
    return Outcome(values=[done.calls], attempts=done.attempt)


@durable.workflow("conformance/uncaught-failure.run")
async def uncaught_failure(ctx: durable.WorkflowContext, input: Key) -> Outcome:
    await ctx.step.run(
        "doomed", flaky, input, retry=durable.RetryPolicy(max_attempts=2, initial_interval="50ms")
    )
    return Outcome()


@durable.workflow("conformance/business-error.run")
async def business(ctx: durable.WorkflowContext, input: Key) -> Outcome:
    try:
        await ctx.step.run("submit", business_error, input)
    except durable.StepFailed as failed:
        return Outcome(step_id=failed.step_id, attempts=failed.attempts, cause=failed.cause)
    return Outcome()


@durable.workflow("conformance/sleep.run")
async def sleeper(ctx: durable.WorkflowContext, input: Key) -> Outcome:
    before = ctx.now()
    await ctx.step.sleep("three-days", "3d")
    await ctx.step.sleep_until("until-tomorrow", ctx.now() + timedelta(days=1))
    await ctx.step.sleep_until("in-the-past", before)  # returns at once
    return Outcome(elapsed_seconds=(ctx.now() - before).total_seconds())


class ChildInput(BaseModel):
    key: str
    n: int
    fail: bool = False


class ChildOutput(BaseModel):
    doubled: int
    workflow_id: str


@durable.workflow("conformance/child.run")
async def child(ctx: durable.WorkflowContext, input: ChildInput) -> ChildOutput:
    if input.fail:
        await ctx.step.run(
            "child-fails", business_error, Key(key=input.key, message="child said no")
        )
    return ChildOutput(doubled=input.n * 2, workflow_id=ctx.workflow_id)


class ParentOutput(BaseModel):
    doubled: int = 0
    child_ids: list[str] = []
    failed_step: str = ""
    cause: str = ""


@durable.workflow("conformance/parent.run")
async def parent(ctx: durable.WorkflowContext, input: ChildInput) -> ParentOutput:
    ok = await ctx.step.invoke("double", child, ChildInput(key=input.key, n=input.n))
    try:
        await ctx.step.invoke("double-fails", child, ChildInput(key=input.key, n=1, fail=True))
    except durable.StepFailed as failed:
        return ParentOutput(
            doubled=ok.doubled,
            child_ids=[ok.workflow_id],
            failed_step=failed.step_id,
            cause=failed.cause,
        )
    return ParentOutput(doubled=ok.doubled, child_ids=[ok.workflow_id])


@durable.workflow("conformance/parallel.run")
async def parallel(ctx: durable.WorkflowContext, input: Key) -> Outcome:
    results = await asyncio.gather(
        *(ctx.step.run(f"meet-{i}", gather_point, input) for i in range(3))
    )
    return Outcome(values=sorted(r.calls for r in results))


@durable.workflow("conformance/duplicate.run")
async def duplicate(ctx: durable.WorkflowContext, input: Key) -> Outcome:
    await ctx.step.run("same", effect, input)
    await ctx.step.run("same", effect, input)
    return Outcome()


@durable.workflow("conformance/indexed.run")
async def indexed(ctx: durable.WorkflowContext, input: Key) -> Outcome:
    values = []
    for _ in range(3):
        values.append((await ctx.step.run(ctx.step.indexed("poll"), effect, input)).calls)
    return Outcome(values=values)


@durable.workflow("conformance/cancellable.run")
async def cancellable(ctx: durable.WorkflowContext, input: Key) -> Outcome:
    try:
        await ctx.step.run("long", long_step, input)
    except durable.WorkflowCancelled:
        await ctx.step.run("cleanup", cleanup, input)
        raise
    return Outcome()


@durable.workflow("conformance/continue-once.run")
async def continue_once(ctx: durable.WorkflowContext, input: Key) -> Outcome:
    """Starts afresh once (continue-as-new), then completes."""
    if not ctx.continued:
        ctx.continue_as_new(input)
    return Outcome(values=[(await ctx.step.run("after", effect, input)).calls])


@durable.workflow("conformance/bad-duration.run")
async def bad_duration(ctx: durable.WorkflowContext, input: Key) -> Outcome:
    await ctx.step.sleep("nap", "3 fortnights")
    return Outcome()


@durable.workflow("conformance/patched.run")
async def patched(ctx: durable.WorkflowContext, input: Key) -> Outcome:
    return Outcome(flag=ctx.patched("conformance-v2"))


WORKFLOWS: list[durable.DurableWorkflow[Any, Any]] = [
    memo,
    catch_failure,
    uncaught_failure,
    business,
    sleeper,
    child,
    parent,
    parallel,
    duplicate,
    indexed,
    cancellable,
    continue_once,
    bad_duration,
    patched,
    retry_after,
]
ACTIVITIES: list[durable.Activity[Any, Any]] = [
    effect,
    flaky,
    business_error,
    gather_point,
    long_step,
    cleanup,
    told_to_wait,
]
REGISTRY = durable.Registry(WORKFLOWS, ACTIVITIES)

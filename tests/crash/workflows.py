"""A run whose middle step makes an external effect and then keeps working, so a test can kill
the worker after the effect and before the step completes."""

from __future__ import annotations

import asyncio

import asyncpg
from pydantic import BaseModel

import durable

SCHEMA = """
CREATE TABLE IF NOT EXISTS crash_log (
    run text NOT NULL, step text NOT NULL, attempt integer NOT NULL, pid integer NOT NULL);
CREATE TABLE IF NOT EXISTS crash_effects (
    idempotency_key text PRIMARY KEY, run text NOT NULL);
"""


class CrashInput(BaseModel):
    run: str
    hold_seconds: float = 30.0


class Done(BaseModel):
    step: str


before = durable.declare_activity("crash.before", CrashInput, Done)
slow_effect = durable.declare_activity(
    "crash.slow-effect",
    CrashInput,
    Done,
    heartbeat_timeout="3s",
)
after = durable.declare_activity("crash.after", CrashInput, Done)


class CrashActivities:
    def __init__(self, pool: asyncpg.Pool, pid: int) -> None:
        self._pool = pool
        self._pid = pid

    async def _log(self, run: str, step: str) -> None:
        attempt = durable.activity_context().info.attempt
        await self._pool.execute(
            "INSERT INTO crash_log (run, step, attempt, pid) VALUES ($1, $2, $3, $4)",
            run,
            step,
            attempt,
            self._pid,
        )

    @durable.implements(before)
    async def before(self, input: CrashInput) -> Done:
        await self._log(input.run, "before")
        return Done(step="before")

    @durable.implements(slow_effect)
    async def slow_effect(self, input: CrashInput) -> Done:
        info = durable.activity_context().info
        await self._pool.execute(
            "INSERT INTO crash_effects (idempotency_key, run) VALUES ($1, $2) "
            "ON CONFLICT (idempotency_key) DO NOTHING",
            info.idempotency_key,
            input.run,
        )
        await self._log(input.run, "slow-effect")
        if info.attempt == 1:
            await asyncio.sleep(input.hold_seconds)  # the worker is killed or stopped in here
        return Done(step="slow-effect")

    @durable.implements(after)
    async def after(self, input: CrashInput) -> Done:
        await self._log(input.run, "after")
        return Done(step="after")


@durable.workflow("crash/effects.run")
async def effects(ctx: durable.WorkflowContext, input: CrashInput) -> Done:
    await ctx.step.run("before", before, input)
    await ctx.step.run("slow-effect", slow_effect, input)
    return await ctx.step.run("after", after, input)


def registry(pool: asyncpg.Pool, pid: int) -> durable.Registry:
    reg = durable.Registry([effects])
    reg.bind(CrashActivities(pool, pid))
    return reg

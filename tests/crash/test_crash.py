"""A worker dies (SIGKILL) or is stopped (SIGTERM) in the middle of a step."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import asyncpg
import pytest
from temporalio.client import Client

from adapters.temporal import TemporalDurableClient
from workers.embedded import EmbeddedTemporal

from .workflows import SCHEMA, CrashInput, effects, registry

Spawn = Callable[..., "asyncio.subprocess.Process"]


@pytest.fixture
async def crash_setup(pool: asyncpg.Pool) -> asyncpg.Pool:
    await pool.execute(SCHEMA)
    return pool


@asynccontextmanager
async def worker_process(
    server: EmbeddedTemporal, database_url: str, task_queue: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    env = dict(
        os.environ,
        TEMPORAL_ADDRESS=server.address,
        DATABASE_URL=database_url,
        DURABLE_TASK_QUEUE=task_queue,
        DURABLE_GRACEFUL_SHUTDOWN_SECONDS="20",
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.crash.worker",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def log_rows(pool: asyncpg.Pool, run: str) -> list[tuple[str, int, int]]:
    rows = await pool.fetch(
        "SELECT step, attempt, pid FROM crash_log WHERE run = $1 ORDER BY step, attempt", run
    )
    return [(r["step"], r["attempt"], r["pid"]) for r in rows]


async def wait_for_step(pool: asyncpg.Pool, run: str, step: str) -> None:
    for _ in range(300):
        if any(s == step for s, _, _ in await log_rows(pool, run)):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"step {step!r} never started")


async def test_killed_worker_the_run_finishes_elsewhere_and_each_effect_happens_once(
    dev_server: EmbeddedTemporal,
    dev_client: Client,
    database_url: str,
    crash_setup: asyncpg.Pool,
    task_queue: str,
) -> None:
    pool = crash_setup
    run = str(uuid.uuid4())
    client = TemporalDurableClient(dev_client, registry(pool, 0), task_queue)
    async with worker_process(dev_server, database_url, task_queue) as first:
        handle = await client.start(effects, CrashInput(run=run))
        await wait_for_step(pool, run, "slow-effect")
        first.send_signal(signal.SIGKILL)
        await first.wait()
    async with worker_process(dev_server, database_url, task_queue) as second:
        out = await asyncio.wait_for(handle.result(), 60)
    assert out.step == "after"
    rows = await log_rows(pool, run)
    assert [(s, a) for s, a, _ in rows] == [
        ("after", 1),
        ("before", 1),
        ("slow-effect", 1),
        ("slow-effect", 2),
    ], "the completed step did not run again; the killed step was retried once"
    assert {pid for s, a, pid in rows if s == "slow-effect" and a == 2} == {second.pid}
    effects_made = await pool.fetchval("SELECT count(*) FROM crash_effects WHERE run = $1", run)
    assert effects_made == 1, "the retried step's effect was deduplicated by its idempotency key"


async def test_sigterm_lets_the_running_step_finish_before_the_worker_exits(
    dev_server: EmbeddedTemporal,
    dev_client: Client,
    database_url: str,
    crash_setup: asyncpg.Pool,
    task_queue: str,
) -> None:
    pool = crash_setup
    run = str(uuid.uuid4())
    client = TemporalDurableClient(dev_client, registry(pool, 0), task_queue)
    async with worker_process(dev_server, database_url, task_queue) as first:
        handle = await client.start(effects, CrashInput(run=run, hold_seconds=3))
        await wait_for_step(pool, run, "slow-effect")
        first.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(first.wait(), 30)
    assert code == 0, "the worker exits cleanly on SIGTERM"
    async with worker_process(dev_server, database_url, task_queue):
        await asyncio.wait_for(handle.result(), 60)
    steps = [(s, a) for s, a, _ in await log_rows(pool, run)]
    assert ("slow-effect", 2) not in steps, "the step running at SIGTERM finished; no retry"

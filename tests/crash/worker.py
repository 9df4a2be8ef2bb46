"""A worker process for the crash tests: `python -m tests.crash.worker`, configured by the same
environment as `durable worker` (TEMPORAL_ADDRESS, DATABASE_URL, DURABLE_TASK_QUEUE)."""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta

from adapters.temporal import build_worker
from workers import logs
from workers.runtime import connect_temporal, open_pool, run_until_signalled
from workers.settings import Settings

from .workflows import registry


async def main() -> None:
    settings = Settings()
    logs.configure("json")
    pool = await open_pool(settings)
    client = await connect_temporal(settings)
    worker = build_worker(
        client,
        registry(pool, os.getpid()),
        settings.task_queue,
        graceful_shutdown_timeout=timedelta(seconds=settings.graceful_shutdown_seconds),
    )
    await run_until_signalled(worker, on_ready=lambda: asyncio.sleep(0))
    await pool.close()


if __name__ == "__main__":
    asyncio.run(main())
    os._exit(0)  # temporalio/sdk-python#300: skip a teardown that can abort

"""A worker process for the Linear crash test: `python -m tests.linear.worker`, configured by
TEMPORAL_ADDRESS, DURABLE_TASK_QUEUE, LINEAR_API_URL and LINEAR_API_KEYS."""

from __future__ import annotations

import asyncio
import os

from activities.linear.steps import LinearCredentials, LinearSteps
from adapters.temporal import build_worker
from durable import Registry
from workers.runtime import connect_temporal, run_until_signalled
from workers.settings import Settings

from .workflows import file_issue


def registry(url: str, api_keys: str) -> Registry:
    out = Registry([file_issue])
    out.bind(LinearSteps(LinearCredentials(api_keys=api_keys), url))
    return out


async def main() -> None:
    settings = Settings()
    client = await connect_temporal(settings)
    worker = build_worker(
        client,
        registry(os.environ["LINEAR_API_URL"], os.environ["LINEAR_API_KEYS"]),
        settings.task_queue,
    )
    await run_until_signalled(worker, on_ready=lambda: asyncio.sleep(0))


if __name__ == "__main__":
    asyncio.run(main())
    os._exit(0)  # temporalio/sdk-python#300: skip a teardown that can abort

"""`durable worker` and `durable migrate` against configured infrastructure."""

from __future__ import annotations

import asyncio
import logging

from adapters.temporal import (
    TemporalDurableClient,
    ensure_search_attributes,
    report_stuck,
    sync_schedules,
)
from store import migrate
from workflows import registry as shipped_registry

from .runtime import connect_temporal, make_worker, open_pool, run_until_signalled
from .settings import Settings
from .telemetry import start_telemetry

log = logging.getLogger("durable.worker")


async def run_worker(settings: Settings) -> None:
    telemetry = start_telemetry(settings, metrics=True)
    pool = await open_pool(settings)
    try:
        client = await connect_temporal(settings, telemetry)
        await ensure_search_attributes(client, create=False)
        worker, ingress = make_worker(client, settings, pool)
        synced = await sync_schedules(client, shipped_registry(), settings.task_queue)
        # (not spread into `extra`: "created" is a LogRecord attribute)
        log.info("cron schedules synced", extra={"schedules": synced.model_dump()})
        stuck = None
        if telemetry.runtime is not None:  # metrics on: keep durable_stuck_runs current
            counted = TemporalDurableClient(
                client, shipped_registry(), settings.task_queue, events=ingress
            )
            stuck = asyncio.create_task(report_stuck(counted, telemetry.runtime))
        try:
            await run_until_signalled(worker, dispatcher=ingress)
        finally:
            if stuck is not None:
                stuck.cancel()
    finally:
        await pool.close()
        telemetry.shutdown()


async def sync(settings: Settings) -> dict[str, list[str]]:
    client = await connect_temporal(settings)
    return (await sync_schedules(client, shipped_registry(), settings.task_queue)).model_dump()


async def run_migrations(settings: Settings) -> list[str]:
    pool = await open_pool(settings)
    try:
        return [f"{m.version:04d}_{m.name}" for m in await migrate(pool)]
    finally:
        await pool.close()

"""Build the product's clients and worker from settings, and run a worker until a signal."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from datetime import timedelta

import asyncpg
from temporalio.client import Client
from temporalio.worker import Worker

from activities.example import NoteActivities
from adapters.temporal import TemporalDurableClient, build_worker, data_converter
from durable import Registry
from store import create_pool
from workflows import registry as shipped_registry

from .settings import Settings

log = logging.getLogger("durable.worker")


class TemporalUnreachable(RuntimeError):
    pass


async def connect_temporal(settings: Settings) -> Client:
    address = settings.effective_temporal_address
    try:
        return await Client.connect(
            address, namespace=settings.temporal_namespace, data_converter=data_converter()
        )
    except RuntimeError as err:
        hint = (
            "start the embedded stack with `durable dev`"
            if settings.temporal_address is None
            else "check TEMPORAL_ADDRESS"
        )
        raise TemporalUnreachable(f"cannot reach Temporal at {address}: {err}; {hint}") from err


def worker_registry(pool: asyncpg.Pool | None) -> Registry:
    """The shipped workflows, with the activities that need clients bound to them."""
    registry = shipped_registry()
    if pool is not None:
        registry.bind(NoteActivities(pool))
    return registry


async def durable_client(settings: Settings) -> TemporalDurableClient:
    """A client for call sites (CLI, API)."""
    client = await connect_temporal(settings)
    return TemporalDurableClient(client, shipped_registry(), settings.task_queue)


async def open_pool(settings: Settings) -> asyncpg.Pool:
    if settings.database_url is None:
        raise ValueError("DATABASE_URL is not set (or run `durable dev` for the embedded stack)")
    return await create_pool(settings.database_url.get_secret_value())


def make_worker(client: Client, settings: Settings, pool: asyncpg.Pool) -> Worker:
    return build_worker(
        client,
        worker_registry(pool),
        settings.task_queue,
        max_concurrent_activities=settings.max_concurrent_activities,
        graceful_shutdown_timeout=timedelta(seconds=settings.graceful_shutdown_seconds),
    )


async def run_until_signalled(
    worker: Worker, on_ready: Callable[[], Awaitable[None]] | None = None
) -> None:
    """Run `worker` until SIGINT or SIGTERM, then shut it down gracefully: running steps get the
    graceful-shutdown window to finish, then are cancelled and retried elsewhere."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(worker.run())
    try:
        log.info("worker started", extra={"task_queue": worker.task_queue})
        if on_ready is not None:
            await on_ready()
        done, _ = await asyncio.wait(
            [task, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED
        )
        if task in done:
            task.result()  # the worker died on its own: surface why
            return
        log.info(
            "shutting down: waiting for running steps", extra={"task_queue": worker.task_queue}
        )
        await worker.shutdown()
        await task
        log.info("worker stopped")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)

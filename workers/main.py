"""`durable worker` and `durable migrate` against configured infrastructure."""

from __future__ import annotations

from adapters.temporal import ensure_search_attributes
from store import migrate

from .runtime import connect_temporal, make_worker, open_pool, run_until_signalled
from .settings import Settings


async def run_worker(settings: Settings) -> None:
    pool = await open_pool(settings)
    try:
        client = await connect_temporal(settings)
        await ensure_search_attributes(client, create=False)
        worker, ingress = make_worker(client, settings, pool)
        await run_until_signalled(worker, dispatcher=ingress)
    finally:
        await pool.close()


async def run_migrations(settings: Settings) -> list[str]:
    pool = await open_pool(settings)
    try:
        return [f"{m.version:04d}_{m.name}" for m in await migrate(pool)]
    finally:
        await pool.close()

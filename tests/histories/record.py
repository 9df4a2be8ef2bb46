"""Record the histories the replay tests check against.

    python -m tests.histories.record

Starts a dev server and PostgreSQL of its own, runs the example workflow once, and writes its
history and its child's next to this file, with their
workflow ids in index.json. Re-record only when an incompatible change is
intended and no runs of the old code remain in flight.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
from temporalio.client import Client

from adapters.temporal import TemporalDurableClient, build_worker, ensure_search_attributes
from store import create_pool, migrate
from workers.embedded import EmbeddedPostgres, EmbeddedTemporal, free_port
from workers.runtime import worker_registry

HERE = Path(__file__).parent


@asynccontextmanager
async def recording_stack() -> AsyncIterator[tuple[Client, asyncpg.Pool]]:
    """A dev server and a migrated PostgreSQL of the recorder's own, stopped afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedTemporal(port=free_port())
        postgres = EmbeddedPostgres(Path(tmp) / "pg", delete_on_stop=True)
        await server.start()
        try:
            pool = await create_pool(await postgres.start())
            await migrate(pool)
            client = await server.connect()
            await ensure_search_attributes(client, create=True)
            try:
                yield client, pool
            finally:
                await pool.close()
        finally:
            await server.stop()
            await postgres.stop()


async def write_histories(client: Client, here: Path, runs: dict[str, str]) -> None:
    """Each run's history in `here` under its file name, and the names' workflow ids in
    index.json."""
    for name, run_id in runs.items():
        history = await client.get_workflow_handle(run_id).fetch_history()
        (here / name).write_text(history.to_json())
    (here / "index.json").write_text(json.dumps(runs, indent=2) + "\n")


async def main() -> None:
    async with recording_stack() as (client, pool):
        registry = worker_registry(pool)
        queue = f"record-{uuid.uuid4()}"
        async with build_worker(client, registry, queue):
            durable = TemporalDurableClient(client, registry, queue)
            handle = await durable.start("rensei/example.run", {"topic": "replay me please"})
            await handle.result()
        history = await client.get_workflow_handle(handle.workflow_id).fetch_history()
        children = [
            e.child_workflow_execution_started_event_attributes.workflow_execution.workflow_id
            for e in history.events
            if e.HasField("child_workflow_execution_started_event_attributes")
        ]
        runs = {"example_run.json": handle.workflow_id, "example_summarise.json": children[0]}
        await write_histories(client, HERE, runs)


if __name__ == "__main__":
    asyncio.run(main())

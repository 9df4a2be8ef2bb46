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
from pathlib import Path

from adapters.temporal import TemporalDurableClient, build_worker, ensure_search_attributes
from store import create_pool, migrate
from workers.embedded import EmbeddedPostgres, EmbeddedTemporal, free_port
from workers.runtime import worker_registry

HERE = Path(__file__).parent


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedTemporal(port=free_port())
        postgres = EmbeddedPostgres(Path(tmp) / "pg", delete_on_stop=True)
        await server.start()
        try:
            pool = await create_pool(await postgres.start())
            await migrate(pool)
            client = await server.connect()
            await ensure_search_attributes(client, create=True)
            registry = worker_registry(pool)
            queue = f"record-{uuid.uuid4()}"
            async with build_worker(client, registry, queue):
                durable = TemporalDurableClient(client, registry, queue)
                handle = await durable.start("rensei/example.run", {"topic": "replay me please"})
                await handle.result()
            history = await client.get_workflow_handle(handle.id).fetch_history()
            (HERE / "example_run.json").write_text(history.to_json())
            children = [
                e.child_workflow_execution_started_event_attributes.workflow_execution.workflow_id
                for e in history.events
                if e.HasField("child_workflow_execution_started_event_attributes")
            ]
            child = await client.get_workflow_handle(children[0]).fetch_history()
            (HERE / "example_summarise.json").write_text(child.to_json())
            index = {"example_run.json": handle.id, "example_summarise.json": children[0]}
            (HERE / "index.json").write_text(json.dumps(index, indent=2) + "\n")
            await pool.close()
        finally:
            await server.stop()
            await postgres.stop()


if __name__ == "__main__":
    asyncio.run(main())

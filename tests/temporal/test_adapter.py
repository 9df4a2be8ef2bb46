"""What the Temporal adapter promises beyond the neutral semantics: step names in the UI,
short steps as local activities, deterministic child ids, status in search attributes, and
runs started by the plain `temporal` CLI."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import asyncpg
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.converter import DataConverter

from adapters.temporal import TemporalDurableClient, build_worker, ensure_search_attributes
from durable import Registry, RunCancelled
from workers.embedded import EmbeddedTemporal
from workers.runtime import worker_registry

from ..conformance.workflows import REGISTRY, Key
from . import sandboxed

BIN = Path(sys.executable).parent


async def temporal_cli(*args: str) -> tuple[int, str]:
    """Run the plain `temporal` CLI without blocking the worker in this event loop."""
    process = await asyncio.create_subprocess_exec(
        str(BIN / "temporal"),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode()


async def summaries(history: WorkflowHistory, event_type: int) -> list[str]:
    converter = DataConverter.default.payload_converter
    return [
        converter.from_payload(e.user_metadata.summary, str)
        for e in history.events
        if e.event_type == event_type and e.HasField("user_metadata")
    ]


async def test_step_ids_name_activities_timers_and_children_in_the_history(
    dev_client: Client, pool: asyncpg.Pool, task_queue: str
) -> None:
    await ensure_search_attributes(dev_client, create=True)
    registry = worker_registry(pool)
    async with build_worker(dev_client, registry, task_queue):
        client = TemporalDurableClient(dev_client, registry, task_queue)
        handle = await client.start(
            "rensei/example.run", {"topic": "alpha beta", "cool_down": "1s"}
        )
        out = await handle.result()
    history = await dev_client.get_workflow_handle(handle.workflow_id).fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    # Regular steps are activities whose id and summary are the step id ...
    assert sorted(a.activity_id for a in scheduled) == ["record", "research-1", "research-2"]
    assert sorted(await summaries(history, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)) == [
        "record",
        "research-1",
        "research-2",
    ]
    # ... the short step ran as a local activity (a marker, no scheduled activity) ...
    markers = [
        e
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and e.marker_recorded_event_attributes.marker_name == "core_local_activity"
    ]
    # ... and the UI names it by its step id, as it does a regular step.
    converter = DataConverter.default.payload_converter
    assert [converter.from_payload(m.user_metadata.summary, str) for m in markers] == ["plan"]
    # ... timers and the child carry their step ids too, and the child id is derived from the
    # parent run and the step id.
    assert await summaries(history, EventType.EVENT_TYPE_TIMER_STARTED) == ["cool-down", "settle"]
    child = [
        e.start_child_workflow_execution_initiated_event_attributes
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
    ]
    assert [c.workflow_id for c in child] == [
        f"{handle.workflow_id}:{history.events[0].workflow_execution_started_event_attributes.original_execution_run_id}:summarise"
    ]
    assert [c.workflow_type.name for c in child] == ["rensei/example.summarise"]
    # The idempotency key the record step used is derived from run and step.
    assert out.note_key.startswith(f"{handle.workflow_id}/") and out.note_key.endswith("/record")
    stored = await pool.fetchval(
        "SELECT count(*) FROM notes WHERE workflow_id = $1", handle.workflow_id
    )
    assert stored == 1


async def test_status_and_step_are_search_attributes_for_the_ui(
    dev_client: Client, task_queue: str
) -> None:
    await ensure_search_attributes(dev_client, create=True)
    async with build_worker(dev_client, REGISTRY, task_queue):
        client = TemporalDurableClient(dev_client, REGISTRY, task_queue)
        running = await client.start("conformance/cancellable.run", Key(key=task_queue, seconds=30))
        sleeping = await client.start("conformance/memo.run", Key(key=task_queue, seconds=30))
        awake, asleep = running.workflow_id, sleeping.workflow_id
        queries = {
            awake: f'WorkflowId = "{awake}" AND DurableStatus = "running"',
            asleep: f'WorkflowId = "{asleep}" AND DurableStatus = "sleeping"'
            ' AND DurableStep = "pause"',
        }
        found: dict[str, list[str]] = {}
        for _ in range(100):
            found = {
                run: [w.id async for w in dev_client.list_workflows(query)]
                for run, query in queries.items()
            }
            if all(found.values()):
                break
            await asyncio.sleep(0.1)
        for handle in (running, sleeping):
            await handle.cancel()
            with pytest.raises(RunCancelled):
                await handle.result()
    assert found == {
        running.workflow_id: [running.workflow_id],
        sleeping.workflow_id: [sleeping.workflow_id],
    }, "the UI filters on DurableStatus / DurableStep find the running and the sleeping run"


async def execute_example(
    server: EmbeddedTemporal, client: Client, pool: asyncpg.Pool, task_queue: str, *args: str
) -> tuple[int, str]:
    """`temporal workflow execute` of the example, with our worker polling the queue."""
    await ensure_search_attributes(client, create=True)
    async with build_worker(client, worker_registry(pool), task_queue):
        return await temporal_cli(
            "workflow", "execute", "--address", server.address,
            "--type", "rensei/example.run", "--task-queue", task_queue, *args,
        )  # fmt: skip


async def test_plain_temporal_cli_starts_a_durable_workflow(
    dev_server: EmbeddedTemporal, dev_client: Client, pool: asyncpg.Pool, task_queue: str
) -> None:
    given = json.dumps({"topic": "from the temporal cli", "cool_down": "1s"})
    code, output = await execute_example(
        dev_server, dev_client, pool, task_queue, "--input", given, "--output", "json"
    )
    assert code == 0, output
    result = json.loads(output)["result"]
    assert result["summary"].startswith("from the temporal cli -> from: 4 letters")


async def test_plain_cli_start_with_bad_input_fails_the_run_with_the_pydantic_message(
    dev_server: EmbeddedTemporal, dev_client: Client, pool: asyncpg.Pool, task_queue: str
) -> None:
    code, output = await execute_example(
        dev_server, dev_client, pool, task_queue, "--input", '{"work_seconds": "soon"}'
    )
    assert code != 0
    assert "input for workflow 'rensei/example.run' failed validation" in output
    assert "work_seconds" in output


async def test_the_sandbox_stops_workflow_code_that_reads_the_wall_clock(
    dev_client: Client, task_queue: str
) -> None:
    registry = Registry([sandboxed.wall_clock])
    async with build_worker(dev_client, registry, task_queue):
        client = TemporalDurableClient(dev_client, registry, task_queue)
        handle = await client.start(sandboxed.wall_clock, {})
        failures: list[str] = []
        for _ in range(100):
            history = await dev_client.get_workflow_handle(handle.workflow_id).fetch_history()
            failures = [
                e.workflow_task_failed_event_attributes.failure.message
                for e in history.events
                if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
            ]
            if failures:
                break
            await asyncio.sleep(0.1)
        await dev_client.get_workflow_handle(handle.workflow_id).terminate("test done")
    assert failures, "the run should be held with a failed workflow task"
    assert "datetime.datetime.now" in failures[0]

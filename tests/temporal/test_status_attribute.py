"""DurableStatus tells the truth after a run ends: a filter on each terminal state finds
exactly the run that ended that way, as the Temporal UI and `temporal workflow list` see it."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from temporalio.client import Client, WorkflowFailureError

from adapters.temporal import TemporalDurableClient, build_worker, ensure_search_attributes
from durable import RunCancelled, WorkflowFailed

from ..conformance.workflows import REGISTRY, Key


async def statuses(client: Client, runs: dict[str, str]) -> dict[str, list[str]]:
    """For each run, which of `runs` its own DurableStatus filter lists (visibility lags)."""
    found: dict[str, list[str]] = {}
    for _ in range(100):
        found = {}
        for status in set(runs.values()):
            query = f'DurableStatus = "{status}" AND WorkflowId STARTS_WITH "st-"'
            found[status] = sorted(
                [w.id async for w in client.list_workflows(query) if w.id in runs]
            )
        if all(found.get(s) == sorted(i for i, t in runs.items() if t == s) for s in found):
            return found
        await asyncio.sleep(0.2)
    return found


async def test_each_way_a_run_ends_is_its_durable_status(
    dev_client: Client, task_queue: str
) -> None:
    await ensure_search_attributes(dev_client, create=True)
    key = Key(key=task_queue, seconds=30)
    async with build_worker(dev_client, REGISTRY, task_queue):
        client = TemporalDurableClient(dev_client, REGISTRY, task_queue)
        done = await client.start(
            "conformance/memo.run", Key(key=task_queue), id=f"st-{task_queue}-c"
        )
        doomed = await client.start(
            "conformance/uncaught-failure.run",
            Key(key=task_queue, fail_times=9),
            id=f"st-{task_queue}-f",
        )
        stopped = await client.start("conformance/cancellable.run", key, id=f"st-{task_queue}-x")
        again = await client.start("conformance/continue-once.run", key, id=f"st-{task_queue}-n")
        late = await dev_client.start_workflow(
            "conformance/memo.run",
            key.model_dump(),
            id=f"st-{task_queue}-t",
            task_queue=task_queue,
            execution_timeout=timedelta(seconds=5),
        )
        await done.result()
        with pytest.raises(WorkflowFailed):
            await doomed.result()
        await asyncio.sleep(0.5)
        await stopped.cancel()
        with pytest.raises(RunCancelled):
            await stopped.result()
        await again.result()
        with pytest.raises(WorkflowFailureError):
            await late.result()
        first_run = (await again.describe()).run_id
    runs = {
        done.workflow_id: "completed",
        doomed.workflow_id: "failed",
        stopped.workflow_id: "cancelled",
        late.id: "timed-out",
    }
    assert await statuses(dev_client, runs) == {
        status: sorted(i for i, s in runs.items() if s == status) for status in set(runs.values())
    }
    # The run that continued says so; its successor (same workflow id) completed.
    executions = [
        (w.run_id, w.search_attributes.get("DurableStatus"))
        async for w in dev_client.list_workflows(f'WorkflowId = "{again.workflow_id}"')
    ]
    assert sorted(s[0] for _, s in executions if s) == ["completed", "continued"], executions
    assert (first_run, ["completed"]) in executions

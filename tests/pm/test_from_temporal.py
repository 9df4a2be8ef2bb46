"""The backlog-triage demo driven with Temporal's own client only: started with its org as a
search attribute, found at its approval point by search attribute, approved by the
`durable.resolve` Update (its answer checked) or by a `durable.event` signal without a step
id; what a run cannot use is refused with the reason, and the run waits on. The worker is the
product's; nothing below the worker set-up imports the product."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

from activities.linear.local_server import LocalLinear
from adapters.temporal import ensure_search_attributes

from ..linear.conftest import TEST_ORG
from .conftest import Pm

TRIAGE = "rensei/pm.backlog-triage.run"
APPROVAL = "rensei/approval.resolved"
ORG = SearchAttributeKey.for_keyword("DurableOrgId")


async def start_triage(client: Client, task_queue: str) -> WorkflowHandle[Any, Any]:
    """What the README shows: the trigger event as input, the org as a search attribute."""
    return await client.start_workflow(
        TRIAGE,
        {"id": f"from-temporal-{uuid.uuid4()}", "data": {}},
        id=f"triage-{uuid.uuid4()}",
        task_queue=task_queue,
        search_attributes=TypedSearchAttributes([SearchAttributePair(ORG, TEST_ORG)]),
    )


async def listed(client: Client, query: str, timeout: float = 60.0) -> list[str]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = [w.id async for w in client.list_workflows(query)]
        if found or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.3)


async def approval_point(client: Client, handle: WorkflowHandle[Any, Any]) -> None:
    query = (
        f'WorkflowId = "{handle.id}" AND DurableStatus = "waiting-for-event" '
        f'AND DurableWaitingOn = "{APPROVAL}" AND DurableOrgId = "{TEST_ORG}"'
    )
    assert await listed(client, query) == [handle.id], "found by its search attributes"


async def rejected(handle: WorkflowHandle[Any, Any], event: dict[str, Any]) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as caught:
        await handle.execute_update("durable.resolve", event)
    cause = caught.value.cause
    return str(getattr(cause, "message", cause))


async def test_start_wait_and_approve_by_update_with_temporals_client_only(
    pm: Pm, local_linear: LocalLinear
) -> None:
    client = pm.client
    await ensure_search_attributes(client, create=True)
    async with pm.running(local_linear):
        handle = await start_triage(client, pm.task_queue)
        await approval_point(client, handle)
        approve = {"workflow_id": handle.id, "decision": "approve"}

        # What the run cannot take is refused at once, with the reason; it waits on.
        assert "no open wait for rensei/other.thing" in await rejected(
            handle, {"type": "rensei/other.thing", "data": {}}
        )
        assert (
            "bad data for rensei/approval.resolved: data.decision: Input should be"
            in await rejected(handle, {"type": APPROVAL, "data": {**approve, "decision": "maybe"}})
        )
        assert "does not match" in await rejected(
            handle, {"type": APPROVAL, "data": {**approve, "workflow_id": "another-run"}}
        )
        assert "events of type rensei/pm.agent-session.* come only from" in await rejected(
            handle, {"type": "rensei/pm.agent-session.completed", "data": {}}
        )
        assert "bad payload" in await rejected(handle, {"step_id": "await-approval#1"})

        forged = {**approve, "by": "ada", "via": "api"}
        answer = await handle.execute_update(
            "durable.resolve", {"type": APPROVAL, "id": "ok-1", "data": forged}
        )
        assert answer == {
            "step_id": "await-approval#1",
            "event_id": f"@{TEST_ORG}/ok-1",
            "event_type": APPROVAL,
        }
        out = await handle.result()
    assert out["status"] == "approved" and out["rounds"] == 1
    assert out["decided_by"] == "ada (via temporal)", "never reads as an approval via the API"
    assert await listed(client, f'WorkflowId = "{handle.id}" AND DurableStatus = "completed"') == [
        handle.id
    ], "DurableStatus says how it ended"
    stored = await pm.pool.fetchval(
        "SELECT count(*) FROM events WHERE id = $1", f"@{TEST_ORG}/ok-1"
    )
    assert stored == 1, "stored like any event (as its org's: RLS lets the pool owner see it)"


async def test_the_readmes_sdk_example_runs_the_demo_to_its_result(
    pm: Pm, local_linear: LocalLinear
) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    (block,) = re.findall(r"<!-- temporal-sdk-example -->\n```python\n(.*?)```", readme, re.S)
    await ensure_search_attributes(pm.client, create=True)
    async with pm.running(local_linear):
        env = dict(
            os.environ,
            TEMPORAL_ADDRESS=pm.client.service_client.config.target_host,
            DURABLE_TASK_QUEUE=pm.task_queue,
            DURABLE_ORG=TEST_ORG,
        )
        example = await asyncio.create_subprocess_exec(
            sys.executable, "-c", block, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(example.communicate(), 120)
    said = out.decode()
    assert example.returncode == 0, said
    assert said.splitlines() == [
        "resolved await-approval#1",
        "approved ['ENG-10', 'ENG-3', 'ENG-5']",
    ], said

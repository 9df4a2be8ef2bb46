"""A run's tenancy, trigger and what it waits on are search attributes: an operator can filter
for "every run of org X waiting for approval" in the Temporal UI or through the client."""

from __future__ import annotations

import asyncio
import uuid

from temporalio.client import Client

import durable
from adapters.temporal import ensure_search_attributes

from .conftest import Events
from .test_events import resolved, until_waiting
from .workflows import ApprovalRequested, Requested


async def listed(client: Client, query: str, expect: int = 1) -> list[str]:
    """Visibility is eventually consistent: poll until the query finds `expect` runs."""
    found: list[str] = []
    for _ in range(100):
        found = [wf.id async for wf in client.list_workflows(query)]
        if len(found) >= expect:
            return found
        await asyncio.sleep(0.1)
    return found


async def test_filter_runs_by_org_status_and_what_they_wait_on(events: Events) -> None:
    await ensure_search_attributes(events.client, create=True)
    org = f"org-{uuid.uuid4().hex[:8]}"
    tenancy = durable.Tenancy(org_id=org, workspace_id="ws", project_id="triage")
    request = f"req-{uuid.uuid4()}"
    async with events.running() as client:
        manual = await client.start(
            "tests/review.run", {"request_id": request, "rounds": 1}, tenancy=tenancy
        )
        trigger = ApprovalRequested(data=Requested(request_id=request), tenancy=tenancy)
        (by_event,) = (await client.send_event(trigger)).started
        await until_waiting(client, manual.workflow_id)
        await until_waiting(client, by_event)

        waiting = await listed(
            events.client,
            f'DurableOrgId = "{org}" AND DurableStatus = "waiting-for-event"'
            ' AND DurableWaitingOn = "tests/approval.resolved"',
            expect=2,
        )
        assert sorted(waiting) == sorted([manual.workflow_id, by_event])
        assert await listed(
            events.client, f'DurableOrgId = "{org}" AND DurableTrigger = "manual"'
        ) == [manual.workflow_id]
        assert await listed(
            events.client,
            f'DurableProjectId = "triage" AND DurableOrgId = "{org}"'
            ' AND DurableTrigger = "event:tests/approval.requested"',
        ) == [by_event]
        other = f'DurableOrgId = "org-other-{uuid.uuid4().hex[:6]}"'
        assert [wf.id async for wf in events.client.list_workflows(other)] == []

        await client.send_event(resolved(request, tenancy=tenancy))
        await manual.result()
        await client.get(by_event).result()
        running = await listed(
            events.client, f'DurableOrgId = "{org}" AND ExecutionStatus = "Completed"', expect=2
        )
        assert sorted(running) == sorted([manual.workflow_id, by_event])
        desc = await manual.temporal.describe()
        details = await desc.static_details()
        summary = await desc.static_summary()
    attributes = desc.typed_search_attributes
    values = {pair.key.name: pair.value for pair in attributes}
    assert values["DurableStatus"] == "completed" and values["DurableWaitingOn"] == ""
    assert (values["DurableWorkspaceId"], values["DurableProjectId"]) == ("ws", "triage")
    # The run reads well in the UI without opening payloads.
    assert summary is not None and summary.startswith("tests/review.run")
    assert details == f"trigger: manual\norg: {org}\nworkspace: ws\nproject: triage"


async def test_describe_without_a_worker_reads_the_status_from_search_attributes(
    events: Events,
) -> None:
    request = f"req-{uuid.uuid4()}"
    async with events.running() as client:
        handle = await client.start("tests/review.run", {"request_id": request, "rounds": 1})
        await until_waiting(client, handle.workflow_id)
        for _ in range(50):  # the upsert lands with the workflow task that registered the wait
            attrs = (await handle.temporal.describe()).typed_search_attributes
            if any(p.value == "waiting-for-event" for p in attrs):
                break
            await asyncio.sleep(0.1)
    # The worker is gone: no query can be answered.
    desc = await client.get(handle.workflow_id).describe()
    assert desc.status is durable.RunStatus.WAITING
    assert desc.current_steps == ["review#1"]
    assert desc.waiting_on is not None and "no worker answered" in desc.waiting_on
    await handle.temporal.terminate("test over")

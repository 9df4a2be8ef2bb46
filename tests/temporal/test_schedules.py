"""Cron triggers become Temporal Schedules that follow the code."""

from __future__ import annotations

import pytest
from temporalio.client import Client, ScheduleActionStartWorkflow, ScheduleOverlapPolicy
from temporalio.service import RPCError, RPCStatusCode

import durable
from adapters.temporal import sync_schedules

from . import cron_workflows

SCHEDULE = "durable:tests/nightly.run"


async def test_sync_creates_updates_and_deletes_schedules_to_match_the_code(
    dev_client: Client, task_queue: str
) -> None:
    first = await sync_schedules(dev_client, durable.Registry([cron_workflows.nightly]), task_queue)
    assert first.created == [SCHEDULE]
    again = await sync_schedules(dev_client, durable.Registry([cron_workflows.nightly]), task_queue)
    assert (again.created, again.updated, again.deleted) == ([], [], [])
    assert again.unchanged == [SCHEDULE], "syncing twice changes nothing"

    desc = await dev_client.get_schedule_handle(SCHEDULE).describe()
    assert "cron='0 3 * * *'" in (desc.schedule.state.note or "")
    assert desc.schedule.spec.calendars, "the server keeps the cron as a calendar"
    assert desc.schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
    action = desc.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert (action.workflow, action.task_queue) == ("tests/nightly.run", task_queue)

    moved = await sync_schedules(
        dev_client, durable.Registry([cron_workflows.nightly_moved]), task_queue
    )
    assert moved.updated == [SCHEDULE]
    desc = await dev_client.get_schedule_handle(SCHEDULE).describe()
    assert "cron='30 4 * * 1-5'" in (desc.schedule.state.note or "")

    removed = await sync_schedules(dev_client, durable.Registry(), task_queue)
    assert removed.deleted == [SCHEDULE], "removing the cron trigger from code removes it"
    with pytest.raises(RPCError) as gone:
        await dev_client.get_schedule_handle(SCHEDULE).describe()
    assert gone.value.status == RPCStatusCode.NOT_FOUND


async def test_a_cron_workflow_must_start_from_an_empty_input(
    dev_client: Client, task_queue: str
) -> None:
    with pytest.raises(durable.InvalidDefinition, match="give every field a default"):
        await sync_schedules(dev_client, durable.Registry([cron_workflows.needs_input]), task_queue)

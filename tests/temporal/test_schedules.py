"""Cron triggers become Temporal Schedules that follow the code."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import (
    Client,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
    ScheduleOverlapPolicy,
)
from temporalio.service import RPCError, RPCStatusCode

import durable
from adapters.temporal import build_worker, sync_schedules

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


async def test_a_registry_schedule_starts_its_workflow_with_its_input(
    dev_client: Client, task_queue: str
) -> None:
    registry = durable.Registry([cron_workflows.report], schedules=[cron_workflows.REPORT_SCHEDULE])
    synced = await sync_schedules(dev_client, registry, task_queue)
    assert synced.created == ["durable:tests.report-eng"]
    handle = dev_client.get_schedule_handle("durable:tests.report-eng")
    desc = await handle.describe()
    action = desc.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert action.workflow == "tests/report.run"
    assert 'input={"team": "eng"}' in (desc.schedule.state.note or "")
    async with build_worker(dev_client, registry, task_queue):
        await handle.trigger()  # what the cron does at 06:00
        for _ in range(100):
            runs = (await handle.describe()).info.recent_actions
            if runs:
                break
            await asyncio.sleep(0.1)
        started = runs[0].action
        assert isinstance(started, ScheduleActionExecutionStartWorkflow)
        assert started.workflow_id.startswith("tests.report-eng:scheduled")
        result = await dev_client.get_workflow_handle(started.workflow_id).result()
    assert result == {"team": "eng"}, "the run got the schedule's input"
    await handle.delete()


def test_a_schedule_whose_input_does_not_fit_fails_at_registration() -> None:
    bad = durable.Schedule("tests.report-bad", "tests/report.run", "@daily", {"squad": "x"})
    with pytest.raises(durable.InvalidDefinition, match=r"does not fit 'tests/report\.run'"):
        durable.Registry([cron_workflows.report], schedules=[bad])
    with pytest.raises(durable.UnknownWorkflow):
        durable.Registry(schedules=[bad])
    with pytest.raises(durable.InvalidTrigger, match="5 fields"):
        durable.Schedule("tests.report-bad", "tests/report.run", "every day")


def test_every_pm_agent_has_a_schedule_that_starts_its_tick() -> None:
    from workflows import registry
    from workflows.pm import PM_AGENT_REGISTRATIONS

    schedules = {s.id: s for s in registry().schedules}
    for reg in PM_AGENT_REGISTRATIONS:
        schedule = schedules[f"pm.{reg.name}"]
        assert (schedule.workflow, schedule.cron) == ("rensei/pm.schedule.tick", reg.cron)
        assert schedule.input == {"agent": reg.name}

"""Cron triggers as Temporal Schedules, kept equal to the code: one schedule per cron workflow,
created, updated or deleted by `sync_schedules` (at worker start and `durable schedules sync`)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ValidationError
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from durable import CronTrigger, DurableWorkflow, InvalidDefinition, Registry

PREFIX = "durable:"
# A run still going when the next is due: the next is skipped, not stacked up.
OVERLAP = ScheduleOverlapPolicy.SKIP
# After downtime, missed runs within this window are started once the server is back.
CATCHUP_WINDOW = timedelta(hours=1)


class SyncReport(BaseModel):
    created: list[str] = []
    updated: list[str] = []
    deleted: list[str] = []
    unchanged: list[str] = []


def _schedule(
    wf: DurableWorkflow[Any, Any],
    cron: str,
    task_queue: str,
    input: dict[str, Any] | None = None,
    name: str | None = None,
) -> Schedule:
    if input is None:
        try:
            wf.input_type.model_validate({})
        except ValidationError as err:
            raise InvalidDefinition(
                f"cron workflow {wf.id!r} must accept an empty input (give every field a "
                f"default): {err}"
            ) from None
    return Schedule(
        action=ScheduleActionStartWorkflow(
            wf.id, input or {}, id=f"{name or wf.id}:scheduled", task_queue=task_queue
        ),
        spec=ScheduleSpec(cron_expressions=[cron]),
        policy=SchedulePolicy(overlap=OVERLAP, catchup_window=CATCHUP_WINDOW),
        state=ScheduleState(note=_note(cron, task_queue, input)),
    )


def _note(cron: str, task_queue: str, input: dict[str, Any] | None = None) -> str:
    # The server turns cron strings into calendars, so what the code asked for is kept in the
    # schedule's note (shown in the UI too) and compared on the next sync.
    extra = f" input={json.dumps(input, sort_keys=True)}" if input else ""
    return (
        f"managed by durable: cron={cron!r} task_queue={task_queue!r} "
        f"overlap={OVERLAP.name} catchup={int(CATCHUP_WINDOW.total_seconds())}s{extra}"
    )


def _same(current: Schedule, wanted: Schedule) -> bool:
    return current.state.note == wanted.state.note


async def sync_schedules(client: Client, registry: Registry, task_queue: str) -> SyncReport:
    report = SyncReport()
    wanted = {
        PREFIX + wf.id: _schedule(wf, wf.trigger.cron, task_queue)
        for wf in registry.workflows
        if isinstance(wf.trigger, CronTrigger)
    }
    for extra in registry.schedules:
        wf = registry.workflow(extra.workflow)
        wanted[PREFIX + extra.id] = _schedule(wf, extra.cron, task_queue, extra.input, extra.id)
    existing = {s.id async for s in await client.list_schedules() if s.id.startswith(PREFIX)}
    for schedule_id, schedule in wanted.items():
        if schedule_id not in existing:
            try:
                await client.create_schedule(schedule_id, schedule)
                report.created.append(schedule_id)
                continue
            except ScheduleAlreadyRunningError:  # listing is eventually consistent
                pass
        handle = client.get_schedule_handle(schedule_id)
        current = (await handle.describe()).schedule
        if _same(current, schedule):
            report.unchanged.append(schedule_id)
            continue

        def replace(_: ScheduleUpdateInput, new: Schedule = schedule) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=new)

        await handle.update(replace)
        report.updated.append(schedule_id)
    for schedule_id in sorted(existing - wanted.keys()):
        try:
            await client.get_schedule_handle(schedule_id).delete()
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            continue  # the listing lags behind a delete that already happened
        report.deleted.append(schedule_id)
    return report

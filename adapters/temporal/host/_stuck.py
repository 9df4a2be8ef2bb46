"""Stuck-run detection: open runs that will not move on by themselves, each with why and what
an operator can do. Read from Temporal (visibility, then describe: a workflow task that keeps
failing, a step retrying past a threshold or waiting for capacity) and from the store (waits
open past their timeout)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecution
from temporalio.service import RPCError

from durable import StuckRun, Tenancy
from store import EventStore

from ._progress import ORG_ATTRIBUTE

# A step at this attempt or later is listed as retrying (its policy may allow many more).
RETRY_THRESHOLD = 5
# A workflow task at this attempt or later keeps failing (Temporal flags two in a row too).
TASK_THRESHOLD = 2
# What the route step says while no pool has room (activities/fleet).
CAPACITY = "waiting for capacity"
MAX_DETAIL = 500
DESCRIBE_AT_ONCE = 10


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 3] + "..."


async def _last_task_failure(client: Client, execution: WorkflowExecution) -> str:
    """The message of the run's latest failed workflow task."""
    message = ""
    failed = EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
    async for event in handle.fetch_history_events():
        if event.event_type == failed:
            message = event.workflow_task_failed_event_attributes.failure.message
    return message


async def _examine(
    client: Client, execution: WorkflowExecution, retry_threshold: int
) -> list[StuckRun]:
    try:
        described = await client.get_workflow_handle(
            execution.id, run_id=execution.run_id
        ).describe()
    except RPCError:
        return []  # closed or gone meanwhile
    raw = described.raw_description
    base: dict[str, Any] = {
        "workflow_id": execution.id,
        "run_id": execution.run_id,
        "workflow": execution.workflow_type,
        "org_id": execution.typed_search_attributes.get(ORG_ATTRIBUTE) or "",
    }
    found: list[StuckRun] = []
    task = raw.pending_workflow_task
    if raw.HasField("pending_workflow_task") and task.attempt >= TASK_THRESHOLD:
        why = await _last_task_failure(client, execution)
        found.append(
            StuckRun(
                **base,
                kind="workflow-task-failing",
                detail=_clip(f"workflow task attempt {task.attempt} failed: {why}"),
                remedy=(
                    "the worker cannot run this run's code: fix it and deploy (a "
                    "nondeterminism after a change needs a patch), and the run goes on; or "
                    f"`temporal workflow reset --workflow-id '{execution.id}' --type "
                    "LastWorkflowTask`, or terminate it"
                ),
                since=described.start_time,
            )
        )
    for activity in raw.pending_activities:
        last = activity.last_failure.message if activity.HasField("last_failure") else ""
        started = (
            activity.last_started_time.ToDatetime(tzinfo=UTC)
            if activity.HasField("last_started_time")
            else None
        )
        said = _clip(f"step {activity.activity_id} (attempt {activity.attempt}): {last}")
        if CAPACITY in last:
            found.append(
                StuckRun(
                    **base,
                    kind="waiting-for-capacity",
                    detail=said,
                    remedy=(
                        "no pool of its route has a free session slot: add capacity "
                        "(`durable fleet status`); the session ends at its own timeout"
                    ),
                    since=started,
                )
            )
        elif activity.attempt >= retry_threshold:
            found.append(
                StuckRun(
                    **base,
                    kind="step-retrying",
                    detail=said,
                    remedy=(
                        "the step keeps failing: fix what its error says (a service down, a "
                        "credential); it goes on retrying by its policy"
                    ),
                    since=started,
                )
            )
    return found


def _overdue(wait: dict[str, Any]) -> StuckRun:
    due: datetime = wait["expires_at"]
    return StuckRun(
        workflow_id=wait["workflow_id"],
        run_id=wait["run_id"],
        org_id=wait["org_id"],
        kind="wait-overdue",
        detail=(
            f"step {wait['step_id']} waits for {wait['event_type']}; its timeout was up at "
            f"{due.isoformat(timespec='seconds')} and the run has not moved"
        ),
        remedy=(
            "no worker has run its timer: is a worker polling the run's task queue? The wait "
            "ends (timed out) as soon as one does"
        ),
        since=wait["created_at"],
    )


async def find_stuck(
    client: Client,
    store: EventStore | None,
    *,
    org_id: str | None = None,
    limit: int = 500,
    retry_threshold: int = RETRY_THRESHOLD,
) -> list[StuckRun]:
    """Stuck runs among the `limit` most recent open runs (of `org_id`, or of every org), and
    waits overdue in the store."""
    query = 'ExecutionStatus = "Running"'
    if org_id is not None:
        Tenancy(org_id=org_id)  # an org id has no quotes: safe inside the query
        query += f' AND DurableOrgId = "{org_id}"'
    executions = [e async for e in client.list_workflows(query, limit=limit)]
    gate = asyncio.Semaphore(DESCRIBE_AT_ONCE)

    async def examine(execution: WorkflowExecution) -> list[StuckRun]:
        async with gate:
            return await _examine(client, execution, retry_threshold)

    found = [s for batch in await asyncio.gather(*map(examine, executions)) for s in batch]
    if store is not None:
        found += [_overdue(w) for w in await store.overdue_waits(org_id=org_id, limit=limit)]
    return found

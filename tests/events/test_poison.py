"""Inputs that would make a run that can never work: refused at the ingress before a run
exists, or, when Temporal itself started the run, failing it at once with a readable message
that quotes none of the input (a run's failure is in its history in clear)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError

import durable
from activities.agents import AgentSessionRequested, SessionRequest
from adapters.temporal import EventIngress, TemporalDurableClient, build_worker
from store import EventStore
from workflows import registry
from workflows.pm.backlog_triage import BacklogTriageRequested

from .conftest import Events

CANARY = "canary-4f1e"


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"secret": CANARY}
    for _ in range(depth):
        value = {"next": value}
    return value


async def stored(events: Events, event_id: str) -> int:
    count: int = await events.pool.fetchval("SELECT count(*) FROM events WHERE id = $1", event_id)
    return count


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        (
            {"type": AgentSessionRequested.type, "data": {"prompt": "p", "context": nested(250)}},
            "nests deeper than 64 levels",
        ),
        (
            {"type": BacklogTriageRequested.type, "data": {"agent_timeout": "0s"}},
            "data.agent_timeout: Value error, not a positive duration",
        ),
    ],
)
async def test_poison_events_are_refused_at_the_ingress_and_nothing_is_stored(
    events: Events, payload: dict[str, Any], says: str
) -> None:
    event_id = f"poison-{uuid.uuid4()}"
    shipped = registry()
    ingress = EventIngress(events.client, EventStore(events.pool), shipped, events.task_queue)
    client = TemporalDurableClient(events.client, shipped, events.task_queue, events=ingress)

    async def send() -> None:
        event = durable.parse_event(
            shipped.event_type(payload["type"]), {"id": event_id, "data": payload["data"]}
        )
        await client.send_event(event)

    with pytest.raises(durable.EventError) as refused:
        await send()
    assert says in str(refused.value)
    assert CANARY not in str(refused.value)
    assert await stored(events, event_id) == 0, "nothing stored, no run started"


async def no_failed_tasks(client: Client, workflow_id: str) -> bool:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    failed = EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    return not [e for e in history.events if e.event_type == failed]


@pytest.mark.parametrize(
    ("workflow", "given", "says"),
    [
        (
            "rensei/pm.agent-session.run",
            {"id": "s1", "data": {"prompt": "p", "context": nested(250)}},
            "the input nests deeper than 64 levels",
        ),
        (
            "rensei/pm.backlog-triage.run",
            {"id": "t1", "data": {"agent_timeout": "0s", "team": CANARY}},
            "data.agent_timeout: Value error, not a positive duration",
        ),
        ("tests/careless.run", {"wait": "0s"}, "built data its models refuse: wait: Value error"),
    ],
)
async def test_a_poison_run_started_from_temporal_fails_at_once_quoting_no_input(
    events: Events, workflow: str, given: dict[str, Any], says: str
) -> None:
    shipped = registry()
    for wf in events.ingress.registry.workflows:
        shipped.add_workflow(wf)
    async with build_worker(events.client, shipped, events.task_queue):
        handle = await events.client.start_workflow(
            workflow, given, id=f"poison-{uuid.uuid4()}", task_queue=events.task_queue
        )
        with pytest.raises(WorkflowFailureError) as failed:
            await asyncio.wait_for(handle.result(), 30)
    message = str(failed.value.cause)
    assert says in message
    assert CANARY not in message, "no input in the failure"
    assert "'0s'" not in message and '"0s"' not in message, "not even the bad value"
    assert await no_failed_tasks(events.client, handle.id), "failed at once, never retried"


def test_session_requests_check_their_context_depth_too() -> None:
    with pytest.raises(durable.EventError, match="nests deeper than 64"):
        durable.parse_event(
            AgentSessionRequested,
            {"data": SessionRequest(prompt="p").model_dump() | {"context": nested(100)}},
        )

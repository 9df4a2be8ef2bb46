"""A waiting run answered with Temporal's own tools: a `durable.event` signal without a step
id, the exact `temporal workflow update execute` command the run's details show, and what a
run cannot use shown in `durable status` and its details rather than dropped. The run is
started and driven with `temporalio.client` and the `temporal` CLI only."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.common import RawValue

from tests.test_cli import durable
from workers.embedded import EmbeddedTemporal

from .conftest import Events

REVIEW = "tests/review.run"
RESOLVED = "tests/approval.resolved"
BIN = Path(sys.executable).parent


async def details(handle: WorkflowHandle[Any, Any]) -> str:
    """The run's current details, as the Temporal UI shows them."""
    metadata = await handle.query("__temporal_workflow_metadata")
    return str(metadata.current_details)


async def waiting(handle: WorkflowHandle[Any, Any], step: str) -> str:
    for _ in range(200):
        shown = await details(handle)
        if f"waiting in {step!r}" in shown and "resolve it:" in shown:
            return shown
        await asyncio.sleep(0.1)
    raise AssertionError(f"{handle.id} never waited in {step}: {shown!r}")


async def start_review(
    client: Client, task_queue: str, rounds: int = 2
) -> tuple[WorkflowHandle[Any, Any], str]:
    request = f"r-{uuid.uuid4()}"
    handle = await client.start_workflow(
        REVIEW,
        {"request_id": request, "rounds": rounds},
        id=f"review-{uuid.uuid4()}",
        task_queue=task_queue,
    )
    return handle, request


async def test_a_signal_without_step_id_resolves_the_open_wait_and_is_stored(
    events: Events,
) -> None:
    async with events.running():
        handle, request_id = await start_review(events.client, events.task_queue)
        await waiting(handle, "review#1")
        revise = {"request_id": request_id, "decision": "revise"}
        await handle.signal("durable.event", {"type": RESOLVED, "id": "s1", "data": revise})
        await waiting(handle, "review#2")
        # The same event again is a duplicate the run shows, not a second round.
        await handle.signal("durable.event", {"type": RESOLVED, "id": "s1", "data": revise})
        for _ in range(100):
            if "duplicate" in await details(handle):
                break
            await asyncio.sleep(0.1)
        assert "ignored: signal durable.event tests/approval.resolved id s1: duplicate" in (
            await details(handle)
        )
        approve = {**revise, "decision": "approve"}
        await handle.signal("durable.event", {"type": RESOLVED, "id": "s2", "data": approve})
        out = await handle.result()
    assert out["decisions"] == ["revise", "approve"]
    assert out["event_ids"] == ["@/s1", "@/s2"], "stored under the run's org (here: none)"
    stored = await events.pool.fetch(
        "SELECT id FROM events WHERE id = ANY($1) ORDER BY id", ["@/s1", "@/s2"]
    )
    assert [r["id"] for r in stored] == ["@/s1", "@/s2"], "recorded like any other event"
    closed = await events.pool.fetchval(
        "SELECT count(*) FROM waits WHERE workflow_id = $1 AND event_id IS NOT NULL", handle.id
    )
    assert closed == 2, "each wait closed in the store with its event"


async def test_the_command_in_the_details_resolves_the_wait_and_misfits_show_in_status(
    events: Events, dev_server: EmbeddedTemporal
) -> None:
    env = {"TEMPORAL_ADDRESS": dev_server.address, "PATH": f"{BIN}:{os.environ['PATH']}"}
    async with events.running():
        handle, _ = await start_review(events.client, events.task_queue, rounds=1)
        shown = await waiting(handle, "review#1")
        # A signal the run cannot use: logged, in its details and in `durable status`.
        await handle.signal("durable.event", {"type": "tests/nothing.here", "data": {}})
        await handle.signal(
            "durable.event", {"step_id": "await-approval", "event": {"id": "x", "data": {}}}
        )
        for _ in range(100):
            if shown.count("ignored:") == 2:
                break
            await asyncio.sleep(0.1)
            shown = await details(handle)
        code, out, err = await durable("status", handle.id, env=env)
        assert code == 0, err
        assert "ignored       signal durable.event tests/nothing.here: no open wait for " in out
        assert "this run has no such step; send" in out
        assert "status        waiting" in out

        (command,) = [line for line in shown.splitlines() if line.startswith("resolve it: ")]
        command = command.removeprefix("resolve it: ")
        assert command.startswith(f"temporal workflow update execute --workflow-id '{handle.id}'")
        assert '"decision": "..."' in command, "placeholders for what the match leaves open"
        command = command.replace('"decision": "..."', '"decision": "approve"')
        shell = await asyncio.create_subprocess_exec(
            "bash", "-c", command, env={**os.environ, **env},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        said, _ = await asyncio.wait_for(shell.communicate(), 60)
        assert shell.returncode == 0, said.decode()
        assert '"step_id": "review#1"' in said.decode() or "review#1" in said.decode()
        out = await handle.result()
    assert out["decisions"] == ["approve"]


@pytest.mark.parametrize(
    ("given", "says"),
    [
        (
            (),
            "no input was given; pass a JSON object for Review, e.g. --input",
        ),
        (
            (RawValue(Payload(metadata={"encoding": b"binary/plain"}, data=b"hello")),),
            "the input is not JSON (encoding 'binary/plain')",
        ),
    ],
)
async def test_a_run_without_a_usable_input_fails_at_once_saying_what_to_pass(
    events: Events, given: tuple[Any, ...], says: str
) -> None:
    async with events.running():
        handle = await events.client.start_workflow(
            REVIEW, args=list(given), id=f"review-{uuid.uuid4()}", task_queue=events.task_queue
        )
        with pytest.raises(WorkflowFailureError) as failed:
            await asyncio.wait_for(handle.result(), 30)
    assert says in str(failed.value.cause)
    history = await handle.fetch_history()
    assert not [e for e in history.events if e.HasField("workflow_task_failed_event_attributes")]


async def test_an_input_events_tenancy_is_never_silently_ignored(events: Events) -> None:
    """An event-triggered workflow started from Temporal with the trigger event as input: a
    `tenancy` in that input without the DurableOrgId search attribute fails the run at once,
    naming the way to give the org."""
    async with events.running():
        handle = await events.client.start_workflow(
            "tests/approval.run",
            {"data": {"request_id": "r1"}, "tenancy": {"org_id": "acme"}},
            id=f"approval-{uuid.uuid4()}",
            task_queue=events.task_queue,
        )
        with pytest.raises(WorkflowFailureError) as failed:
            await asyncio.wait_for(handle.result(), 30)
    said = str(failed.value.cause)
    assert "the input event names org 'acme' but the run was started for no org" in said
    assert "--search-attribute 'DurableOrgId=\"acme\"'" in said

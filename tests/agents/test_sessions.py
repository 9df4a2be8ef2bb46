"""Agent sessions end to end with the command runtime (the shipped local agent) on a real dev
server and PostgreSQL: the completion bridge, cancellation, failures, timeouts and routes."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import uuid

import asyncpg
import pytest
from temporalio.client import Client, WorkflowHistory

import durable
from adapters.temporal import EventIngress, TemporalDurableClient, build_worker, replay
from store import EventStore, SessionRecord, session_of
from workers.runtime import worker_registry
from workflows import registry

from .conftest import Agents
from .workflows import REGISTRY, Go, GoAhead, ParentInput, ParentOutput

ISSUES = [
    {"id": "T-1", "title": "App crashes when saving a draft"},
    {"id": "T-2", "title": "Add support for dark mode"},
]


def payloads(history: WorkflowHistory) -> str:
    """Every payload in a history, decoded (history JSON holds them base64-encoded)."""
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "metadata" in node and "data" in node:
                found.append(base64.b64decode(node["data"]).decode(errors="replace"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(history.to_json()))
    return "\n".join(found)


async def session_of_parent(agents: Agents, parent_id: str) -> str:
    """The session a parent dispatched: the run its dispatch event started."""
    for _ in range(100):
        rows = await agents.pool.fetch(
            "SELECT workflow_id FROM deliveries d JOIN events e ON e.id = d.event_id"
            " WHERE d.kind = 'start' AND e.type = 'rensei/pm.agent-session.requested'"
            " AND e.data->>'requested_by' = $1",
            parent_id,
        )
        if rows:
            return str(rows[0]["workflow_id"])
        await asyncio.sleep(0.1)
    raise AssertionError(f"{parent_id} dispatched no session")


async def until_session(
    agents: Agents, session_id: str, *, terminal: bool = False, line: str = ""
) -> SessionRecord:
    for _ in range(150):
        record = await agents.sessions.get(session_id, org_id="")
        if (
            record is not None
            and (not terminal or record.is_terminal)
            and (not line or any(line in p.line for p in record.progress))
        ):
            return record
        await asyncio.sleep(0.1)
    raise AssertionError(f"session {session_id} never got there: {record}")


async def completions(agents: Agents, session_id: str) -> list[dict[str, object]]:
    rows = await agents.pool.fetch(
        "SELECT id, data FROM events WHERE type = 'rensei/pm.agent-session.completed'"
        " AND data->>'session_id' = $1",
        session_id,
    )
    return [{"id": r["id"], **json.loads(r["data"])} for r in rows]


async def test_a_waiting_workflow_resumes_on_the_session_completion(agents: Agents) -> None:
    async with agents.running() as client:
        handle = await client.start(
            "tests/agents-parent.run", ParentInput(context={"issues": ISSUES})
        )
        out: ParentOutput = await handle.result()
        session_out = await client.get(out.session_id).result()
        assert session_out.status == "completed"

        record = await agents.sessions.get(out.session_id, org_id="", transcript=True)
        histories = [
            await client.temporal.get_workflow_handle(run).fetch_history()
            for run in (handle.workflow_id, out.session_id)
        ]
    assert out.status == "completed"
    assert out.session_id.startswith("rensei/pm.agent-session.run:")
    assert session_of(out.result_ref) == out.session_id
    assert out.summary == "proposed labels, priorities and owners for 2 issue(s); 1 urgent"

    assert record is not None and record.status == "completed"
    assert record.requested_by == handle.workflow_id
    proposals = {p["issue_id"]: p for p in record.result["proposals"]}
    assert proposals["T-1"]["labels"] == ["bug"] and proposals["T-1"]["priority"] == 1
    assert proposals["T-2"]["labels"] == ["feature"]
    assert [p.line for p in record.progress][1:] == [
        "read a prompt of 19 character(s)",
        "triaging 2 issue(s)",
        "done",
    ]
    assert record.progress[0].line.startswith("started (pid ")
    streams = {entry["stream"] for entry in record.transcript or []}
    assert {"stdin", "stdout", "progress"} <= streams

    sent = await completions(agents, out.session_id)
    assert len(sent) == 1, "the completion is sent exactly once"
    assert sent[0]["id"] == out.completion_id and sent[0]["status"] == "completed"

    # History carries references only: the result and transcript stay in PostgreSQL.
    session_history = payloads(histories[1])
    assert out.result_ref in session_history
    assert "dark mode" in session_history, "the prompt's context is the session's input"
    assert "proposals" not in session_history and "matched bug" not in session_history
    # And both runs replay against today's code.
    await replay(REGISTRY, histories)


async def test_a_session_that_finishes_before_the_wait_is_not_missed(agents: Agents) -> None:
    async with agents.running() as client:
        handle = await client.start(
            "tests/agents-parent.run", ParentInput(prompt="say hello", hold=True)
        )
        session_id = await session_of_parent(agents, handle.workflow_id)
        await until_session(agents, session_id, terminal=True)
        await client.get(session_id).result()
        assert len(await completions(agents, session_id)) == 1
        desc = await handle.describe()
        assert desc.current_steps == ["hold"], "the parent has not begun waiting for it yet"

        await client.send_event(GoAhead(data=Go(workflow_id=handle.workflow_id)))
        out: ParentOutput = await handle.result()
    assert out.session_id == session_id
    assert out.status == "completed"
    assert out.summary == "read a prompt of 2 word(s): say hello"


async def test_cancelling_the_parent_cancels_the_session_and_kills_the_agent(
    agents: Agents,
) -> None:
    async with agents.running() as client:
        handle = await client.start(
            "tests/agents-parent.run", ParentInput(context={"sleep": 120}, timeout="5m")
        )
        session_id = await session_of_parent(agents, handle.workflow_id)
        started = await until_session(agents, session_id, line="working")
        match = re.search(r"pid (\d+)", started.progress[0].line)
        assert match is not None
        pid = int(match[1])
        os.kill(pid, 0)  # the agent runs

        await handle.cancel("not needed")
        with pytest.raises(durable.RunCancelled):
            await handle.result()
        with pytest.raises(durable.RunCancelled):
            await client.get(session_id).result()
        record = await until_session(agents, session_id, terminal=True)
    assert record.status == "cancelled"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # stopped (and reaped) when the step saw the cancellation
    sent = await completions(agents, session_id)
    assert [(c["status"], c["error"]) for c in sent] == [("cancelled", "the session was cancelled")]


async def test_an_agent_that_prints_garbage_fails_the_session_readably(agents: Agents) -> None:
    async with agents.running() as client:
        handle = await client.start(
            "tests/agents-parent.run", ParentInput(context={"garbage": True})
        )
        out: ParentOutput = await handle.result()
        record = await agents.sessions.get(out.session_id, org_id="", transcript=True)
    assert out.status == "failed"
    assert out.error == (
        "the agent printed something that is not JSON on stdout line 3: "
        "'Sure! Here is my answer: labels=bug priority=high' "
        '(expected {"progress": "..."} or {"result": ...})'
    )
    assert record is not None and record.status == "failed" and record.error == out.error
    assert record.result is None
    assert any("Sure! Here is my answer" in e["text"] for e in record.transcript or [])


async def test_an_agent_that_exits_non_zero_fails_with_its_stderr(agents: Agents) -> None:
    async with agents.running() as client:
        handle = await client.start("tests/agents-parent.run", ParentInput(context={"exit": 3}))
        out: ParentOutput = await handle.result()
    assert out.status == "failed"
    assert out.error == (
        "the agent exited with status 3; stderr ends: local agent: exiting with status 3 as asked"
    )


async def test_an_agent_past_its_timeout_is_stopped_and_the_session_timed_out(
    agents: Agents,
) -> None:
    async with agents.running() as client:
        handle = await client.start(
            "tests/agents-parent.run", ParentInput(context={"sleep": 60}, timeout="2s")
        )
        out: ParentOutput = await handle.result()
    assert out.status == "timed_out"
    assert out.error.startswith("the agent did not finish within 2 s and was stopped")


async def test_an_unknown_runtime_fails_the_session(agents: Agents) -> None:
    async with agents.running() as client:
        handle = await client.start("tests/agents-parent.run", ParentInput(runtime="gpt-9"))
        out: ParentOutput = await handle.result()
    assert out.status == "failed"
    assert out.error == "unknown agent runtime 'gpt-9'; this worker has: local"


async def test_a_session_runs_on_the_task_queue_its_project_routes_to(agents: Agents) -> None:
    pool_queue = f"pool-{uuid.uuid4()}"
    routes = {"routed-project": pool_queue}
    async with agents.running(routes=routes, pools=(pool_queue,)) as client:
        routed = await client.start(
            "tests/agents-parent.run", ParentInput(project="routed-project")
        )
        other = await client.start("tests/agents-parent.run", ParentInput(project="elsewhere"))
        routed_out: ParentOutput = await routed.result()
        other_out: ParentOutput = await other.result()
        queues = [
            (await client.temporal.get_workflow_handle(out.session_id).describe()).task_queue
            for out in (routed_out, other_out)
        ]
    assert routed_out.status == other_out.status == "completed"
    assert queues == [pool_queue, agents.task_queue]


async def test_a_session_cancelled_directly_announces_cancelled(agents: Agents) -> None:
    async with agents.running() as client:
        handle = await client.start(
            "tests/agents-parent.run", ParentInput(context={"sleep": 120}, timeout="5m")
        )
        session_id = await session_of_parent(agents, handle.workflow_id)
        await until_session(agents, session_id, line="working")
        await client.get(session_id).cancel("operator says stop")
        out: ParentOutput = await handle.result()
    assert out.status == "cancelled"
    assert out.error == "the session was cancelled"


async def test_the_shipped_demo_on_the_worker_s_own_registry(
    dev_client: Client, pool: asyncpg.Pool, task_queue: str
) -> None:
    shipped = registry()
    ingress = EventIngress(dev_client, EventStore(pool), shipped, task_queue)
    client = TemporalDurableClient(dev_client, shipped, task_queue, events=ingress)
    worker = build_worker(dev_client, worker_registry(pool, client), task_queue, events=ingress)
    async with worker:
        handle = await client.start("rensei/pm.agent-demo.run", {})
        out = await handle.result()
        await client.get(out.session_id).result()
        histories = [
            await dev_client.get_workflow_handle(run).fetch_history()
            for run in (handle.workflow_id, out.session_id)
        ]
    assert out.status == "completed"
    assert out.summary == "proposed labels, priorities and owners for 3 issue(s); 1 urgent"
    await replay(shipped, histories)

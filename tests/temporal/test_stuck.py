"""`durable stuck`: runs that will not move on by themselves are listed with why and what to
do: a workflow task that keeps failing, a step retrying past its threshold, a wait open past
its timeout; and Temporal's own flag finds the first kind too."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from adapters.temporal import (
    EventIngress,
    TemporalDurableClient,
    build_worker,
    ensure_search_attributes,
    find_stuck,
    report_stuck_once,
)
from durable import Registry, StuckRun
from store import EventStore
from workers.embedded import EmbeddedTemporal, free_port

from ..test_cli import durable
from . import sandboxed, stubborn

REGISTRY = Registry([sandboxed.wall_clock, stubborn.stubborn], [stubborn.unreachable_service])


async def until_listed(client: Client, store: EventStore, workflow_id: str, kind: str) -> StuckRun:
    for _ in range(120):
        found = await find_stuck(client, store, retry_threshold=3)
        mine = [s for s in found if s.workflow_id == workflow_id and s.kind == kind]
        if mine:
            return mine[0]
        await asyncio.sleep(0.5)
    raise AssertionError(f"{workflow_id} never listed as {kind}: {found}")


async def test_a_failing_workflow_task_and_a_step_retrying_for_ever_are_listed(
    dev_client: Client,
    dev_server: EmbeddedTemporal,
    pool: asyncpg.Pool,
    database_url: str,
    task_queue: str,
) -> None:
    await ensure_search_attributes(dev_client, create=True)
    store = EventStore(pool)
    async with build_worker(dev_client, REGISTRY, task_queue):
        client = TemporalDurableClient(dev_client, REGISTRY, task_queue)
        broken = await client.start(sandboxed.wall_clock, {})
        retrying = await client.start(stubborn.stubborn, {})
        task = await until_listed(dev_client, store, broken.workflow_id, "workflow-task-failing")
        step = await until_listed(dev_client, store, retrying.workflow_id, "step-retrying")
        flag = f'WorkflowId = "{broken.workflow_id}" AND TemporalReportedProblems IS NOT NULL'
        flagged: list[str] = []
        for _ in range(120):  # after two failed tasks in a row, once visibility has it
            flagged = [w.id async for w in dev_client.list_workflows(flag)]
            if flagged:
                break
            await asyncio.sleep(0.5)
        env = {"TEMPORAL_ADDRESS": dev_server.address, "DATABASE_URL": database_url}
        code, out, err = await durable("stuck", "--json", "--limit", "2000", env=env)
        for handle in (broken, retrying):
            await handle.temporal.terminate("test over")
    assert "Cannot access datetime.datetime.now" in task.detail
    assert "temporal workflow reset" in task.remedy
    assert "step charge (attempt" in step.detail and "card declined" in step.detail
    assert flagged == [broken.workflow_id], "Temporal's own task-issues flag agrees"
    assert code == 1, err
    listed = {(s["workflow_id"], s["kind"]) for s in json.loads(out)}
    assert (broken.workflow_id, "workflow-task-failing") in listed


async def forgotten_wait(store: EventStore, workflow_id: str, org: str) -> None:
    """An open wait whose timeout was up five minutes ago: no worker fired its timer."""
    await store.register_wait(
        workflow_id,
        "r1",
        "await-approval",
        "rensei/approval.resolved",
        {},
        datetime.now(UTC) - timedelta(hours=2),
        org_id=org,
        expires_at=datetime.now(UTC) - timedelta(minutes=5),
    )


async def test_a_wait_open_past_its_timeout_is_overdue(
    dev_client: Client, pool: asyncpg.Pool
) -> None:
    store = EventStore(pool)
    org = f"org-{uuid.uuid4().hex[:8]}"
    workflow_id = f"forgotten-{uuid.uuid4()}"
    await forgotten_wait(store, workflow_id, org)
    mine = await find_stuck(dev_client, store, org_id=org)
    others = await find_stuck(dev_client, store, org_id=f"org-{uuid.uuid4().hex[:8]}")
    assert [(s.workflow_id, s.kind) for s in mine] == [(workflow_id, "wait-overdue")]
    assert "await-approval waits for rensei/approval.resolved" in mine[0].detail
    assert "is a worker polling" in mine[0].remedy
    assert workflow_id not in {s.workflow_id for s in others}, "another org sees nothing"


async def test_the_stuck_count_is_a_metric_by_kind(dev_client: Client, pool: asyncpg.Pool) -> None:
    store = EventStore(pool)
    org = f"org-{uuid.uuid4().hex[:8]}"
    await forgotten_wait(store, f"forgotten-{uuid.uuid4()}", org)
    address = f"127.0.0.1:{free_port()}"
    runtime = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address)))
    ingress = EventIngress(dev_client, store, REGISTRY, "unused")
    client = TemporalDurableClient(dev_client, REGISTRY, "unused", events=ingress)
    counts = await report_stuck_once(client, runtime)
    async with httpx.AsyncClient() as http:
        scraped = (await http.get(f"http://{address}/metrics")).text
    assert counts["wait-overdue"] >= 1
    service = 'service_name="temporal-core-sdk"'
    overdue = counts["wait-overdue"]
    assert f'durable_stuck_runs{{kind="wait-overdue",{service}}} {overdue}' in scraped
    assert f'durable_stuck_runs{{kind="workflow-task-failing",{service}}}' in scraped

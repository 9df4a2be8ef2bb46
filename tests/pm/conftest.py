"""A worker with everything the PM agents, audits and memory consolidation use, bound the way
the composition root binds it: the shipped registry, the agent-session steps with the shipped
local agent as the `local` runtime, the Linear steps against a real local Linear server for
org `TEST_ORG`, the PM steps, and the event ingress; on the dev server or the time-skipping
server, with a real PostgreSQL.

    async def test_x(pm: Pm, local_linear: LocalLinear) -> None:
        async with pm.running(local_linear) as client:
            handle = await pm.trigger(client, BacklogTriageRequested(data=...))
            ...
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

import durable
from activities.agents import AgentRuntime, CommandRuntime, local_agent_command
from activities.linear.local_server import LocalLinear
from activities.linear.steps import LinearCredentials, LinearSteps
from adapters.temporal import EventIngress, TemporalDurableClient, build_worker
from store import EventStore
from workers.embedded import EmbeddedTemporal
from workers.runtime import worker_registry
from workflows import registry as shipped_registry
from workflows.events import Approval, ApprovalResolved

from ..linear.conftest import TEST_KEY, TEST_ORG, local_linear  # noqa: F401 (a fixture)

TENANCY = durable.Tenancy(org_id=TEST_ORG)


@dataclass
class Pm:
    client: Client
    pool: asyncpg.Pool
    task_queue: str
    search_attributes: bool = True
    runtimes: dict[str, AgentRuntime] = field(
        default_factory=lambda: {"local": CommandRuntime(local_agent_command(), kill_grace=1.0)}
    )

    def ingress(self) -> EventIngress:
        return EventIngress(
            self.client,
            EventStore(self.pool),
            shipped_registry(),
            self.task_queue,
            search_attributes=self.search_attributes,
        )

    def durable_client(self, ingress: EventIngress) -> TemporalDurableClient:
        return TemporalDurableClient(
            self.client,
            shipped_registry(),
            self.task_queue,
            events=ingress,
            search_attributes=self.search_attributes,
        )

    @asynccontextmanager
    async def running(
        self, linear: LocalLinear, *, workers: int = 1
    ) -> AsyncIterator[TemporalDurableClient]:
        """`workers` workers on the test's queue, acting on `linear` for org TEST_ORG."""
        ingress = self.ingress()
        client = self.durable_client(ingress)
        steps = LinearSteps(
            LinearCredentials(api_keys=json.dumps({TEST_ORG: TEST_KEY})), linear.url
        )
        registry = worker_registry(self.pool, client, self.runtimes, orgs=steps.orgs)
        registry.bind(steps)
        async with AsyncExitStack() as stack:
            for _ in range(workers):
                await stack.enter_async_context(
                    build_worker(self.client, registry, self.task_queue, events=ingress)
                )
            yield client

    @staticmethod
    async def trigger(
        client: TemporalDurableClient, event: durable.Event[Any]
    ) -> durable.RunHandle[Any]:
        """Send a PM agent's trigger event (under a fresh id) for TEST_ORG; the handle of the run
        it started."""
        sent = event.model_copy(update={"id": str(uuid.uuid4()), "tenancy": TENANCY})
        receipt = await client.send_event(sent)
        assert len(receipt.started) == 1, receipt
        return client.get(receipt.started[0])


async def _fresh_org(pool: asyncpg.Pool) -> None:
    # Every test starts from a freshly seeded local Linear, so its PM agents start from "never
    # ran" too: the cursors are per org, and TEST_ORG is shared by the tests.
    await pool.execute("DELETE FROM pm_cursors WHERE org_id = $1", TEST_ORG)


@pytest.fixture
async def pm(dev_client: Client, pool: asyncpg.Pool, task_queue: str) -> Pm:
    await _fresh_org(pool)
    return Pm(dev_client, pool, task_queue)


@pytest.fixture
async def skipping_pm(
    time_skipping: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> Pm:
    await _fresh_org(pool)
    return Pm(time_skipping.client, pool, task_queue, search_attributes=False)


async def waiting_at(pm: Pm, run_id: str, step_id: str, timeout: float = 60.0) -> None:
    """Return once `run_id` has an open wait at `step_id` (what `durable waits` shows)."""
    deadline = asyncio.get_running_loop().time() + timeout
    store = EventStore(pm.pool)
    while True:
        open_ = [w["step_id"] for w in await store.open_waits(run_id, org_id=TEST_ORG)]
        if step_id in open_:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{run_id} never waited at {step_id!r} (open waits: {open_})")
        await asyncio.sleep(0.2)


async def approve(
    client: TemporalDurableClient, run_id: str, decision: str = "approve", **data: str
) -> None:
    """What `durable approve RUN_ID --decision ... --notes ... --item ...` sends, for the org
    the runs belong to (only an event of a run's own org resolves its wait)."""
    await client.send_event(
        ApprovalResolved(
            data=Approval(workflow_id=run_id, decision=decision, **data), tenancy=TENANCY
        )
    )


@asynccontextmanager
async def product_worker(
    server: EmbeddedTemporal, database_url: str, task_queue: str, linear: LocalLinear
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`durable worker`, the product's own worker process, acting on the local Linear."""
    env = dict(
        os.environ,
        TEMPORAL_ADDRESS=server.address,
        DATABASE_URL=database_url,
        DURABLE_TASK_QUEUE=task_queue,
        LINEAR_API_KEYS=json.dumps({TEST_ORG: TEST_KEY}),
        LINEAR_API_URL=linear.url,
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from cli.main import app; app()",
        "worker",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

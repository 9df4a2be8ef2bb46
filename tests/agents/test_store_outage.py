"""An agent session outlasts a 30 s PostgreSQL outage in the middle of its run and completes:
its store writes wait (heartbeating what they wait for) instead of spending its attempts."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import Client

from store import SessionStore
from workflows.agents import AgentSessionRequested, SessionRequest

from ..events.test_outage import own_postgres
from .conftest import Agents

pytestmark = pytest.mark.timeout(240)

OUTAGE_SECONDS = 30


async def test_a_session_outlasts_a_postgres_outage_and_completes(
    dev_client: Client, task_queue: str
) -> None:
    async with own_postgres() as (postgres, pool):
        agents = Agents(dev_client, pool, task_queue)
        async with agents.running() as client:
            request = SessionRequest(prompt="triage", context={"sleep": 12}, timeout="5m")
            receipt = await client.send_event(AgentSessionRequested(data=request))
            (session_id,) = receipt.started
            sessions = SessionStore(pool)
            for _ in range(200):  # the agent runs and reports progress
                record = await sessions.get(session_id, org_id="")
                if record is not None and await sessions.progress(session_id, org_id=""):
                    break
                await asyncio.sleep(0.1)
            await postgres.crash()
            await asyncio.sleep(OUTAGE_SECONDS)
            described = await client.get(session_id).describe()
            await postgres.start_again()
            out = await asyncio.wait_for(client.get(session_id).result(), 120)
            record = await sessions.get(session_id, org_id="")
            assert record is not None
            progress = await sessions.progress(session_id, org_id="")
            lines = [p.line for p in progress]
    assert described.status.is_open, "still running while the store was away"
    assert out.status == "completed", out.error
    assert record.status == "completed"
    assert {p.attempt for p in progress} == {1}, "no attempt spent on the outage"
    assert lines and lines[-1] == "done", "every progress line was kept"

"""A session working for a Linear agent session posts its progress there, as thoughts, once
each (the local Linear server, validating against Linear's schema)."""

from __future__ import annotations

import json

import durable
from activities.agents import AgentSessionRequested, SessionRequest
from activities.linear.local_server import LocalLinear
from activities.linear.steps import LinearCredentials, LinearSteps
from tests.linear.conftest import TEST_KEY, TEST_ORG, local_linear

from .conftest import Agents

__all__ = ["local_linear"]  # the fixture, used below


async def test_progress_lines_reach_the_linear_agent_session(
    agents: Agents, local_linear: LocalLinear
) -> None:
    linear_session = local_linear.open_agent_session("ENG-1")["id"]
    steps = LinearSteps(
        LinearCredentials(api_keys=json.dumps({TEST_ORG: TEST_KEY})), local_linear.url
    )
    agents.on_progress = steps.post_progress
    request = AgentSessionRequested(
        data=SessionRequest(
            prompt="triage ENG-1",
            context={"issues": [{"id": "ENG-1", "title": "Crash on save"}]},
            linear_agent_session_id=linear_session,
        ),
        tenancy=durable.Tenancy(org_id=TEST_ORG),
    )
    async with agents.running() as client:
        (session_id,) = (await client.send_event(request)).started
        out = await client.get(session_id).result()
        record = await agents.sessions.get(session_id, org_id=TEST_ORG)
    assert out.status == "completed" and record is not None
    posted = [
        a for a in local_linear.state()["agentActivities"] if a["agentSessionId"] == linear_session
    ]
    assert len(posted) >= 3, "the local agent reports several lines"
    assert [a["content"]["body"] for a in posted] == [p.line for p in record.progress]
    assert {a["content"]["type"] for a in posted} == {"thought"}

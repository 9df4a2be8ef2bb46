"""GET /sessions/{id}: a session's status and progress over HTTP, for its own org only."""

from __future__ import annotations

import asyncio

import durable
from activities.agents import AgentSessionRequested, SessionRequest
from api import create_app
from api.server import ApiServer
from store import EventStore
from tests.events.test_http import call
from tests.keys import bearer, make_key
from workers.embedded import free_port

from .conftest import Agents
from .workflows import REGISTRY


async def test_a_session_is_read_over_http_by_its_org(agents: Agents) -> None:
    request = AgentSessionRequested(
        data=SessionRequest(
            prompt="triage",
            context={"issues": [{"id": "T-1", "title": "crash"}]},
            agent_id="pm-backlog-triage",
        ),
        tenancy=durable.Tenancy(org_id="org-a"),
    )
    org_a = bearer(await make_key(agents.pool, "org-a", "runs:read"))
    org_b = bearer(await make_key(agents.pool, "org-b", "runs:read"))
    async with agents.running() as client:
        (session_id,) = (await client.send_event(request)).started
        completion = await client.get(session_id).result()
        server = ApiServer(create_app(client, REGISTRY, EventStore(agents.pool)), free_port())
        await server.start()
        try:
            url = f"{server.address}/sessions/{session_id}"
            mine = await asyncio.to_thread(call, "GET", url, None, org_a)
            theirs = await asyncio.to_thread(call, "GET", url, None, org_b)
            anonymous = await asyncio.to_thread(call, "GET", url)
            # Naming another org is not a way in: only an admin may, and that is logged.
            named = await asyncio.to_thread(call, "GET", f"{url}?org=org-a", None, org_b)
        finally:
            await server.stop()
    status, body = mine
    assert status == 200 and body["status"] == "completed"
    assert body["progress"][-1] == "done" and len(body["progress"]) >= 3
    assert body["result"]["proposals"][0]["issue_id"] == "T-1"
    assert body["agent_id"] == "pm-backlog-triage", "the agent the session worked for"
    assert theirs[0] == 404 and session_id in theirs[1]["error"]
    assert anonymous[0] == 401 and "needs a credential" in anonymous[1]["error"]
    assert named[0] == 403 and "may read only org 'org-b'" in named[1]["error"]
    assert completion.agent_id == "pm-backlog-triage", "the completion bridge carries it"

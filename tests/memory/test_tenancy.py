"""Memory consolidation keeps every org's memory in that org: a run of no org (the nightly one)
consolidates each org's sessions under that org, so the consolidating agent session, the events
it is dispatched and answered with, the run's wait for its answer and the note all belong to the
group's org, never to org '' (which reads as no tenant's, and so as anybody's).

Each test uses orgs and projects of its own, and only asserts about them: a run without an org
takes every org's pending sessions, the other tests' too."""

from __future__ import annotations

import uuid

import asyncpg

from activities.linear.local_server import LocalLinear
from store import MemoryStore, SessionStore
from workflows.agents import SESSION_WORKFLOW
from workflows.memory import MEMORY_AGENT

from .conftest import Pm, consolidate, new_org, session


async def read_as(sessions: SessionStore, session_id: str, org: str) -> bool:
    """Whether `org` can read the session: what `GET /v1/sessions/{id}` (api/app.py) does,
    where another org's session is as absent as a missing one."""
    record = await sessions.get(session_id, org_id=org)
    return record is not None and record.org_id == org


async def consolidating_sessions(pool: asyncpg.Pool, projects: list[str]) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT session_id, org_id, project, requested_by FROM agent_sessions"
        " WHERE agent_id = $1 AND project = ANY($2::text[]) ORDER BY project",
        MEMORY_AGENT,
        projects,
    )


async def test_a_run_of_no_org_consolidates_each_group_under_its_own_org(
    pm: Pm, local_linear: LocalLinear
) -> None:
    mine, theirs = new_org(), new_org()
    # Projects of the test's own: under the bug the consolidating sessions have no org to find
    # them by.
    tag = uuid.uuid4().hex[:8]
    my_project, their_project = f"roadmap-{tag}", f"search-{tag}"
    secret = f"secret roadmap {tag}: acquire the competitor in Q3"
    store = MemoryStore(pm.pool)
    sessions = SessionStore(pm.pool)
    async with pm.running(local_linear) as client:
        await session(client, mine, my_project, secret)
        await session(client, theirs, their_project, f"their search lesson {tag}")
        await consolidate(client, None, of={mine, theirs})  # what the nightly schedule starts

    rows = await consolidating_sessions(pm.pool, [my_project, their_project])
    assert [(r["org_id"], r["project"]) for r in rows] == [
        (mine, my_project),
        (theirs, their_project),
    ], "one consolidating session per group, of the group's org"
    for row in rows:
        own = row["org_id"]
        other = theirs if own == mine else mine
        assert await read_as(sessions, row["session_id"], own)
        assert not await read_as(sessions, row["session_id"], other), "not another org's"
        assert not await read_as(sessions, row["session_id"], ""), "not org ''s"

        # Dispatched, answered and waited for in the group's org.
        dispatch = row["session_id"].removeprefix(f"{SESSION_WORKFLOW}:")
        dispatched = await pm.pool.fetchval(
            "SELECT coalesce(tenancy->>'org_id', '') FROM events WHERE id = $1", dispatch
        )
        assert dispatched == own
        answers = await pm.pool.fetch(
            "SELECT e.id, coalesce(e.tenancy->>'org_id', '') AS org_id FROM events e"
            " WHERE e.type = 'rensei/pm.agent-session.completed'"
            " AND e.data->>'session_id' = $1",
            row["session_id"],
        )
        assert [a["org_id"] for a in answers] == [own]
        waits = await pm.pool.fetch(
            "SELECT org_id FROM waits WHERE event_id = $1", answers[0]["id"]
        )
        assert [w["org_id"] for w in waits] == [own], "the run that waited is of the org"
        (note,) = await store.notes(own)
        assert note.updated_by == row["requested_by"], "written by that run of the org"

    (my_note,) = await store.notes(mine)
    (their_note,) = await store.notes(theirs)
    assert secret in my_note.note and secret not in their_note.note
    # Nothing of the consolidation of my org's sessions is kept as org '''s.
    leaked = await pm.pool.fetchval(
        "SELECT (SELECT count(*) FROM agent_sessions WHERE org_id = ''"
        "        AND (prompt LIKE $1 OR result::text LIKE $1))"
        "     + (SELECT count(*) FROM project_memory WHERE org_id = '' AND note LIKE $1)"
        "     + (SELECT count(*) FROM events WHERE coalesce(tenancy->>'org_id', '') = ''"
        "        AND data::text LIKE $1)",
        f"%{tag}%",
    )
    assert leaked == 0, "no session, note or event of org '' holds the orgs' outcomes"

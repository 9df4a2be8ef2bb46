"""Memory consolidation end to end: agent sessions run for real (the local agent, through the
event ingress), the consolidation run on the dev server, notes in PostgreSQL.

Each test uses orgs of its own: the database is shared with other tests' sessions."""

from __future__ import annotations

import json

import durable
from activities.linear.local_server import LocalLinear
from adapters.temporal import replay
from store import MemoryStore
from workflows import registry
from workflows.memory import ConsolidateInput, consolidate_memory

from ..memory.conftest import consolidate, new_org, session
from ..test_cli import durable as durable_cli
from .conftest import Pm


async def test_sessions_become_per_project_notes_counted_once(
    pm: Pm, local_linear: LocalLinear
) -> None:
    org = new_org()
    store = MemoryStore(pm.pool)
    async with pm.running(local_linear) as client:
        await session(client, org, "billing", "invoices double charged on retry")
        await session(client, org, "billing", "refund webhook lost after deploy")
        await session(client, org, "search", "archived filter ignored")
        first = await consolidate(client, org)
        assert first.gathered == 3 and first.counted == 3
        billing = await store.note(org, "billing")
        search = await store.note(org, "search")
        assert billing is not None and search is not None
        assert billing.sessions == 2 and search.sessions == 1
        assert "invoices double charged" in billing.note and "refund webhook" in billing.note
        assert "archived filter" in search.note and "invoices" not in search.note

        again = await consolidate(client, org)
        assert again.gathered == 0 and again.counted == 0, "nothing counted twice"
        assert (await store.note(org, "billing")) == billing, "and the notes are unchanged"

        await session(client, org, "billing", "tax rounding off by a cent")
        handle = await client.start(
            consolidate_memory, ConsolidateInput(), tenancy=durable.Tenancy(org_id=org)
        )
        third = await handle.result()
        history = await client.temporal.get_workflow_handle(handle.workflow_id).fetch_history()
    assert third.gathered == 1 and third.counted == 1
    billing = await store.note(org, "billing")
    assert billing is not None and billing.sessions == 3
    assert "tax rounding" in billing.note and "invoices double charged" in billing.note, (
        "the new outcome is folded into the note so far"
    )
    await replay(registry(), [history])


async def test_notes_stay_within_their_org(pm: Pm, local_linear: LocalLinear) -> None:
    mine, theirs = new_org(), new_org()
    store = MemoryStore(pm.pool)
    async with pm.running(local_linear) as client:
        await session(client, mine, "billing", "my billing lesson")
        await session(client, theirs, "billing", "their billing secret")
        await consolidate(client, mine)
        assert [n.project for n in await store.notes(mine)] == ["billing"]
        assert await store.notes(theirs) == [], "a run of one org leaves another's alone"
        # The nightly run has no org: it consolidates every org, each under its own.
        await consolidate(client, None, of={mine, theirs})
    (my_note,) = await store.notes(mine)
    (their_note,) = await store.notes(theirs)
    assert "their billing secret" not in my_note.note and "my billing lesson" in my_note.note
    assert "their billing secret" in their_note.note and my_note.sessions == 1


async def test_a_repeated_write_counts_nothing_twice(pm: Pm, local_linear: LocalLinear) -> None:
    """What a retried step (a worker died after the commit, before it reported) or an overlapping
    run does: the write key makes the retry a no-op, and a session counted by one write is
    left out of another."""
    org = new_org()
    store = MemoryStore(pm.pool)
    async with pm.running(local_linear) as client:
        a = await session(client, org, "p", "first lesson")
        b = await session(client, org, "p", "second lesson")
    first = await store.write(
        write_key=f"{org}/k1", org_id=org, project="p", note="n1", session_ids=[a], workflow_id="r1"
    )
    retried = await store.write(
        write_key=f"{org}/k1", org_id=org, project="p", note="n1", session_ids=[a], workflow_id="r1"
    )
    overlapping = await store.write(
        write_key=f"{org}/k2",
        org_id=org,
        project="p",
        note="n2",
        session_ids=[a, b],
        workflow_id="r2",
    )
    assert (first.counted, retried.repeated, retried.counted) == (1, True, 1)
    assert (overlapping.counted, overlapping.already) == (1, 1)
    note = await store.note(org, "p")
    assert note is not None and note.sessions == 2 and note.note == "n2"
    assert [
        s.session_id for s in await store.pending(org_id=org, exclude_agents=[], limit=10)
    ] == []


async def test_durable_memory_shows_one_orgs_notes(
    pm: Pm, local_linear: LocalLinear, database_url: str
) -> None:
    mine, theirs = new_org(), new_org()
    async with pm.running(local_linear) as client:
        a = await session(client, mine, "billing", "lesson one")
        b = await session(client, theirs, "billing", "lesson two")
    store = MemoryStore(pm.pool)
    await store.write(
        write_key=f"{mine}/w",
        org_id=mine,
        project="billing",
        note="- mine",
        session_ids=[a],
        workflow_id="r",
    )
    await store.write(
        write_key=f"{theirs}/w",
        org_id=theirs,
        project="billing",
        note="- theirs",
        session_ids=[b],
        workflow_id="r",
    )
    env = {"DATABASE_URL": database_url}
    code, out, err = await durable_cli("memory", "--org", mine, "--json", env=env)
    assert code == 0, err
    assert [(n["project"], n["note"]) for n in json.loads(out)] == [("billing", "- mine")]
    code, out, _ = await durable_cli("memory", "--org", new_org(), env=env)
    assert code == 0 and "no memory notes for org" in out

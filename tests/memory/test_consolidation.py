"""Memory consolidation when things go wrong or overlap: the product's worker killed in the
middle of a note write, a session finishing while a run is going, two runs at once, and the
nightly schedule and `durable start` as a user starts them.

Each test uses orgs of its own, and only asserts about them: a run without an org takes every
org's pending sessions, the other tests' too."""

from __future__ import annotations

import asyncio
import json
import signal

import pytest
from temporalio.client import ScheduleActionExecutionStartWorkflow, WorkflowHistory

import durable
from activities.linear.local_server import LocalLinear
from adapters.temporal import TemporalDurableClient, replay, sync_schedules
from store import MemoryStore, StepAudit
from workers.embedded import EmbeddedTemporal
from workflows import registry
from workflows.memory import MEMORY_AGENT, ConsolidateOutput, consolidate_memory

from ..test_cli import durable as durable_cli
from .conftest import (
    Pm,
    consolidate,
    holding,
    new_org,
    product_worker,
    session,
    start,
    with_org_runs,
    writes_waiting,
)

SCHEDULE = "durable:rensei/memory.consolidate.run"


async def history(client: TemporalDurableClient, run_id: str) -> WorkflowHistory:
    return await client.temporal.get_workflow_handle(run_id).fetch_history()


async def pending(store: MemoryStore, org: str) -> list[str]:
    """The org's sessions the next run will consolidate (what agents other than memory
    consolidation itself completed and no run has counted yet)."""
    found = await store.pending(org_id=org, exclude_agents=[MEMORY_AGENT], limit=50)
    return [s.session_id for s in found]


async def test_a_worker_killed_mid_write_counts_each_session_once(
    pm: Pm, dev_server: EmbeddedTemporal, database_url: str, local_linear: LocalLinear
) -> None:
    org = new_org()
    store = MemoryStore(pm.pool)
    client = pm.durable_client(pm.ingress())
    async with product_worker(dev_server, database_url, pm.task_queue, local_linear) as first:
        a = await session(client, org, "billing", "invoices double charged on retry")
        b = await session(client, org, "billing", "refund webhook lost after deploy")
        async with holding(pm.pool, org, "billing", a):
            handle = await start(client, org)
            await writes_waiting(pm.pool, 1)  # the note's write is in its transaction
            first.send_signal(signal.SIGKILL)
            await first.wait()
    assert await store.note(org, "billing") is None, "nothing of the killed write is kept"
    assert sorted(await pending(store, org)) == sorted([a, b]), "both still to be counted"

    async with product_worker(dev_server, database_url, pm.task_queue, local_linear):
        out: ConsolidateOutput = await asyncio.wait_for(handle.result(), 90)
        recorded = await history(client, handle.workflow_id)
        again = await consolidate(client, org)
    assert (out.gathered, out.counted) == (2, 2)
    note = await store.note(org, "billing")
    assert note is not None and note.sessions == 2
    assert note.note.count("invoices double charged") == 1
    assert note.note.count("refund webhook lost") == 1
    writes = [
        (s.attempt, s.status)
        for s in await StepAudit(pm.pool).steps(org, handle.workflow_id)
        if s.step_id.startswith("write:")
    ]
    assert writes == [(1, "failed"), (2, "completed")], "what `durable steps` shows"
    assert (again.gathered, again.counted) == (0, 0), "a later run finds nothing left"
    assert await store.note(org, "billing") == note
    await replay(registry(), [recorded])


async def test_a_session_finishing_mid_run_is_left_for_the_next_run(
    pm: Pm, local_linear: LocalLinear
) -> None:
    org = new_org()
    store = MemoryStore(pm.pool)
    async with pm.running(local_linear) as client:
        a = await session(client, org, "search", "archived filter ignored")
        await session(client, org, "search", "ranking favours stale docs")
        async with holding(pm.pool, org, "search", a):
            run = await start(client, org)
            await writes_waiting(pm.pool, 1)  # gathered, consolidated, about to be written
            late = await session(client, org, "search", "synonyms missing for SKU codes")
        first: ConsolidateOutput = await asyncio.wait_for(run.result(), 60)
        assert (first.gathered, first.counted) == (2, 2)
        note = await store.note(org, "search")
        assert note is not None and "synonyms" not in note.note
        assert await pending(store, org) == [late], "the late session is not lost"
        second = await consolidate(client, org)
    assert (second.gathered, second.counted) == (1, 1)
    note = await store.note(org, "search")
    assert note is not None and note.sessions == 3
    for lesson in ("archived filter", "ranking favours", "synonyms missing"):
        assert note.note.count(lesson) == 1, lesson


async def test_two_runs_at_once_count_each_session_once(pm: Pm, local_linear: LocalLinear) -> None:
    """A manual run overlapping the nightly one (or another manual one): the second write finds
    the note rewritten since its run read it, writes nothing and leaves its sessions to the next
    run, instead of folding the first run's outcomes in twice."""
    org = new_org()
    store = MemoryStore(pm.pool)
    async with pm.running(local_linear) as client:
        a = await session(client, org, "billing", "invoices double charged on retry")
        await session(client, org, "billing", "refund webhook lost after deploy")
        async with holding(pm.pool, org, "billing", a):
            one = await start(client, org)
            await writes_waiting(pm.pool, 1)
            late = await session(client, org, "billing", "tax rounding off by a cent")
            other = await start(client, org)
            await writes_waiting(pm.pool, 2)  # its write waits for the first one's
        first: ConsolidateOutput = await asyncio.wait_for(one.result(), 60)
        second: ConsolidateOutput = await asyncio.wait_for(other.result(), 60)
        assert (first.gathered, first.counted) == (2, 2)
        assert (second.gathered, second.counted) == (3, 0)
        (group,) = second.groups
        assert "another run changed the note meanwhile" in group.error
        assert await pending(store, org) == [late]
        third = await consolidate(client, org)
    assert third.counted == 1
    note = await store.note(org, "billing")
    assert note is not None and note.sessions == 3
    for lesson in ("invoices double charged", "refund webhook", "tax rounding"):
        assert note.note.count(lesson) == 1, lesson


async def test_a_write_from_a_note_replaced_meanwhile_is_refused(
    pm: Pm, local_linear: LocalLinear
) -> None:
    org = new_org()
    store = MemoryStore(pm.pool)
    async with pm.running(local_linear) as client:
        a = await session(client, org, "p", "first lesson")
        b = await session(client, org, "p", "second lesson")
    kept = await store.write(
        write_key=f"{org}/k1",
        org_id=org,
        project="p",
        note="- a",
        session_ids=[a],
        workflow_id="r1",
        based_on=0,
    )
    # Read before k1 was written: writing it would drop k1's note or repeat its outcome.
    stale = await store.write(
        write_key=f"{org}/k2",
        org_id=org,
        project="p",
        note="- a\n- a\n- b",
        session_ids=[a, b],
        workflow_id="r2",
        based_on=0,
    )
    assert (kept.counted, stale.stale, stale.counted) == (1, True, 0)
    note = await store.note(org, "p")
    assert note is not None and (note.note, note.sessions) == ("- a", 1)
    assert await pending(store, org) == [b]
    fresh = await store.write(
        write_key=f"{org}/k3",
        org_id=org,
        project="p",
        note="- a\n- b",
        session_ids=[b],
        workflow_id="r3",
        based_on=1,
    )
    assert (fresh.counted, fresh.stale) == (1, False)


async def test_the_nightly_schedule_takes_every_org_and_durable_start_one(
    pm: Pm, dev_server: EmbeddedTemporal, database_url: str, local_linear: LocalLinear
) -> None:
    mine, theirs = new_org(), new_org()
    store = MemoryStore(pm.pool)
    # What `durable worker` does at start (a product worker of another test may have made it).
    synced = await sync_schedules(pm.client, durable.Registry([consolidate_memory]), pm.task_queue)
    assert SCHEDULE in synced.created + synced.updated
    schedule = pm.client.get_schedule_handle(SCHEDULE)
    try:
        desc = await schedule.describe()
        assert "cron='0 3 * * *'" in (desc.schedule.state.note or "")
        async with pm.running(local_linear) as client:
            await session(client, mine, "billing", "my billing lesson")
            await session(client, theirs, "search", "their search lesson")
            env = {
                "TEMPORAL_ADDRESS": dev_server.address,
                "DURABLE_TASK_QUEUE": pm.task_queue,
                "DATABASE_URL": database_url,
            }
            code, out, err = await durable_cli(
                "start", "rensei/memory.consolidate.run", "--org", mine, "--wait", env=env
            )
            assert code == 0, err
            manual = json.loads(out[out.index("{") :])
            assert (manual["gathered"], manual["counted"]) == (1, 1)
            assert await store.notes(theirs) == [], "a run of one org leaves another's alone"

            await schedule.trigger()  # what the schedule does at 03:00
            for _ in range(100):
                actions = (await schedule.describe()).info.recent_actions
                if actions:
                    break
                await asyncio.sleep(0.1)
            (action,) = actions
            assert isinstance(action.action, ScheduleActionExecutionStartWorkflow)
            run_id = action.action.workflow_id
            assert run_id.startswith("rensei/memory.consolidate.run:scheduled")
            tick: ConsolidateOutput = await asyncio.wait_for(client.get(run_id).result(), 60)
            assert tick.groups == [], "it does no org's work itself"
            assert theirs in {r.org_id for r in tick.started}, "it starts a run of their org"
            nightly = await with_org_runs(client, tick, {mine, theirs})
            recorded = [await history(client, run_id)]
            for started in tick.started:
                if started.org_id == theirs:
                    recorded.append(await history(client, started.workflow_id))
    finally:
        await schedule.delete()
    assert (theirs, "search") in {(g.org_id, g.project) for g in nightly.groups}
    assert mine not in {g.org_id for g in nightly.groups}, "mine was counted already"
    (their_note,) = await store.notes(theirs)
    (my_note,) = await store.notes(mine)
    assert "their search lesson" in their_note.note and "my billing" not in their_note.note
    assert my_note.sessions == 1 and "their" not in my_note.note
    await replay(registry(), recorded)


@pytest.mark.parametrize(
    ("max_sessions", "says"),
    [(0, "greater than or equal to 1"), (5001, "less than or equal to 5000")],
)
async def test_a_bad_limit_is_refused_before_anything_starts(max_sessions: int, says: str) -> None:
    code, _, err = await durable_cli(
        "start",
        "rensei/memory.consolidate.run",
        "--input",
        json.dumps({"max_sessions": max_sessions}),
    )
    assert code == 2, "a usage error"
    assert "input for workflow 'rensei/memory.consolidate.run' failed validation" in err
    assert "max_sessions" in err and says in err

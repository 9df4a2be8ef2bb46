"""Record the histories of the PM agents, the audit and memory consolidation that
tests/pm/test_replay.py replays:

    python -m tests.histories.pm.record

Starts a dev server, PostgreSQL and the local Linear of its own and runs, with the shipped
local agent: a backlog triage revised once then approved, a status review, a stale sweep
approved, an audit of one project approved (with its child), a memory consolidation, and a PM
cron tick. Writes each history next to this file and their workflow ids to index.json.
Re-record only when an incompatible change is intended and no runs of the old code remain in
flight.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from activities.linear.local_server import LocalLinear
from tests.histories.record import recording_stack, write_histories
from tests.linear.conftest import TEST_KEY, TEST_ORG
from tests.pm.conftest import Pm, approve, waiting_at
from workflows.audit import AuditParams, AuditRequested
from workflows.memory import ConsolidateInput, consolidate_memory
from workflows.pm.backlog_triage import BacklogTriageParams, BacklogTriageRequested
from workflows.pm.registered import PmTick, pm_tick
from workflows.pm.stale_sweeper import StaleSweepParams, StaleSweepRequested
from workflows.pm.status_review import StatusReviewParams, StatusReviewRequested

HERE = Path(__file__).parent


async def record(pm: Pm, linear: LocalLinear) -> dict[str, str]:
    runs: dict[str, str] = {}
    async with pm.running(linear) as client:
        triage = await pm.trigger(client, BacklogTriageRequested(data=BacklogTriageParams()))
        await waiting_at(pm, triage.workflow_id, "await-approval#1")
        await approve(client, triage.workflow_id, "revise", notes="ENG-10 priority 2")
        await waiting_at(pm, triage.workflow_id, "await-approval#2")
        await approve(client, triage.workflow_id)
        await triage.result()
        runs["backlog_triage.json"] = triage.workflow_id

        review = await pm.trigger(client, StatusReviewRequested(data=StatusReviewParams()))
        await review.result()
        runs["status_review.json"] = review.workflow_id

        sweep = await pm.trigger(client, StaleSweepRequested(data=StaleSweepParams(stale_days=5)))
        await waiting_at(pm, sweep.workflow_id, "await-approval#1")
        await approve(client, sweep.workflow_id)
        await sweep.result()
        runs["stale_sweeper.json"] = sweep.workflow_id

        params = AuditParams(projects=["Q3 Reliability"], recheck_after="1s")
        audit = await pm.trigger(client, AuditRequested(data=params))
        await waiting_at(pm, audit.workflow_id, "await-decision#1")
        await approve(client, audit.workflow_id, item="F1")
        await audit.result()
        runs["audit.json"] = audit.workflow_id
        execution = (await audit.describe()).run_id
        runs["audit_project.json"] = f"{audit.workflow_id}:{execution}:analyse:Q3 Reliability"

        memory = await client.start(consolidate_memory, ConsolidateInput())
        await memory.result()
        runs["memory_consolidate.json"] = memory.workflow_id

        tick = await client.start(pm_tick, PmTick(agent="stale-sweeper"))
        out = await tick.result()
        runs["pm_tick.json"] = tick.workflow_id
        for event_id in out.events:  # the sweep it started: not recorded, just ended
            await client.get(f"rensei/pm.stale-sweeper.run:{event_id}").cancel("recorded")
    return runs


Recording = Callable[[Pm, LocalLinear], Awaitable[dict[str, str]]]


async def record_with_pm(here: Path, recording: Recording) -> None:
    """Run `recording` with the PM harness and the local Linear on a stack of its own, and
    write the histories of the runs it names into `here`."""
    async with recording_stack() as (client, pool):
        pm = Pm(client, pool, f"record-{uuid.uuid4()}")
        async with LocalLinear(keys={TEST_KEY: TEST_ORG}) as linear:
            runs = await recording(pm, linear)
        await write_histories(client, here, runs)


if __name__ == "__main__":
    asyncio.run(record_with_pm(HERE, record))

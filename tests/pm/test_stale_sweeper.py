"""The stale-issue sweeper end to end: real local Linear, local agent, Temporal, PostgreSQL.

The seed's open issues untouched for 5+ days: ENG-3 (12 days, backlog, no owner) and ENG-5
(28 days, backlog, no owner), which the agent proposes to close, and ENG-6 (6 days, Ada's),
which it proposes to ping."""

from __future__ import annotations

from typing import Any

from temporalio.testing import WorkflowEnvironment

from activities.linear.local_server import LocalLinear
from adapters.temporal import replay
from workflows import registry
from workflows.pm.stale_sweeper import StaleSweepParams, StaleSweepRequested

from .conftest import Pm, approve, waiting_at
from .test_backlog_triage import comments_on, issues, state_type, untouched

SWEEP = StaleSweepRequested(data=StaleSweepParams(stale_days=5))


def sweep_issue(linear: LocalLinear) -> dict[str, Any]:
    found: list[dict[str, Any]] = [
        i for i in linear.state()["issues"] if i["title"].startswith("Stale-issue sweep")
    ]
    assert len(found) == 1, "one review issue per sweep"
    return found[0]


async def test_an_approved_sweep_closes_and_pings_once(pm: Pm, local_linear: LocalLinear) -> None:
    async with pm.running(local_linear) as client:
        handle = await pm.trigger(client, SWEEP)
        await waiting_at(pm, handle.workflow_id, "await-approval#1")
        review = sweep_issue(local_linear)
        assert "| close |" in review["description"] and "| ping |" in review["description"]
        await approve(client, handle.workflow_id)
        out = await handle.result()
        history = await client.temporal.get_workflow_handle(handle.workflow_id).fetch_history()
        assert out.status == "approved" and out.stale == 3
        assert sorted(out.closed) == ["ENG-3", "ENG-5"] and out.pinged == ["ENG-6"]
        now = issues(local_linear)
        for closed in ("ENG-3", "ENG-5"):
            assert state_type(local_linear, now[closed]) == "canceled"
            (why,) = comments_on(local_linear, now[closed]["id"])
            assert why.startswith("Closed by the stale-issue sweeper: no owner")
        assert state_type(local_linear, now["ENG-6"]) == "unstarted", "a ping does not close"
        (ping,) = comments_on(local_linear, now["ENG-6"]["id"])
        assert ping.startswith("@Ada Lovelace: this issue has not moved for 5+ days")
        assert state_type(local_linear, sweep_issue(local_linear)) == "completed"

        # The next sweep does not ping ENG-6 again: it was dealt with in this one.
        again = await (await pm.trigger(client, SWEEP)).result()
    assert again.status == "nothing-stale"
    assert len(comments_on(local_linear, issues(local_linear)["ENG-6"]["id"])) == 1
    await replay(registry(), [history])


async def test_a_revised_sweep_applies_the_revision(pm: Pm, local_linear: LocalLinear) -> None:
    before = issues(local_linear)
    async with pm.running(local_linear) as client:
        handle = await pm.trigger(client, SWEEP)
        await waiting_at(pm, handle.workflow_id, "await-approval#1")
        await approve(client, handle.workflow_id, "revise", notes="keep ENG-5; close ENG-6")
        await waiting_at(pm, handle.workflow_id, "await-approval#2")
        (revised,) = comments_on(local_linear, sweep_issue(local_linear)["id"])
        assert "| ENG-5 " not in revised and "the reviewer asked to close it" in revised
        await approve(client, handle.workflow_id)
        out = await handle.result()
    assert sorted(out.closed) == ["ENG-3", "ENG-6"] and out.pinged == [] and out.rounds == 2
    assert issues(local_linear)["ENG-5"] == before["ENG-5"], "kept as the reviewer said"


async def test_a_rejected_sweep_changes_nothing(pm: Pm, local_linear: LocalLinear) -> None:
    before = issues(local_linear)
    async with pm.running(local_linear) as client:
        handle = await pm.trigger(client, SWEEP)
        await waiting_at(pm, handle.workflow_id, "await-approval#1")
        await approve(client, handle.workflow_id, "reject", notes="leave the backlog alone")
        out = await handle.result()
    assert out.status == "rejected" and out.closed == out.pinged == []
    untouched(local_linear, before)
    assert comments_on(local_linear, sweep_issue(local_linear)["id"]) == [
        "Rejected: leave the backlog alone. Nothing was changed."
    ]


async def test_an_unanswered_sweep_expires_after_24_hours(
    skipping_pm: Pm, time_skipping: WorkflowEnvironment, local_linear: LocalLinear
) -> None:
    before = issues(local_linear)
    async with skipping_pm.running(local_linear) as client:
        handle = await skipping_pm.trigger(client, SWEEP)
        await waiting_at(skipping_pm, handle.workflow_id, "await-approval#1")
        await time_skipping.sleep(24 * 3600 + 60)
        out = await handle.result()
    assert out.status == "expired" and out.closed == out.pinged == []
    untouched(local_linear, before)
    assert state_type(local_linear, sweep_issue(local_linear)) == "canceled"


async def test_a_rate_limit_mid_apply_comments_once_per_issue(
    pm: Pm, local_linear: LocalLinear
) -> None:
    async with pm.running(local_linear) as client:
        handle = await pm.trigger(client, SWEEP)
        await waiting_at(pm, handle.workflow_id, "await-approval#1")
        local_linear.slow(times=1, seconds=0.0, operation="CreateComment")
        local_linear.rate_limit(times=1, reset_in_seconds=2.0, operation="CreateComment")
        await approve(client, handle.workflow_id)
        out = await handle.result()
    assert out.status == "approved" and len(out.closed) + len(out.pinged) == 3
    now = issues(local_linear)
    for identifier in ("ENG-3", "ENG-5", "ENG-6"):
        assert len(comments_on(local_linear, now[identifier]["id"])) == 1, identifier

"""Backlog triage end to end: the real local Linear, the shipped local agent in a subprocess,
Temporal (the dev server, or the time-skipping server for the 24 h expiry) and PostgreSQL."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

import durable
from activities.linear.local_server import LocalLinear
from adapters.temporal import replay
from workers.embedded import EmbeddedTemporal
from workflows import registry
from workflows.pm.backlog_triage import BacklogTriageParams, BacklogTriageRequested

from ..linear.conftest import TEST_ORG
from .conftest import Pm, approve, product_worker, waiting_at

# The seeded issues that need triage: open, and missing a label, a priority or an owner.
NEEDS_TRIAGE = {"ENG-3", "ENG-5", "ENG-10"}


def issues(linear: LocalLinear) -> dict[str, dict[str, Any]]:
    return {i["identifier"]: i for i in linear.state()["issues"]}


def view(linear: LocalLinear, identifier: str) -> tuple[int, set[str], str | None]:
    """(priority, label names, assignee name) of an issue as Linear has it."""
    state = linear.state()
    issue = issues(linear)[identifier]
    labels = {lb["name"] for lb in state["issueLabels"] if lb["id"] in issue["labelIds"]}
    people = {u["id"]: u["name"] for u in state["users"]}
    return issue["priority"], labels, people.get(issue["assigneeId"] or "")


def review_issues(linear: LocalLinear) -> list[dict[str, Any]]:
    return [i for i in linear.state()["issues"] if i["title"].startswith("Triage proposal")]


def comments_on(linear: LocalLinear, issue_id: str) -> list[str]:
    return [c["body"] for c in linear.state()["comments"] if c["issueId"] == issue_id]


def state_type(linear: LocalLinear, issue: dict[str, Any]) -> str:
    states: dict[str, str] = {s["id"]: s["type"] for s in linear.state()["workflowStates"]}
    return states[issue["stateId"]]


def untouched(linear: LocalLinear, before: dict[str, dict[str, Any]]) -> None:
    after = issues(linear)
    for identifier, issue in before.items():
        assert after[identifier] == issue, f"{identifier} was changed"


async def test_approved_triage_is_applied_to_linear(pm: Pm, local_linear: LocalLinear) -> None:
    before = issues(local_linear)
    async with pm.running(local_linear) as client:
        handle = await pm.trigger(client, BacklogTriageRequested(data=BacklogTriageParams()))
        await waiting_at(pm, handle.workflow_id, "await-approval#1")
        (review,) = review_issues(local_linear)
        assert "durable approve " + handle.workflow_id in review["description"]
        for identifier in NEEDS_TRIAGE:
            assert identifier in review["description"], "each issue is in the proposal"
        status = await handle.describe()
        assert status.waiting_on and "rensei/approval.resolved" in status.waiting_on
        untouched(local_linear, before)  # nothing changes before the decision
        await approve(client, handle.workflow_id, by="ada")
        out = await handle.result()

        assert out.status == "approved" and out.rounds == 1 and out.team == "ENG"
        assert sorted(out.applied) == sorted(NEEDS_TRIAGE) and out.considered == 3
        # The local agent's rules: the crash is urgent with a Bug label; owners are spread over
        # the team's people (never the app user); labels an issue had are kept.
        assert view(local_linear, "ENG-10") == (1, {"Bug"}, "Ada Lovelace")
        _, labels, owner = view(local_linear, "ENG-3")
        assert labels >= {"Feature"} and owner in ("Ada Lovelace", "Grace Hopper")
        for identifier in set(before) - NEEDS_TRIAGE:
            assert issues(local_linear)[identifier] == before[identifier]
        (review,) = review_issues(local_linear)
        assert state_type(local_linear, review) == "completed"
        (outcome,) = comments_on(local_linear, review["id"])
        assert outcome.startswith("Approved by ada. Applied to 3 issue(s)")

        # "Since the last run" moved: the next run finds nothing left to triage.
        again = await pm.trigger(client, BacklogTriageRequested(data=BacklogTriageParams()))
        second = await again.result()
    assert second.status == "nothing-to-triage" and second.considered == 0
    assert second.since is not None and out.since is not None and second.since > out.since
    assert len(review_issues(local_linear)) == 1, "no second proposal"


async def test_a_rejected_proposal_changes_nothing(pm: Pm, local_linear: LocalLinear) -> None:
    before = issues(local_linear)
    async with pm.running(local_linear) as client:
        handle = await pm.trigger(client, BacklogTriageRequested(data=BacklogTriageParams()))
        await waiting_at(pm, handle.workflow_id, "await-approval#1")
        await approve(client, handle.workflow_id, "reject", notes="we triage by hand this sprint")
        out = await handle.result()
    assert out.status == "rejected" and out.applied == []
    untouched(local_linear, before)
    (review,) = review_issues(local_linear)
    assert state_type(local_linear, review) == "canceled"
    assert comments_on(local_linear, review["id"]) == [
        "Rejected: we triage by hand this sprint. Nothing was changed."
    ]


async def test_a_revision_is_proposed_again_and_applied_as_revised(
    pm: Pm, local_linear: LocalLinear
) -> None:
    async with pm.running(local_linear) as client:
        handle = await pm.trigger(client, BacklogTriageRequested(data=BacklogTriageParams()))
        await waiting_at(pm, handle.workflow_id, "await-approval#1")
        await approve(
            client,
            handle.workflow_id,
            "revise",
            notes="ENG-10 priority 2; ENG-3 owner Grace Hopper; ENG-5 labels Improvement",
        )
        await waiting_at(pm, handle.workflow_id, "await-approval#2")
        (review,) = review_issues(local_linear)
        (revised,) = comments_on(local_linear, review["id"])
        assert revised.startswith("Revised proposal (round 2)")
        assert "ENG-10" in revised and "| high |" in revised
        await approve(client, handle.workflow_id)
        out = await handle.result()
        history = await client.temporal.get_workflow_handle(handle.workflow_id).fetch_history()
    assert out.status == "approved" and out.rounds == 2 and len(out.sessions) == 2
    assert view(local_linear, "ENG-10")[0] == 2
    assert view(local_linear, "ENG-3")[2] == "Grace Hopper"
    assert "Improvement" in view(local_linear, "ENG-5")[1]
    await replay(registry(), [history])  # today's code takes the same path


async def test_revising_past_the_bound_ends_the_review_unchanged(
    pm: Pm, local_linear: LocalLinear
) -> None:
    before = issues(local_linear)
    async with pm.running(local_linear) as client:
        handle = await pm.trigger(
            client, BacklogTriageRequested(data=BacklogTriageParams(max_revisions=1))
        )
        for round in (1, 2):
            await waiting_at(pm, handle.workflow_id, f"await-approval#{round}")
            await approve(
                client, handle.workflow_id, "revise", notes=f"ENG-10 priority {round + 1}"
            )
        out = await handle.result()
    assert out.status == "revisions-exhausted" and out.rounds == 2
    untouched(local_linear, before)
    (review,) = review_issues(local_linear)
    assert comments_on(local_linear, review["id"])[-1].startswith("Too many revisions")


async def test_silence_for_24_hours_expires_the_proposal(
    skipping_pm: Pm, time_skipping: WorkflowEnvironment, local_linear: LocalLinear
) -> None:
    pm = skipping_pm
    before = issues(local_linear)
    # The time-skipping server's clock runs ahead of the seed's (other tests skip days too):
    # look back far enough to see the whole seed either way.
    params = BacklogTriageParams(lookback="400d")
    async with pm.running(local_linear) as client:
        handle = await pm.trigger(client, BacklogTriageRequested(data=params))
        await waiting_at(pm, handle.workflow_id, "await-approval#1")
        await time_skipping.sleep(24 * 3600 + 60)
        out = await handle.result()
        assert out.status == "expired" and out.applied == []
        untouched(local_linear, before)
        (review,) = review_issues(local_linear)
        assert state_type(local_linear, review) == "canceled"
        assert (
            "the proposal expired and nothing was changed"
            in comments_on(local_linear, review["id"])[-1]
        )
        # The cursor did not move: the next run proposes the same issues again.
        assert (
            await pm.pool.fetchval("SELECT count(*) FROM pm_cursors WHERE org_id = $1", TEST_ORG)
            == 0
        )
        again = await pm.trigger(client, BacklogTriageRequested(data=params))
        await waiting_at(pm, again.workflow_id, "await-approval#1")
        await approve(client, again.workflow_id, "reject")
        second = await again.result()
    assert second.considered == 3 and second.status == "rejected"


async def test_cancelling_while_it_waits_changes_nothing(pm: Pm, local_linear: LocalLinear) -> None:
    before = issues(local_linear)
    async with pm.running(local_linear) as client:
        handle = await pm.trigger(client, BacklogTriageRequested(data=BacklogTriageParams()))
        await waiting_at(pm, handle.workflow_id, "await-approval#1")
        await handle.cancel("not this week")
        with pytest.raises(durable.RunCancelled):
            await handle.result()
    untouched(local_linear, before)


async def test_a_rate_limit_mid_apply_waits_and_applies_each_issue_once(
    pm: Pm, local_linear: LocalLinear
) -> None:
    async with pm.running(local_linear) as client:
        handle = await pm.trigger(client, BacklogTriageRequested(data=BacklogTriageParams()))
        await waiting_at(pm, handle.workflow_id, "await-approval#1")
        updates_before = local_linear.calls("UpdateIssue")
        # The second issue update is answered RATELIMITED (HTTP 400, Linear's form), reset in
        # 2 s: the first issue was applied, the second waits for the reset.
        local_linear.slow(times=1, seconds=0.0, operation="UpdateIssue")
        local_linear.rate_limit(
            times=1, form="ratelimited400", reset_in_seconds=2.0, operation="UpdateIssue"
        )
        await approve(client, handle.workflow_id)
        out = await handle.result()
    assert out.status == "approved" and sorted(out.applied) == sorted(NEEDS_TRIAGE)
    # 3 applies + the review issue's close, + 1 refused by the rate limit: nothing twice.
    assert local_linear.calls("UpdateIssue") - updates_before == 5
    assert view(local_linear, "ENG-10") == (1, {"Bug"}, "Ada Lovelace")


async def test_the_cron_tick_starts_a_triage_run_per_org(pm: Pm, local_linear: LocalLinear) -> None:
    from workflows.pm.registered import PmTick, pm_tick

    async with pm.running(local_linear) as client:
        tick = await client.start(pm_tick, PmTick(agent="backlog-triage"))
        out = await tick.result()
        await replay(
            registry(),
            [await client.temporal.get_workflow_handle(tick.workflow_id).fetch_history()],
        )
        assert out.orgs == [TEST_ORG] and out.event == "rensei/pm.backlog-triage.requested"
        (event_id,) = out.events
        run = client.get(f"rensei/pm.backlog-triage.run:{event_id}")
        await waiting_at(pm, run.workflow_id, "await-approval#1")
        await run.cancel("test over")
        bad = await client.start(pm_tick, PmTick(agent="roadmap"))
        with pytest.raises(durable.WorkflowFailed, match=r"no PM agent 'roadmap'.*backlog-triage"):
            await bad.result()


async def test_a_worker_killed_mid_apply_leaves_each_change_made_once(
    pm: Pm, dev_server: EmbeddedTemporal, database_url: str, local_linear: LocalLinear
) -> None:
    client = pm.durable_client(pm.ingress())
    async with product_worker(dev_server, database_url, pm.task_queue, local_linear) as first:
        handle = await pm.trigger(client, BacklogTriageRequested(data=BacklogTriageParams()))
        await waiting_at(pm, handle.workflow_id, "await-approval#1")
        # The first update is made in Linear, but its answer is held back: the worker is
        # killed before the step can report it.
        local_linear.slow(times=1, seconds=30.0, operation="UpdateIssue", after=True)
        updates = local_linear.calls("UpdateIssue")
        await approve(client, handle.workflow_id)
        for _ in range(300):
            if local_linear.calls("UpdateIssue") > updates:
                break
            await asyncio.sleep(0.1)
        first.send_signal(signal.SIGKILL)
        await first.wait()
    async with product_worker(dev_server, database_url, pm.task_queue, local_linear):
        out = await asyncio.wait_for(handle.result(), 120)
    assert out.status == "approved" and sorted(out.applied) == sorted(NEEDS_TRIAGE)
    assert len(review_issues(local_linear)) == 1, "the proposal was posted once"
    (review,) = review_issues(local_linear)
    assert len(comments_on(local_linear, review["id"])) == 1, "one outcome comment"
    assert view(local_linear, "ENG-10") == (1, {"Bug"}, "Ada Lovelace")

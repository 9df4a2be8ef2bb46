"""The product's own review issues are not backlog, end to end (real local Linear, the local
agent, Temporal, PostgreSQL): a triage run started while another waits for approval does not
propose, nor change, the first one's review issue; a sweep does not propose closing a review
issue left open (an audit's stays open) however long it has not moved."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from activities.linear.client import LinearClient, LinearCredential
from activities.linear.local_server import LocalLinear
from activities.linear.marks import REVIEW_LABEL, REVIEW_NOTE, ensure_team_labels
from workflows.pm.backlog_triage import BacklogTriageParams, BacklogTriageRequested
from workflows.pm.stale_sweeper import StaleSweepParams, StaleSweepRequested

from ..linear.conftest import TEST_KEY, TEST_ORG
from .conftest import Pm, approve, waiting_at
from .test_backlog_triage import NEEDS_TRIAGE, issues, review_issues, state_type, view


def review_of(linear: LocalLinear, run_id: str) -> dict[str, Any]:
    """The review issue a run posted (its description names the run)."""
    (found,) = [
        i for i in review_issues(linear) if f"durable approve {run_id}`" in i["description"]
    ]
    return found


async def test_overlapping_triage_runs_leave_each_others_review_issue_alone(
    pm: Pm, local_linear: LocalLinear
) -> None:
    before = issues(local_linear)
    async with pm.running(local_linear) as client:
        first = await pm.trigger(client, BacklogTriageRequested(data=BacklogTriageParams()))
        await waiting_at(pm, first.workflow_id, "await-approval#1")
        a_review = review_of(local_linear, first.workflow_id)
        assert view(local_linear, a_review["identifier"]) == (0, {REVIEW_LABEL}, None)
        assert a_review["description"].endswith(REVIEW_NOTE)

        # A second run while the first waits: the cursor has not moved, so it looks at the
        # same window, in which the first run's review issue is now the newest change.
        second = await pm.trigger(client, BacklogTriageRequested(data=BacklogTriageParams()))
        await waiting_at(pm, second.workflow_id, "await-approval#1")
        b_review = review_of(local_linear, second.workflow_id)
        assert b_review["id"] != a_review["id"]
        proposed = b_review["description"]
        assert f"| {a_review['identifier']} " not in proposed, "A's review issue is no backlog"
        assert "Triage proposal" not in proposed
        for identifier in NEEDS_TRIAGE:
            assert f"| {identifier} " in proposed

        await approve(client, first.workflow_id, by="ada")
        a_out = await first.result()
        await approve(client, second.workflow_id, by="grace")
        b_out = await second.result()

    assert a_out.status == b_out.status == "approved"
    assert a_out.considered == b_out.considered == len(NEEDS_TRIAGE)
    assert sorted(a_out.applied) == sorted(b_out.applied) == sorted(NEEDS_TRIAGE)
    # Each review issue kept what its own run gave it: the mark, no priority, no owner; only
    # its own run closed it.
    for review, run in ((a_review, first.workflow_id), (b_review, second.workflow_id)):
        now = issues(local_linear)[review["identifier"]]
        assert view(local_linear, review["identifier"]) == (0, {REVIEW_LABEL}, None)
        assert now["description"] == review["description"]
        assert state_type(local_linear, now) == "completed", run
    # Only the proposed issues changed; the rest of the backlog is as it was.
    after = issues(local_linear)
    for identifier in set(before) - NEEDS_TRIAGE:
        assert after[identifier] == before[identifier], identifier
    assert view(local_linear, "ENG-10") == (1, {"Bug"}, "Ada Lovelace")


async def test_a_sweep_does_not_propose_an_open_review_issue_that_went_stale(
    pm: Pm, local_linear: LocalLinear
) -> None:
    # An audit's review issue, open and untouched for 20 days (made as the product makes it).
    client_ = LinearClient(TEST_ORG, LinearCredential(TEST_KEY), local_linear.url)
    team = local_linear.state()["teams"][0]["id"]
    try:
        (label,) = await ensure_team_labels(client_, TEST_ORG, team, [REVIEW_LABEL])
        old = await client_.create_issue(
            {
                "id": str(uuid4()),
                "teamId": team,
                "title": "Audit findings: 2 finding(s) over 1 project(s)",
                "description": f"| F1 | ... |\n\n{REVIEW_NOTE}",
                "labelIds": [label["id"]],
                "createdAt": (datetime.now(UTC) - timedelta(days=20)).isoformat(),
            }
        )
    finally:
        await client_.aclose()
    assert issues(local_linear)[old["identifier"]]["updatedAt"] == old["updatedAt"]

    async with pm.running(local_linear) as client:
        handle = await pm.trigger(client, StaleSweepRequested(data=StaleSweepParams(stale_days=5)))
        await waiting_at(pm, handle.workflow_id, "await-approval#1")
        (sweep,) = [i for i in issues(local_linear).values() if i["title"].startswith("Stale")]
        assert f"| {old['identifier']} " not in sweep["description"]
        assert view(local_linear, sweep["identifier"])[1] == {REVIEW_LABEL}
        await approve(client, handle.workflow_id)
        out = await handle.result()
    assert out.stale == 3 and old["identifier"] not in out.closed + out.pinged
    assert state_type(local_linear, issues(local_linear)[old["identifier"]]) != "canceled"

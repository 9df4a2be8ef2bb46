"""The multi-stage audit end to end: real local Linear, the local agent in subprocesses,
Temporal (the dev server; the time-skipping server for the 7-day re-check; a dev server that
suggests continue-as-new early), PostgreSQL.

The tests give the seeded workspace four more projects, as a Linear user would, so the audit
covers five: "Q3 Reliability" (ENG-1, an urgent bug in progress: one finding), "Billing"
(ENG-10, an urgent bug nobody owns: two findings), "Onboarding", "Notifications" (nothing to
report) and "Mobile app", whose analysis fails."""

from __future__ import annotations

import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.agents import (
    AgentRuntime,
    CommandRuntime,
    RuntimeIO,
    RuntimeRequest,
    local_agent_command,
)
from activities.linear.local_server import LocalLinear
from activities.linear.marks import REVIEW_LABEL
from activities.linear.steps import IssueRef
from adapters.temporal import replay
from workers.embedded import EmbeddedTemporal, free_port
from workflows import registry
from workflows.audit import AuditParams, AuditRequested
from workflows.audit.models import AuditState, Finding

from ..linear.conftest import TEST_ORG
from .conftest import Pm, approve, waiting_at
from .test_backlog_triage import comments_on, view

PROJECTS = {  # name -> issues moved into it
    "Billing": ["ENG-10"],
    "Onboarding": ["ENG-3", "ENG-5"],
    "Notifications": ["ENG-6"],
    "Mobile app": ["ENG-9"],
}


class FailsFor(AgentRuntime):
    """The shipped local agent, except for one project: there the agent process exits with an
    error, as a broken model endpoint or a crashing agent would."""

    def __init__(self, project: str) -> None:
        self.project = project
        self.agent = CommandRuntime(local_agent_command(), kill_grace=1.0)
        self.broken = CommandRuntime(
            [sys.executable, "-c", "import sys; sys.stderr.write('model overloaded'); sys.exit(3)"]
        )

    @property
    def description(self) -> str:
        return f"the local agent, failing for {self.project}"

    async def run(self, request: RuntimeRequest, io: RuntimeIO) -> Any:
        project = (request.context.get("project") or {}).get("name")
        runtime = self.broken if project == self.project else self.agent
        return await runtime.run(request, io)


def add_projects(linear: LocalLinear) -> None:
    ws = linear.workspace(TEST_ORG)
    (seed,) = ws.all("Project")
    for n, (name, members) in enumerate(PROJECTS.items(), start=1):
        project_id = f"0c6f3d1e-2b4a-4c55-9e77-0a1b2c3d4e{n:02d}"
        ws.add("Project", dict(seed, id=project_id, name=name, slugId=f"0c6f3d1e2b{n:02d}"))
        for identifier in members:
            ws.issue(identifier)["projectId"] = project_id


def audit_issues(linear: LocalLinear) -> list[dict[str, Any]]:
    return [i for i in linear.state()["issues"] if i["title"].startswith("[Audit]")]


def review_issue(linear: LocalLinear) -> dict[str, Any]:
    (found,) = [i for i in linear.state()["issues"] if i["title"].startswith("Audit findings")]
    return found  # type: ignore[no-any-return]


async def test_five_projects_in_parallel_reviewed_per_finding(
    pm: Pm, local_linear: LocalLinear
) -> None:
    add_projects(local_linear)
    pm.runtimes["local"] = FailsFor("Mobile app")
    params = AuditParams(max_parallel=2, recheck_after="1s")
    async with pm.running(local_linear) as client:
        handle = await pm.trigger(client, AuditRequested(data=params))
        await waiting_at(pm, handle.workflow_id, "await-decision#1", timeout=120)
        posted = review_issue(local_linear)
        assert posted["title"] == "Audit findings: 3 finding(s) over 5 project(s)"
        assert "Mobile app: analysis failed" in posted["description"]
        assert "model overloaded" in posted["description"], "with the agent's own words"
        assert view(local_linear, posted["identifier"])[1] == {REVIEW_LABEL}, "not backlog"
        await approve(client, handle.workflow_id, item="F1")
        await approve(
            client, handle.workflow_id, "reject", item="F2", notes="known, tracked elsewhere"
        )
        await approve(client, handle.workflow_id, "revise", item="F3", notes="severity low")
        await waiting_at(pm, handle.workflow_id, "await-decision#4")
        revised = comments_on(local_linear, posted["id"])
        assert revised[-1].startswith("Revised F3 (low)")
        await approve(client, handle.workflow_id, item="F3")
        out = await handle.result()
        execution = (await client.get(handle.workflow_id).describe()).run_id
        child_handles = [
            client.temporal.get_workflow_handle(f"{handle.workflow_id}:{execution}:analyse:{name}")
            for name in ["Q3 Reliability", *PROJECTS]
        ]
        children = [await child.describe() for child in child_handles]
        histories = [await client.temporal.get_workflow_handle(handle.workflow_id).fetch_history()]
        histories += [await child.fetch_history() for child in child_handles]

    by_project = {p.project: p for p in out.projects}
    assert sorted(by_project) == sorted(["Q3 Reliability", *PROJECTS])
    assert by_project["Mobile app"].status == "failed", "reported, and the audit went on"
    assert "model overloaded" in by_project["Mobile app"].error
    assert [f.status for f in out.findings] == ["approved", "rejected", "approved"]
    assert out.findings[2].severity == "low" and out.findings[2].revisions == 1
    # Only approved findings are filed, each once; the revised one with its new severity.
    filed = audit_issues(local_linear)
    assert sorted(i["title"] for i in filed) == sorted(
        f"[Audit] {f.title}" for f in out.findings if f.status == "approved"
    )
    assert sorted(i["priority"] for i in filed) == [2, 4]
    # Filed findings are work to triage like any other: no review mark.
    assert all(REVIEW_LABEL not in view(local_linear, i["identifier"])[1] for i in filed)
    assert [p.issue.identifier for p in out.published] == [
        i["identifier"] for i in sorted(filed, key=lambda i: i["number"])
    ]
    # The follow-up: both still open after the re-check.
    assert sorted(out.unresolved) == sorted(i["identifier"] for i in filed) and out.resolved == []
    for issue in filed:
        assert comments_on(local_linear, issue["id"]) == [
            "Audit follow-up: still open 1s after the audit."
        ]
    # At most two analyses ran at once, and they did overlap.
    spans: list[tuple[datetime, datetime]] = []
    for child in children:
        assert child.start_time is not None and child.close_time is not None
        spans.append((child.start_time, child.close_time))
    overlap = max(len([1 for s, e in spans if s <= start < e]) for start, _ in spans)
    assert overlap == 2
    await replay(registry(), histories)  # the audit and its five children


async def test_the_7_day_recheck_reports_what_was_resolved(
    skipping_pm: Pm, time_skipping: WorkflowEnvironment, local_linear: LocalLinear
) -> None:
    params = AuditParams(projects=["Q3 Reliability"])
    async with skipping_pm.running(local_linear) as client:
        handle = await skipping_pm.trigger(client, AuditRequested(data=params))
        await waiting_at(skipping_pm, handle.workflow_id, "await-decision#1", timeout=120)
        # How many findings the agent made depends on the (skipped) clock: ask the review.
        findings = int(review_issue(local_linear)["title"].split(": ")[1].split()[0])
        assert findings >= 1
        await approve(client, handle.workflow_id)  # no --item: every pending finding
        for _ in range(600):
            if len(audit_issues(local_linear)) == findings:
                break
            await time_skipping.sleep(0.1)
        filed = sorted(audit_issues(local_linear), key=lambda i: i["number"])
        assert len(filed) == findings, "every approved finding filed, once"
        ws = local_linear.workspace(TEST_ORG)
        done = next(s for s in ws.all("WorkflowState") if s["type"] == "completed")
        fixed = filed[0]["identifier"]
        ws.issue(fixed)["stateId"] = done["id"]  # someone fixed it meanwhile
        await time_skipping.sleep(7 * 24 * 3600 + 3600)
        out = await handle.result()
    still_open = [i["identifier"] for i in filed[1:]]
    assert out.resolved == [fixed] and out.unresolved == still_open
    assert comments_on(local_linear, review_issue(local_linear)["id"])[-1] == (
        f"Follow-up after 7d: resolved {fixed}; still open {', '.join(still_open) or 'none'}."
    )


@pytest.fixture
async def eager_server() -> Any:
    """A dev server that suggests continue-as-new after 30 history events."""
    with tempfile.TemporaryDirectory(prefix="durable-temporal-can-") as tmp:
        server = EmbeddedTemporal(
            port=free_port(),
            log_file=Path(tmp) / "temporal.log",
            dynamic_config={"limit.historyCount.suggestContinueAsNew": 30},
        )
        await server.start()
        try:
            yield server
        finally:
            await server.stop()


async def test_a_long_review_continues_as_new_without_losing_an_approval(
    eager_server: EmbeddedTemporal, pool: Any, task_queue: str, local_linear: LocalLinear
) -> None:
    add_projects(local_linear)
    client: Client = await eager_server.connect()
    pm = Pm(client, pool, task_queue)
    params = AuditParams(projects=["Q3 Reliability", "Billing"], recheck_after="1s")
    async with pm.running(local_linear) as durable_client:
        handle = await pm.trigger(durable_client, AuditRequested(data=params))
        await waiting_at(pm, handle.workflow_id, "await-decision#1", timeout=120)
        first_execution = (await handle.describe()).run_id
        # Three decisions at once: the run continues as new after the first, while the
        # others arrive; each is still taken.
        await approve(durable_client, handle.workflow_id, item="F1")
        await approve(durable_client, handle.workflow_id, item="F2")
        await approve(durable_client, handle.workflow_id, "reject", item="F3")
        started = datetime.now()
        out = await handle.result()
        assert (datetime.now() - started).total_seconds() < 60
        assert (await handle.describe()).run_id != first_execution
    assert out.executions >= 2, "the review went on in a new execution"
    assert [f.status for f in out.findings] == ["approved", "approved", "rejected"]
    assert len(audit_issues(local_linear)) == 2


async def test_an_audit_started_with_state_already_approved_still_asks_for_review(
    pm: Pm, local_linear: LocalLinear
) -> None:
    """The state an audit carries across continue-as-new is not taken from whoever starts
    one: findings marked approved, with an approver named, would skip the review."""
    add_projects(local_linear)
    forged = AuditState(
        team_id="forged-team",
        projects=[],
        findings=[
            Finding(
                id="F1",
                project="Q3 Reliability",
                title="FORGED: rotate every credential",
                status="approved",
                decided_by="key:release-manager (via api)",
            )
        ],
        review_issue=IssueRef(id="forged", identifier="ENG-1"),
        review_deadline=datetime(2000, 1, 1, tzinfo=UTC),
    )
    params = AuditParams(projects=["Billing"], recheck_after="1s", state=forged)
    async with pm.running(local_linear) as client:
        handle = await pm.trigger(client, AuditRequested(data=params))
        await waiting_at(pm, handle.workflow_id, "await-decision#1", timeout=120)
        assert review_issue(local_linear)["title"].startswith("Audit findings: 2 finding(s)")
        await handle.cancel("test over")
    assert not [i for i in audit_issues(local_linear) if "FORGED" in i["title"]]

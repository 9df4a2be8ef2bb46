"""Weekly status review, a PM agent: every Monday morning (or on
`rensei/pm.status-review.requested`) gather what moved in each project since the last review,
ask an agent to write the status report, and publish each moved project's part as that
project's update in Linear (a project update: Linear's own place for status). No approval.

"Since the last review" is a cursor in Postgres that moves to this run's start once the report
is published; the first run looks back `lookback` (7 days). Updates carry ids the workflow
makes, so a retried or resumed publish posts each update once.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from pydantic import BaseModel, Field

import durable
from activities.agents import SessionRequest
from activities.linear.steps import (
    CreateProjectUpdate,
    IssueSummary,
    ListIssues,
    ListProjects,
    ProjectUpdateRef,
    create_project_update,
    list_issues,
    list_projects,
)

from .common import consult_agent, finished_run, since_last_run

AGENT_ID = "pm-status-review"
NO_PROJECT = "Not in a project"


class StatusReviewParams(BaseModel):
    lookback: durable.DurationText = Field("7d", description="How far back the first review looks")
    since: datetime | None = Field(None, description="Report changes since this time instead")
    runtime: str = Field("local", description="The agent runtime the session runs on")
    agent_timeout: durable.DurationText = Field("30m", description="How long the agent may take")


class StatusReviewRequested(durable.Event[StatusReviewParams]):
    """Run the weekly status review now (the PM agent's manual trigger)."""

    type: ClassVar[str] = "rensei/pm.status-review.requested"


class StatusReviewOutput(BaseModel):
    status: str  # published, nothing-moved, agent-failed
    since: datetime | None = None
    moved: int = 0  # issues that moved
    report: str = ""  # the whole report (markdown)
    updates: list[ProjectUpdateRef] = []  # one per moved project
    session: str = ""
    error: str = ""


def _moved(issue: IssueSummary) -> dict[str, object]:
    return issue.model_dump(include={"identifier", "title", "state", "state_type", "assignee"})


def sections(report: str) -> dict[str, str]:
    """The report's `## <project>` sections by project name."""
    found: dict[str, str] = {}
    for part in report.split("\n## ")[1:]:
        name, _, _ = part.partition("\n")
        found[name.strip()] = "## " + part.strip() + "\n"
    return found


@durable.workflow(
    "rensei/pm.status-review.run",
    trigger=StatusReviewRequested,
    description="PM agent: write the weekly status report and publish it per project",
)
async def status_review(
    ctx: durable.WorkflowContext, input: StatusReviewRequested
) -> StatusReviewOutput:
    params = input.data
    since, now = await since_last_run(ctx, AGENT_ID, "", first_lookback=params.lookback)
    since = params.since or since
    projects = await ctx.step.run("projects", list_projects, ListProjects())
    changed = await ctx.step.run("fetch-issues", list_issues, ListIssues(updated_since=since))
    out = StatusReviewOutput(status="nothing-moved", since=since, moved=len(changed.issues))
    if not changed.issues:
        await finished_run(ctx, AGENT_ID, "", now)
        return out
    names = {p.id: p.name for p in projects.projects}
    grouped: dict[str, list[IssueSummary]] = {}
    for issue in changed.issues:
        grouped.setdefault(issue.project_id if issue.project_id in names else "", []).append(issue)
    context_projects = [
        {"name": names.get(pid, NO_PROJECT), "moved": [_moved(i) for i in moved]}
        for pid, moved in sorted(grouped.items(), key=lambda kv: names.get(kv[0], "~"))
    ]
    answer = await consult_agent(
        ctx,
        "write-report",
        SessionRequest(
            prompt=f"Write the status review of what moved since {since:%Y-%m-%d}, per project.",
            context={
                "task": "status-report",
                "period": f"{since:%Y-%m-%d} to {now:%Y-%m-%d}",
                "projects": context_projects,
            },
            runtime=params.runtime,
            timeout=params.agent_timeout,
            agent_id=AGENT_ID,
        ),
    )
    out.session = answer.session_id
    result = answer.result if isinstance(answer.result, dict) else {}
    report = result.get("report")
    if not answer.ok or not isinstance(report, str) or not report.strip():
        out.status = "agent-failed"
        out.error = answer.error or "the agent's answer has no report"
        return out
    out.report = report
    by_name = sections(report)
    for pid in sorted(p for p in grouped if p):
        name = names[pid]
        body = by_name.get(name) or report
        out.updates.append(
            await ctx.step.run(
                f"publish:{name}",
                create_project_update,
                CreateProjectUpdate(
                    id=ctx.uuid(),
                    project_id=pid,
                    body=f"{body}\n_Weekly status review by the PM agent (run "
                    f"`{ctx.workflow_id}`)._",
                ),
            )
        )
    out.status = "published"
    await finished_run(ctx, AGENT_ID, "", now)
    return out

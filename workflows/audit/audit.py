"""A multi-stage audit of the projects in scope.

1. Inventory: the projects in scope (Linear).
2. Analysis: one child run per project (`rensei/audit.project.run`, `ctx.step.invoke`), at most
   `max_parallel` at once; each dispatches an agent session over the project's issues. A
   project whose analysis fails is reported in the output and the review issue; the audit goes
   on with the others.
3. Review: the findings are posted as one Linear issue ("Audit findings: ..."), and a reviewer
   decides each: `durable approve RUN --item F2 [--decision reject|revise --notes ...]`, or
   without `--item` for every finding still pending. A revision asks the agent again with the
   notes (at most `max_revisions` times per finding). Findings still pending when the review
   time (`approval_timeout`, in all) is up expire.
4. Publish: each approved finding becomes a Linear issue, with an id derived from the audit and
   the finding, so a retry or a continue-as-new never files it twice.
5. Follow-up: sleep `recheck_after` (7 days), check which published issues were resolved, and
   post the follow-up (a comment on each one still open, and a summary on the review issue).

A long review continues as new when Temporal suggests it (the history nears its suggested
size), carrying the findings and decisions so far; an approval sent around the switch is kept
by the event store and taken by the next execution's wait.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta

import durable
from activities.agents import SessionRequest
from activities.linear.steps import (
    CreateComment,
    CreateIssue,
    GetIssues,
    IssueSummary,
    ListIssues,
    ListProjects,
    Project,
    TeamQuery,
    create_comment,
    create_issue,
    get_issues,
    get_team,
    list_issues,
    list_projects,
)
from workflows.events import ApprovalResolved
from workflows.pm.common import consult_agent

from .models import (
    AuditOutput,
    AuditParams,
    AuditRequested,
    AuditState,
    Finding,
    ProjectAudit,
    ProjectAuditInput,
    Published,
)

AGENT_ID = "audit"
PRIORITY = {"high": 2, "medium": 3, "low": 4}
CLOSED = ("completed", "canceled")


def _issue_view(issue: IssueSummary, now: datetime) -> dict[str, object]:
    view = issue.model_dump(
        include={
            "id",
            "identifier",
            "title",
            "labels",
            "priority",
            "assignee",
            "state",
            "state_type",
        }
    )
    updated = datetime.fromisoformat(issue.updated_at.replace("Z", "+00:00"))
    view["days_idle"] = int((now - updated).total_seconds() // 86400)
    return view


@durable.workflow(
    "rensei/audit.project.run", description="Audit one project: an agent analyses its issues"
)
async def audit_project(ctx: durable.WorkflowContext, input: ProjectAuditInput) -> ProjectAudit:
    issues = await ctx.step.run(
        "fetch-issues", list_issues, ListIssues(project_id=input.project_id)
    )
    now = ctx.now()
    views = [_issue_view(issue, now) for issue in issues.issues]
    answer = await consult_agent(
        ctx,
        "analyse",
        SessionRequest(
            prompt=f"Audit the project {input.project}: find what needs attention.",
            context={"task": "audit", "project": {"name": input.project, "issues": views}},
            runtime=input.runtime,
            timeout=input.agent_timeout,
            agent_id=AGENT_ID,
        ),
    )
    out = ProjectAudit(
        project_id=input.project_id,
        project=input.project,
        status="analysed",
        issues=len(issues.issues),
        session_id=answer.session_id,
    )
    result = answer.result if isinstance(answer.result, dict) else {}
    raw = result.get("findings")
    if not answer.ok or not isinstance(raw, list):
        out.status = "failed"
        out.error = answer.error or "the agent's answer has no findings"
        return out
    for number, entry in enumerate(raw, start=1):
        try:
            finding = Finding.model_validate(
                {**entry, "id": f"F{number}", "project": input.project, "status": "pending"}
            )
        except ValueError:
            continue
        out.findings.append(finding)
    return out


def _in_scope(projects: list[Project], wanted: list[str]) -> list[Project]:
    if not wanted:
        return projects
    keys = {w.strip().lower() for w in wanted}
    return [p for p in projects if p.id.lower() in keys or p.name.lower() in keys]


def findings_table(findings: list[Finding]) -> str:
    rows = ["| id | project | severity | finding | status |", "| --- | --- | --- | --- | --- |"]
    rows += [f"| {f.id} | {f.project} | {f.severity} | {f.title} | {f.status} |" for f in findings]
    return "\n".join(rows)


async def _analyse(
    ctx: durable.WorkflowContext, params: AuditParams, scope: list[Project]
) -> list[ProjectAudit]:
    """One child run per project, `max_parallel` at once; the answers in scope order, whatever
    order the children finish in."""
    gate = asyncio.Semaphore(params.max_parallel)

    async def one(project: Project) -> ProjectAudit:
        async with gate:
            try:
                return await ctx.step.invoke(
                    f"analyse:{project.name}",
                    audit_project,
                    ProjectAuditInput(
                        project_id=project.id,
                        project=project.name,
                        runtime=params.runtime,
                        agent_timeout=params.agent_timeout,
                    ),
                )
            except durable.StepFailed as err:
                return ProjectAudit(
                    project_id=project.id, project=project.name, status="failed", error=err.cause
                )

    return list(await asyncio.gather(*(one(p) for p in scope)))


@durable.workflow(
    "rensei/audit.run",
    trigger=AuditRequested,
    description="Audit projects in parallel, review findings, publish them, re-check in 7 days",
)
async def audit(ctx: durable.WorkflowContext, input: AuditRequested) -> AuditOutput:
    params = input.data
    # Only a continued execution carries state: a caller who starts an audit with findings
    # already "approved" (and an approver named) must not skip the review.
    state = params.state if ctx.continued else None
    if state is None:
        team = await ctx.step.run("team", get_team, TeamQuery(team=params.team))
        projects = await ctx.step.run("inventory", list_projects, ListProjects())
        scope = _in_scope(projects.projects, params.projects)
        if not scope:
            return AuditOutput(status="nothing-in-scope")
        analysed = await _analyse(ctx, params, scope)
        # Audit-wide ids F1, F2, ... in scope order: what `durable approve --item` names.
        findings = [
            f.model_copy(update={"id": f"F{n}"})
            for n, f in enumerate((f for p in analysed for f in p.findings), start=1)
        ]
        failed = [p for p in analysed if p.status == "failed"]
        failures = "".join(f"\n- {p.project}: analysis failed: {p.error}" for p in failed)
        review_issue = await ctx.step.run(
            "post-findings",
            create_issue,
            CreateIssue(
                id=ctx.uuid(),
                team_id=team.id,
                title=f"Audit findings: {len(findings)} finding(s) over {len(scope)} project(s)",
                description=(
                    f"{findings_table(findings)}\n\n"
                    + (f"Not analysed:{failures}\n\n" if failed else "")
                    + f"Decide each within {params.approval_timeout}: `durable approve "
                    f"{ctx.workflow_id} --item F1` (approve), `--decision reject`, or "
                    f'`--decision revise --notes "..."`; without `--item`, every finding '
                    f"still pending."
                ),
                review=True,  # not backlog: triage and sweeps leave it alone
            ),
        )
        state = AuditState(
            team_id=team.id,
            projects=analysed,
            findings=findings,
            review_issue=review_issue,
            review_deadline=ctx.now() + durable.parse_duration(params.approval_timeout),
        )
    await _review(ctx, params, state)
    if not state.published:
        state.published = await _publish(ctx, state)
    return await _follow_up(ctx, params, state)


async def _review(ctx: durable.WorkflowContext, params: AuditParams, state: AuditState) -> None:
    decided_here = 0
    while pending := [f for f in state.findings if f.status == "pending"]:
        if decided_here and ctx.continue_as_new_suggested:
            carried = state.model_copy(update={"executions": state.executions + 1})
            ctx.continue_as_new(
                AuditRequested(
                    id=f"{ctx.workflow_id}:continued",
                    data=params.model_copy(update={"state": carried}),
                )
            )
        left = state.review_deadline - ctx.now()
        answer = None
        if left > timedelta(0):
            answer = await ctx.step.wait_for_event(
                ctx.step.indexed("await-decision"),
                ApprovalResolved,
                where={"data.workflow_id": ctx.workflow_id},
                timeout=left,
            )
        if answer is None:
            for finding in pending:
                finding.status = "expired"
            return
        decision = answer.data
        targets = [f for f in pending if decision.item in ("", f.id)]
        for finding in targets:
            decided_here += 1
            via = f" (via {decision.via})" if decision.by and decision.via else ""
            finding.notes, finding.decided_by = decision.notes, decision.by + via
            if decision.decision == "approve":
                finding.status = "approved"
            elif decision.decision == "reject" or finding.revisions >= params.max_revisions:
                finding.status = "rejected"
            else:
                await _revise(ctx, params, state, finding, decision.notes)


async def _revise(
    ctx: durable.WorkflowContext,
    params: AuditParams,
    state: AuditState,
    finding: Finding,
    notes: str,
) -> None:
    finding.revisions += 1
    answer = await consult_agent(
        ctx,
        f"revise:{finding.id}#{finding.revisions}",
        SessionRequest(
            prompt=f"Revise audit finding {finding.id} with the reviewer's notes.",
            context={
                "task": "revise-finding",
                "finding": finding.model_dump(include={"id", "title", "severity", "detail"}),
                "notes": notes,
            },
            runtime=params.runtime,
            timeout=params.agent_timeout,
            agent_id=AGENT_ID,
        ),
    )
    result = answer.result if isinstance(answer.result, dict) else {}
    revised = result.get("finding") if answer.ok else None
    if isinstance(revised, dict):
        for key in ("title", "severity", "detail"):
            if key in revised:
                setattr(finding, key, revised[key])
        body = (
            f"Revised {finding.id} ({finding.severity}): {finding.title}\n\n{finding.detail}\n\n"
            f"Decide again: `durable approve {ctx.workflow_id} --item {finding.id}`."
        )
    else:
        body = f"The agent could not revise {finding.id} ({answer.error}); it stays as it was."
    await ctx.step.run(
        f"post-revision:{finding.id}#{finding.revisions}",
        create_comment,
        CreateComment(id=ctx.uuid(), issue_id=state.review_issue.id, body=body),
    )


def finding_issue_id(workflow_id: str, finding_id: str) -> str:
    """The Linear id of a published finding: the same in every execution and every retry."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"durable-audit/{workflow_id}/{finding_id}"))


async def _publish(ctx: durable.WorkflowContext, state: AuditState) -> list[Published]:
    published: list[Published] = []
    for finding in [f for f in state.findings if f.status == "approved"]:
        issue = await ctx.step.run(
            f"publish:{finding.id}",
            create_issue,
            CreateIssue(
                id=finding_issue_id(ctx.workflow_id, finding.id),
                team_id=state.team_id,
                title=f"[Audit] {finding.title}",
                description=f"{finding.detail}\n\nFrom audit `{ctx.workflow_id}` ({finding.id}).",
                priority=PRIORITY[finding.severity],
            ),
        )
        published.append(Published(finding=finding.id, issue=issue))
    counts = {
        s: sum(1 for f in state.findings if f.status == s)
        for s in ("approved", "rejected", "expired")
    }
    done = ", ".join(p.issue.identifier for p in published) or "none"
    await ctx.step.run(
        "post-decisions",
        create_comment,
        CreateComment(
            id=ctx.uuid(),
            issue_id=state.review_issue.id,
            body=(
                f"Review closed: {counts['approved']} approved (published: {done}), "
                f"{counts['rejected']} rejected, {counts['expired']} expired.\n\n"
                f"{findings_table(state.findings)}"
            ),
        ),
    )
    return published


async def _follow_up(
    ctx: durable.WorkflowContext, params: AuditParams, state: AuditState
) -> AuditOutput:
    out = AuditOutput(
        status="completed",
        projects=state.projects,
        findings=state.findings,
        published=state.published,
        review_issue=state.review_issue.identifier,
        executions=state.executions,
    )
    if not state.published:
        return out
    await ctx.step.sleep("wait-to-recheck", params.recheck_after)
    found = await ctx.step.run(
        "recheck",
        get_issues,
        GetIssues(ids=[p.issue.id for p in state.published]),
    )
    by_id = {i.id: i for i in found.issues}
    for entry in state.published:
        issue = by_id.get(entry.issue.id)
        if issue is None or issue.state_type in CLOSED:
            out.resolved.append(entry.issue.identifier)
        else:
            out.unresolved.append(entry.issue.identifier)
            await ctx.step.run(
                f"follow-up:{entry.finding}",
                create_comment,
                CreateComment(
                    id=ctx.uuid(),
                    issue_id=entry.issue.id,
                    body=f"Audit follow-up: still open {params.recheck_after} after the audit.",
                ),
            )
    await ctx.step.run(
        "post-follow-up",
        create_comment,
        CreateComment(
            id=ctx.uuid(),
            issue_id=state.review_issue.id,
            body=(
                f"Follow-up after {params.recheck_after}: resolved "
                f"{', '.join(out.resolved) or 'none'}; still open "
                f"{', '.join(out.unresolved) or 'none'}."
            ),
        ),
    )
    return out

"""Backlog triage, a PM agent: every weekday morning (or on `rensei/pm.backlog-triage.requested`)
look at the team's issues changed since the last run that still need triage (no label, no
priority or no owner), ask an agent for labels, a priority and an owner per issue, post the
proposal to Linear for review and wait for a decision (24 h by default):

- approve: apply the proposal to Linear, one step per issue, and post a summary;
- revise (with notes): the agent proposes again with the notes, at most `max_revisions` times;
- reject, or silence past the timeout: change nothing, and say so on the review issue.

The review is a Linear issue ("Triage proposal: ...") in the team; revisions and the outcome
are comments on it, and it is closed (Done or Canceled) when the review ends. "Since the last
run" is a cursor in Postgres: it moves to this run's start once the review is decided
(approved, rejected, or revised past the bound), and not when the review expired or the agent
failed, so the next run looks at those issues again.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from pydantic import BaseModel, Field

import durable
from activities.agents import SessionRequest
from activities.linear.marks import unmarked
from activities.linear.steps import (
    EnsureLabels,
    IssueSummary,
    ListIssues,
    Team,
    TeamQuery,
    UpdateIssue,
    ensure_labels,
    get_team,
    list_issues,
    update_issue,
)

from .common import (
    AgentAnswer,
    Reviewed,
    ReviewIssue,
    consult_agent,
    finished_run,
    proposals_of,
    review,
    since_last_run,
    without_reviews,
)

AGENT_ID = "pm-backlog-triage"
CLOSED_STATES = ("completed", "canceled")


class BacklogTriageParams(BaseModel):
    """What a triage run looks at and how long it waits. Every field has a default, so the
    scheduled run (and `durable send-event rensei/pm.backlog-triage.requested -d '{}'`) works."""

    team: str = Field("", description="Team key (ENG) or id; empty: the first team")
    lookback: durable.DurationText = Field("30d", description="How far back the first run looks")
    since: datetime | None = Field(
        None, description="Look at changes since this time instead of since the last run"
    )
    max_issues: int = Field(25, ge=1, le=200, description="At most this many issues per run")
    approval_timeout: durable.DurationText = Field(
        "24h", description="How long each review round waits"
    )
    max_revisions: int = Field(2, ge=0, le=10, description="Revise rounds before it gives up")
    runtime: str = Field("local", description="The agent runtime the session runs on")
    agent_timeout: durable.DurationText = Field(
        "30m", description="How long the agent may take per proposal"
    )


class BacklogTriageRequested(durable.Event[BacklogTriageParams]):
    """Start a backlog-triage run now (the PM agent's manual trigger)."""

    type: ClassVar[str] = "rensei/pm.backlog-triage.requested"


class TriageItem(BaseModel):
    issue_id: str
    identifier: str = ""
    title: str = ""
    labels: list[str] = []
    priority: int = Field(0, ge=0, le=4)
    owner: str = ""
    reason: str = ""


class TriageProposal(BaseModel):
    session_id: str
    items: list[TriageItem]
    summary: str = ""


class BacklogTriageOutput(BaseModel):
    status: str  # approved, rejected, expired, revisions-exhausted, nothing-to-triage, agent-failed
    team: str = ""
    since: datetime | None = None
    considered: int = 0  # issues that needed triage
    applied: list[str] = []  # identifiers changed in Linear
    review_issue: str = ""  # the review issue's identifier
    review_url: str = ""
    rounds: int = 0
    sessions: list[str] = []
    error: str = ""
    decided_by: str = ""  # who answered the review, and how: "key:ops (via api)"


class _AgentFailed(Exception):
    def __init__(self, answer: AgentAnswer) -> None:
        self.answer = answer
        super().__init__(f"agent session {answer.session_id} {answer.status}: {answer.error}")


def needs_triage(issue: IssueSummary) -> bool:
    if issue.state_type in CLOSED_STATES:
        return False
    return not issue.labels or issue.priority == 0 or not issue.assignee


PRIORITY_NAMES = {0: "none", 1: "urgent", 2: "high", 3: "medium", 4: "low"}


def proposal_table(items: list[TriageItem]) -> str:
    rows = ["| issue | labels | priority | owner | why |", "| --- | --- | --- | --- | --- |"]
    for item in items:
        rows.append(
            f"| {item.identifier or item.issue_id} {item.title} | {', '.join(item.labels)} | "
            f"{PRIORITY_NAMES.get(item.priority, item.priority)} | {item.owner or '-'} | "
            f"{item.reason} |"
        )
    return "\n".join(rows)


def how_to_answer(workflow_id: str, timeout: str) -> str:
    return (
        f"Answer within {timeout}:\n\n"
        f"- approve: `durable approve {workflow_id}`\n"
        f'- revise: `durable approve {workflow_id} --decision revise --notes "ENG-3 priority 1; '
        f'ENG-4 owner Grace Hopper"`\n'
        f'- reject: `durable approve {workflow_id} --decision reject --notes "why"`'
    )


def _items(answer: AgentAnswer, asked: dict[str, IssueSummary]) -> list[TriageItem]:
    """The agent's proposals for the issues asked about (`asked` holds no review issue), none
    of them giving an issue the review label: that would hide it from every later triage."""
    items = proposals_of(answer, asked, TriageItem)
    if items is None:
        failed = {"status": "failed", "error": "the agent's answer has no proposals"}
        raise _AgentFailed(answer.model_copy(update=failed))
    return [item.model_copy(update={"labels": unmarked(item.labels)}) for item in items]


@durable.workflow(
    "rensei/pm.backlog-triage.run",
    trigger=BacklogTriageRequested,
    description="PM agent: propose labels, priority and owner per changed issue; apply if approved",
)
async def backlog_triage(
    ctx: durable.WorkflowContext, input: BacklogTriageRequested
) -> BacklogTriageOutput:
    params = input.data
    team = await ctx.step.run("team", get_team, TeamQuery(team=params.team))
    since, now = await since_last_run(ctx, AGENT_ID, team.id, first_lookback=params.lookback)
    since = params.since or since
    changed = await ctx.step.run(
        "fetch-issues",
        list_issues,
        ListIssues(team_id=team.id, updated_since=since, exclude_reviews=True),
    )
    # Never another run's review issue (nor this one's, nor an audit's): they are not backlog.
    backlog = without_reviews(ctx, changed.issues)
    todo = [issue for issue in backlog if needs_triage(issue)][: params.max_issues]
    out = BacklogTriageOutput(status="nothing-to-triage", team=team.key, since=since)
    if not todo:
        await finished_run(ctx, AGENT_ID, team.id, now)
        return out
    out.considered = len(todo)
    asked = {issue.id: issue for issue in todo}
    all_notes: list[str] = []
    thread = ReviewIssue(ctx, team)

    async def propose(round: int, notes: str) -> TriageProposal:
        if notes:
            all_notes.append(notes)
        answer = await consult_agent(
            ctx,
            f"triage#{round}",
            SessionRequest(
                prompt=(
                    f"Triage {len(todo)} issue(s) of team {team.key}: propose labels, a "
                    "priority (1 urgent .. 4 low) and an owner for each."
                ),
                context={
                    "task": "triage",
                    "issues": [
                        issue.model_dump(
                            include={
                                "id",
                                "identifier",
                                "title",
                                "description",
                                "labels",
                                "priority",
                                "assignee",
                                "state",
                            }
                        )
                        for issue in todo
                    ],
                    "members": [m.model_dump() for m in team.members],
                    "labels": unmarked(label.name for label in team.labels),
                    "notes": "\n".join(all_notes),
                },
                runtime=params.runtime,
                timeout=params.agent_timeout,
                agent_id=AGENT_ID,
            ),
        )
        out.sessions.append(answer.session_id)
        if not answer.ok:
            raise _AgentFailed(answer)
        return TriageProposal(
            session_id=answer.session_id, items=_items(answer, asked), summary=answer.summary
        )

    async def ask(round: int, proposal: TriageProposal) -> None:
        table = proposal_table(proposal.items)
        answer_with = how_to_answer(ctx.workflow_id, params.approval_timeout)
        body = f"{table}\n\n{answer_with}"
        if round == 1:
            body = (
                f"The backlog-triage agent looked at the issues of {team.key} changed since "
                f"{since:%Y-%m-%d %H:%M} UTC that need triage, and proposes:\n\n{body}\n\n"
                f"Run: `{ctx.workflow_id}`"
            )
        await thread.post(
            round, f"Triage proposal: {len(proposal.items)} issue(s) of {team.key}", body
        )
        if thread.issue is not None:
            out.review_issue, out.review_url = thread.issue.identifier, thread.issue.url

    try:
        decided: Reviewed[TriageProposal] = await review(
            ctx,
            propose=propose,
            ask=ask,
            timeout=params.approval_timeout,
            max_revisions=params.max_revisions,
        )
    except _AgentFailed as failed:
        out.status, out.error = "agent-failed", str(failed)
        await thread.close(f"Stopped: {failed}", done=False)
        return out

    out.rounds = decided.rounds
    out.status = decided.outcome
    out.decided_by = decided.decided_by
    who = f" by {decided.decided_by}" if decided.decided_by else ""
    if decided.outcome == "approved":
        out.applied = await _apply(ctx, team, decided.proposal.items, asked)
        await thread.close(
            f"Approved{who}. Applied to {len(out.applied)} issue(s): "
            f"{', '.join(out.applied) or 'none'}.\n\n{proposal_table(decided.proposal.items)}",
            done=True,
        )
    elif decided.outcome == "expired":
        await thread.close(
            f"No decision within {params.approval_timeout}: the proposal expired and nothing "
            "was changed. The next run proposes these issues again.",
            done=False,
        )
    else:
        why = "Rejected" if decided.outcome == "rejected" else "Too many revisions"
        notes = f": {decided.notes}" if decided.notes else ""
        await thread.close(f"{why}{who}{notes}. Nothing was changed.", done=False)
    if decided.outcome != "expired":
        await finished_run(ctx, AGENT_ID, team.id, now)
    return out


async def _apply(
    ctx: durable.WorkflowContext,
    team: Team,
    items: list[TriageItem],
    asked: dict[str, IssueSummary],
) -> list[str]:
    """Apply each proposal in its own step (`apply:<identifier>`): a rate limit or a crash
    part-way retries only the issue it was on. Proposed labels are added to the issue's own."""
    names = sorted({n for item in items for n in (*item.labels, *asked[item.issue_id].labels)})
    labels = await ctx.step.run(
        "ensure-labels", ensure_labels, EnsureLabels(team_id=team.id, names=names)
    )
    label_ids = {label.name.lower(): label.id for label in labels.labels}
    applied: list[str] = []
    for item in items:
        issue = asked[item.issue_id]
        wanted = dict.fromkeys(n.lower() for n in (*issue.labels, *item.labels))
        owner = team.member(item.owner) if item.owner else None
        await ctx.step.run(
            f"apply:{issue.identifier or issue.id}",
            update_issue,
            UpdateIssue(
                issue_id=issue.id,
                label_ids=[label_ids[n] for n in wanted if n in label_ids],
                priority=item.priority or None,
                assignee_id=owner.id if owner and not owner.app else None,
            ),
        )
        applied.append(issue.identifier or issue.id)
    return applied

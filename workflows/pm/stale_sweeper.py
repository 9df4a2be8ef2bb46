"""Stale-issue sweeper, a PM agent: every Monday (or on `rensei/pm.stale-sweeper.requested`)
find the team's open issues untouched for `stale_days`, ask an agent whether to close each or
ping its owner, post the proposal to Linear for review, and on approval apply it: a closed
issue moves to the team's canceled state with a comment saying why; a pinged one gets a
comment addressed to its assignee. Revise and reject work as in backlog triage; no answer
within `approval_timeout` expires the sweep and changes nothing.

"Since the last run": a sweep looks only at issues that became stale since the last decided
sweep (their last update lies between the previous sweep's start and this one's, minus
`stale_days`). An issue already proposed once, and pinged, kept or rejected then, is not
proposed again until someone touches it and it goes stale again. The cursor is in Postgres and
does not move when a sweep expires, so the next sweep proposes the same issues.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import ClassVar, Literal

from pydantic import BaseModel, Field

import durable
from activities.agents import SessionRequest
from activities.linear.steps import (
    CreateComment,
    IssueSummary,
    ListIssues,
    Team,
    TeamQuery,
    UpdateIssue,
    create_comment,
    get_team,
    list_issues,
    update_issue,
)

from .backlog_triage import CLOSED_STATES
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

AGENT_ID = "pm-stale-sweeper"


class StaleSweepParams(BaseModel):
    team: str = Field("", description="Team key (ENG) or id; empty: the first team")
    stale_days: int = Field(14, ge=1, le=365, description="Untouched this many days is stale")
    max_issues: int = Field(25, ge=1, le=200)
    approval_timeout: durable.DurationText = Field(
        "24h", description="How long each review round waits"
    )
    max_revisions: int = Field(2, ge=0, le=10)
    runtime: str = Field("local")
    agent_timeout: durable.DurationText = Field("30m")


class StaleSweepRequested(durable.Event[StaleSweepParams]):
    """Run the stale-issue sweeper now (the PM agent's manual trigger)."""

    type: ClassVar[str] = "rensei/pm.stale-sweeper.requested"


class SweepItem(BaseModel):
    issue_id: str
    identifier: str = ""
    title: str = ""
    action: Literal["close", "ping"]
    reason: str = ""


class SweepProposal(BaseModel):
    session_id: str
    items: list[SweepItem]


class StaleSweepOutput(BaseModel):
    status: str  # approved, rejected, expired, revisions-exhausted, nothing-stale, agent-failed
    team: str = ""
    stale: int = 0
    closed: list[str] = []
    pinged: list[str] = []
    review_issue: str = ""
    rounds: int = 0
    error: str = ""
    decided_by: str = ""  # who answered the review, and how: "key:ops (via api)"


class _AgentFailed(Exception):
    pass


def _idle_days(issue: IssueSummary, now: datetime) -> float:
    updated = datetime.fromisoformat(issue.updated_at.replace("Z", "+00:00"))
    return (now - updated).total_seconds() / 86400


def table(items: list[SweepItem]) -> str:
    rows = ["| issue | action | why |", "| --- | --- | --- |"]
    rows += [f"| {i.identifier} {i.title} | {i.action} | {i.reason} |" for i in items]
    return "\n".join(rows)


def _items(answer: AgentAnswer, asked: dict[str, IssueSummary]) -> list[SweepItem]:
    items = proposals_of(answer, asked, SweepItem)
    if items is None:
        raise _AgentFailed("the agent's answer has no proposals")
    return items


@durable.workflow(
    "rensei/pm.stale-sweeper.run",
    trigger=StaleSweepRequested,
    description="PM agent: propose closing or pinging stale issues; apply if approved",
)
async def stale_sweeper(
    ctx: durable.WorkflowContext, input: StaleSweepRequested
) -> StaleSweepOutput:
    params = input.data
    team = await ctx.step.run("team", get_team, TeamQuery(team=params.team))
    stale_for = timedelta(days=params.stale_days)
    # The first sweep looks at everything stale (back to a year before the staleness line).
    last, now = await since_last_run(ctx, AGENT_ID, team.id, first_lookback="365d")
    line, previous_line = now - stale_for, last - stale_for
    found = await ctx.step.run(
        "fetch-issues", list_issues, ListIssues(team_id=team.id, exclude_reviews=True)
    )
    # An open review issue (an audit's stays open) is not stale work to close or ping about.
    stale = sorted(
        (
            i
            for i in without_reviews(ctx, found.issues)
            if i.state_type not in CLOSED_STATES
            and previous_line <= datetime.fromisoformat(i.updated_at.replace("Z", "+00:00")) < line
        ),
        key=lambda i: i.updated_at,
    )[: params.max_issues]
    out = StaleSweepOutput(status="nothing-stale", team=team.key, stale=len(stale))
    if not stale:
        await finished_run(ctx, AGENT_ID, team.id, now)
        return out
    asked = {i.id: i for i in stale}
    notes_so_far: list[str] = []
    thread = ReviewIssue(ctx, team)

    async def propose(round: int, notes: str) -> SweepProposal:
        if notes:
            notes_so_far.append(notes)
        answer = await consult_agent(
            ctx,
            f"review-stale#{round}",
            SessionRequest(
                prompt=f"{len(stale)} issue(s) of {team.key} have not moved for "
                f"{params.stale_days} days: close each, or ping its owner?",
                context={
                    "task": "stale-review",
                    "stale_days": params.stale_days,
                    "issues": [
                        {
                            **i.model_dump(
                                include={
                                    "id",
                                    "identifier",
                                    "title",
                                    "assignee",
                                    "state",
                                    "state_type",
                                }
                            ),
                            "days_idle": int(_idle_days(i, now)),
                        }
                        for i in stale
                    ],
                    "notes": "\n".join(notes_so_far),
                },
                runtime=params.runtime,
                timeout=params.agent_timeout,
                agent_id=AGENT_ID,
            ),
        )
        if not answer.ok:
            raise _AgentFailed(f"agent session {answer.session_id} {answer.status}: {answer.error}")
        return SweepProposal(session_id=answer.session_id, items=_items(answer, asked))

    async def ask(round: int, proposal: SweepProposal) -> None:
        how = (
            f"Answer within {params.approval_timeout}: `durable approve {ctx.workflow_id}` "
            f'(or `--decision revise --notes "keep ENG-5; close ENG-3"`, or '
            f"`--decision reject`)."
        )
        body = f"{table(proposal.items)}\n\n{how}"
        if round == 1:
            body = (
                f"These issues have not moved for {params.stale_days} days or more. "
                f"The sweeper proposes:\n\n{body}"
            )
        await thread.post(
            round, f"Stale-issue sweep: {len(proposal.items)} issue(s) of {team.key}", body
        )
        if thread.issue is not None:
            out.review_issue = thread.issue.identifier

    try:
        decided: Reviewed[SweepProposal] = await review(
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
    out.status, out.rounds = decided.outcome, decided.rounds
    out.decided_by = decided.decided_by
    who = f" by {decided.decided_by}" if decided.decided_by else ""
    if decided.outcome == "approved":
        await _apply(ctx, team, decided.proposal.items, asked, params.stale_days, out)
        summary = (
            f"Approved{who}. Closed {len(out.closed)}: {', '.join(out.closed) or 'none'}; "
            f"pinged {len(out.pinged)}: {', '.join(out.pinged) or 'none'}."
        )
    elif decided.outcome == "expired":
        summary = (
            f"No decision within {params.approval_timeout}: the sweep expired and nothing was "
            "changed. The next sweep proposes these issues again."
        )
    else:
        notes = f": {decided.notes}" if decided.notes else ""
        why = "Rejected" if decided.outcome == "rejected" else "Too many revisions"
        summary = f"{why}{who}{notes}. Nothing was changed."
    await thread.close(summary, done=decided.outcome == "approved")
    if decided.outcome != "expired":
        await finished_run(ctx, AGENT_ID, team.id, now)
    return out


async def _apply(
    ctx: durable.WorkflowContext,
    team: Team,
    items: list[SweepItem],
    asked: dict[str, IssueSummary],
    stale_days: int,
    out: StaleSweepOutput,
) -> None:
    """One step per change, so a rate limit or a crash part-way redoes only the one it was on;
    the comment comes first so a closed issue always says why."""
    canceled = team.state("canceled")
    for item in items:
        issue = asked[item.issue_id]
        key = issue.identifier or issue.id
        if item.action == "close":
            body = (
                f"Closed by the stale-issue sweeper: {item.reason}. Reopen it if it still matters."
            )
        else:
            who = issue.assignee or "team"
            body = (
                f"@{who}: this issue has not moved for {stale_days}+ days ({item.reason}). "
                "Is it still planned? Update it, or it may be closed in a later sweep."
            )
        await ctx.step.run(
            f"comment:{key}",
            create_comment,
            CreateComment(id=ctx.uuid(), issue_id=issue.id, body=body),
        )
        if item.action == "close" and canceled is not None:
            await ctx.step.run(
                f"close:{key}",
                update_issue,
                UpdateIssue(issue_id=issue.id, state_id=canceled.id),
            )
            out.closed.append(key)
        elif item.action == "ping":
            out.pinged.append(key)

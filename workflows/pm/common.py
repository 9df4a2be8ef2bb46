"""What PM agents share: consult an agent session and read its answer, ask a human and wait
(bounded approve/revise rounds), and keep "since the last run" as a durable cursor."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ValidationError

import durable
from activities.agents import SessionRequest
from activities.linear.steps import (
    CreateComment,
    CreateIssue,
    IssueRef,
    IssueSummary,
    Team,
    UpdateIssue,
    create_comment,
    create_issue,
    update_issue,
)
from activities.pm import (
    AdvanceCursor,
    CursorKey,
    SessionResultQuery,
    advance_cursor,
    read_cursor,
    session_result,
)
from workflows.agents import RUNTIME_GRACE, await_session, dispatch_agent, stop_sessions
from workflows.events import Approval, ApprovalResolved

T = TypeVar("T")

# The patch that leaves the product's own review issues out of what a PM agent is given (runs
# already past their fetch when it shipped keep the path they took).
SKIP_REVIEW_ISSUES = "skip-review-issues"

# The agent may answer this much later than its own timeout (its runtime stops it at the
# timeout and the session announces `timed_out`; this covers the announcement).
ANSWER_MARGIN = RUNTIME_GRACE + timedelta(minutes=1)


class AgentAnswer(BaseModel):
    """What a consulted agent session ended with."""

    session_id: str
    status: str  # completed, failed, cancelled, timed_out
    result: Any = None  # the stored result (completed sessions only)
    summary: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "completed"


P = TypeVar("P", bound=BaseModel)


def proposals_of(
    answer: AgentAnswer, asked: Mapping[str, IssueSummary], model: type[P]
) -> list[P] | None:
    """The agent's `proposals` for the issues it was asked about, as `model` (a model with
    `issue_id`, `identifier` and `title`), with each issue's identifier and title from Linear;
    entries that do not fit and other issues are dropped. None when there is no proposals list."""
    result = answer.result if isinstance(answer.result, dict) else {}
    raw = result.get("proposals")
    if not isinstance(raw, list):
        return None
    items: list[P] = []
    for entry in raw:
        try:
            item = model.model_validate(entry)
        except ValidationError:
            continue
        issue = asked.get(str(getattr(item, "issue_id", "")))
        if issue is not None:
            items.append(
                item.model_copy(update={"identifier": issue.identifier, "title": issue.title})
            )
    return items


def without_reviews(ctx: durable.WorkflowContext, issues: list[IssueSummary]) -> list[IssueSummary]:
    """`issues` without the product's own review issues (another run's proposal, an audit's
    findings). The fetch (`ListIssues(exclude_reviews=True)`) leaves them out already; this
    holds whatever step fetched them, e.g. one run by a worker that predates the mark."""
    if not ctx.patched(SKIP_REVIEW_ISSUES):
        return issues
    return [issue for issue in issues if not issue.marked_review]


async def consult_agent(
    ctx: durable.WorkflowContext, step_id: str, request: SessionRequest
) -> AgentAnswer:
    """Dispatch an agent session, wait for its end and read its stored result.

    Steps: `{step_id}` (dispatch), `{step_id}.await`, then `{step_id}.result` when it
    completed. A cancelled run stops the session before it ends as cancelled; a session that
    does not answer in time is stopped and reported `timed_out`.
    """
    session_id = await dispatch_agent(ctx, step_id, request)
    wait = durable.parse_duration(request.timeout) + ANSWER_MARGIN
    try:
        done = await await_session(ctx, f"{step_id}.await", session_id, timeout=wait)
    except durable.WorkflowCancelled:
        await stop_sessions(ctx, f"{step_id}.stop", [session_id], "the run was cancelled")
        raise
    if done is None:
        await stop_sessions(ctx, f"{step_id}.stop", [session_id], "no answer in time")
        return AgentAnswer(session_id=session_id, status="timed_out", error="no answer in time")
    if done.data.status != "completed":
        return AgentAnswer(session_id=session_id, status=done.data.status, error=done.data.error)
    stored = await ctx.step.run(
        f"{step_id}.result", session_result, SessionResultQuery(result_ref=done.data.result_ref)
    )
    return AgentAnswer(
        session_id=session_id,
        status="completed",
        result=stored.result,
        summary=done.data.summary,
    )


async def await_decision(
    ctx: durable.WorkflowContext, step_id: str, *, timeout: durable.Duration, item: str = ""
) -> Approval | None:
    """Wait for `durable approve <this run> [--item ITEM]` (rensei/approval.resolved); None
    after `timeout`."""
    where: dict[str, Any] = {"data.workflow_id": ctx.workflow_id, "data.item": item}
    answer = await ctx.step.wait_for_event(step_id, ApprovalResolved, where=where, timeout=timeout)
    return None if answer is None else answer.data


ReviewOutcome = Literal["approved", "rejected", "expired", "revisions-exhausted"]


@dataclass(frozen=True)
class Reviewed(Generic[T]):
    """How a bounded review ended, with the proposal it ended on."""

    outcome: ReviewOutcome
    proposal: T
    rounds: int
    notes: str = ""
    by: str = ""
    via: str = ""

    @property
    def decided_by(self) -> str:
        """Who decided and how, for outcomes and comments: `key:ops (via api)`."""
        return f"{self.by} (via {self.via})" if self.by and self.via else self.by


async def review(
    ctx: durable.WorkflowContext,
    *,
    propose: Callable[[int, str], Awaitable[T]],
    ask: Callable[[int, T], Awaitable[None]],
    timeout: durable.Duration,
    max_revisions: int,
) -> Reviewed[T]:
    """Propose, ask, wait; on "revise" propose again with the reviewer's notes, at most
    `max_revisions` times. `propose(round, notes)` makes round `round`'s proposal (round 1 has
    no notes); `ask(round, proposal)` shows it to the reviewer. Each round waits `timeout`
    (step `await-approval#<round>`); silence ends the review as `expired`."""
    notes = ""
    rounds = 0
    while True:
        rounds += 1
        proposal = await propose(rounds, notes)
        await ask(rounds, proposal)
        answer = await await_decision(ctx, f"await-approval#{rounds}", timeout=timeout)
        if answer is None:
            return Reviewed(outcome="expired", proposal=proposal, rounds=rounds)
        if answer.decision == "revise" and rounds <= max_revisions:
            notes = answer.notes
            continue
        outcome: ReviewOutcome = {
            "approve": "approved",
            "reject": "rejected",
            "revise": "revisions-exhausted",
        }[answer.decision]  # type: ignore[assignment]
        return Reviewed(
            outcome=outcome,
            proposal=proposal,
            rounds=rounds,
            notes=answer.notes,
            by=answer.by,
            via=answer.via,
        )


async def since_last_run(
    ctx: durable.WorkflowContext,
    agent_id: str,
    scope: str,
    *,
    first_lookback: durable.Duration,
) -> tuple[datetime, datetime]:
    """(since, now): where the agent's last finished run left off (or `first_lookback` ago on
    its first run) and the run's now, which `finished_run` stores as the next start."""
    now = ctx.now()
    stored = await ctx.step.run(
        "read-cursor", read_cursor, CursorKey(agent_id=agent_id, scope=scope)
    )
    since = stored.cursor or now - durable.parse_duration(first_lookback)
    return since, now


async def finished_run(
    ctx: durable.WorkflowContext, agent_id: str, scope: str, looked_until: datetime
) -> None:
    """Record that the agent has dealt with everything up to `looked_until` (only forward)."""
    await ctx.step.run(
        "advance-cursor",
        advance_cursor,
        AdvanceCursor(agent_id=agent_id, scope=scope, cursor=looked_until),
    )


class ReviewIssue:
    """The Linear issue a proposal is reviewed on: posted in round 1 (step `post-proposal`),
    each revision a comment on it (`post-revision#<round>`), then the outcome a comment
    (`post-outcome`) and the issue closed as Done or Canceled (`close-review`). It carries the
    review mark (`activities.linear.marks`), so no triage or sweep takes it for backlog."""

    def __init__(self, ctx: durable.WorkflowContext, team: Team) -> None:
        self._ctx = ctx
        self._team = team
        self.issue: IssueRef | None = None

    async def post(self, round: int, title: str, body: str) -> None:
        """Round 1: open the review issue with `title` and `body`; later rounds: comment the
        revised `body` on it."""
        ctx = self._ctx
        if self.issue is None:
            self.issue = await ctx.step.run(
                "post-proposal",
                create_issue,
                CreateIssue(
                    id=ctx.uuid(),
                    team_id=self._team.id,
                    title=title,
                    description=body,
                    review=True,
                ),
            )
            return
        await ctx.step.run(
            f"post-revision#{round}",
            create_comment,
            CreateComment(
                id=ctx.uuid(),
                issue_id=self.issue.id,
                body=f"Revised proposal (round {round}):\n\n{body}",
            ),
        )

    async def close(self, body: str, *, done: bool) -> None:
        """Say how the review ended and close the issue (nothing when none was posted)."""
        if self.issue is None:
            return
        ctx = self._ctx
        await ctx.step.run(
            "post-outcome",
            create_comment,
            CreateComment(id=ctx.uuid(), issue_id=self.issue.id, body=body),
        )
        state = self._team.state("completed" if done else "canceled")
        if state is not None:
            await ctx.step.run(
                "close-review", update_issue, UpdateIssue(issue_id=self.issue.id, state_id=state.id)
            )

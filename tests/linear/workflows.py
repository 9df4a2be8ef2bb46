"""A workflow that acts on Linear through the Linear steps, written against `durable` only."""

from __future__ import annotations

from pydantic import BaseModel

import durable
from activities.linear.steps import (
    CreateComment,
    CreateIssue,
    create_comment,
    create_issue,
)


class FileIssue(BaseModel):
    team_id: str
    title: str
    comment: str = "Filed by a durable workflow."
    pause_seconds: float = 0.0


class Filed(BaseModel):
    issue_id: str
    identifier: str
    comment_id: str


@durable.workflow("tests/linear-file.run")
async def file_issue(ctx: durable.WorkflowContext, input: FileIssue) -> Filed:
    """Create an issue and comment on it; ids come from the workflow, so retries reuse them."""
    issue = await ctx.step.run(
        "create-issue",
        create_issue,
        CreateIssue(id=ctx.uuid(), team_id=input.team_id, title=input.title),
    )
    comment = await ctx.step.run(
        "comment",
        create_comment,
        CreateComment(id=ctx.uuid(), issue_id=issue.id, body=input.comment),
    )
    return Filed(issue_id=issue.id, identifier=issue.identifier, comment_id=comment.id)

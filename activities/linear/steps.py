"""The Linear steps workflows call. Their inputs carry no secret: the org comes from the run's
tenancy (a Temporal header), and its credential is resolved here, inside the step.

Creates take an `id` the workflow makes (`ctx.uuid()`), so a step retried after a crash finds
what its first attempt created instead of creating it twice.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

import durable

from .client import DEFAULT_URL, LinearClient, LinearCredential


class IssueRef(BaseModel):
    id: str
    identifier: str = ""
    title: str = ""
    url: str = ""
    state: str = ""


class IssueSummary(IssueRef):
    description: str = ""
    priority: int = 0
    labels: list[str] = []
    assignee: str = ""
    team_id: str = ""
    project_id: str = ""
    updated_at: str = ""


class CreateIssue(BaseModel):
    id: str = Field(description="A UUID made by the workflow (ctx.uuid()): the idempotency key")
    team_id: str
    title: str
    description: str = ""
    priority: int | None = None
    label_ids: list[str] = []
    state_id: str | None = None
    project_id: str | None = None


class UpdateIssue(BaseModel):
    issue_id: str
    title: str | None = None
    description: str | None = None
    priority: int | None = None
    label_ids: list[str] | None = None
    state_id: str | None = None
    assignee_id: str | None = None


class CreateComment(BaseModel):
    id: str = Field(description="A UUID made by the workflow: the idempotency key")
    issue_id: str
    body: str


class CommentRef(BaseModel):
    id: str
    url: str = ""


class ListIssues(BaseModel):
    team_id: str | None = None
    project_id: str | None = None
    updated_since: datetime | None = None
    limit: int = 200


class Issues(BaseModel):
    issues: list[IssueSummary]


class PostAgentActivity(BaseModel):
    id: str = Field(description="A UUID made by the workflow: the idempotency key")
    agent_session_id: str
    content: dict[str, Any] = Field(description='e.g. {"type": "thought", "body": "..."}')


class AgentActivityRef(BaseModel):
    id: str


create_issue = durable.declare_activity("linear.create-issue", CreateIssue, IssueRef)
update_issue = durable.declare_activity("linear.update-issue", UpdateIssue, IssueRef)
create_comment = durable.declare_activity("linear.create-comment", CreateComment, CommentRef)
list_issues = durable.declare_activity("linear.list-issues", ListIssues, Issues, timeout="2m")
post_agent_activity = durable.declare_activity(
    "linear.agent-activity", PostAgentActivity, AgentActivityRef
)


class LinearCredentials:
    """Who the product is in Linear, per org: API keys and OAuth tokens from settings
    (`LINEAR_API_KEYS`, `LINEAR_OAUTH_TOKENS`: JSON objects `{"<org id>": "<secret>"}`)."""

    def __init__(self, api_keys: str | None = None, oauth_tokens: str | None = None) -> None:
        self._by_org: dict[str, LinearCredential] = {}
        for text, oauth, name in (
            (api_keys, False, "LINEAR_API_KEYS"),
            (oauth_tokens, True, "LINEAR_OAUTH_TOKENS"),
        ):
            if not text:
                continue
            try:
                mapping = json.loads(text)
            except ValueError:
                mapping = None
            if not isinstance(mapping, dict) or not all(
                isinstance(k, str) and isinstance(v, str) and v for k, v in mapping.items()
            ):
                raise ValueError(
                    f'{name} must be a JSON object like {{"<org id>": "<secret>"}} '
                    "(the value is not shown)"
                )
            for org, secret in mapping.items():
                self._by_org[org] = LinearCredential(secret, oauth=oauth)

    @property
    def orgs(self) -> list[str]:
        return sorted(self._by_org)

    def __bool__(self) -> bool:
        return bool(self._by_org)

    def for_org(self, org_id: str) -> LinearCredential:
        try:
            return self._by_org[org_id]
        except KeyError:
            raise durable.NonRetryableError(
                f"no Linear credential is configured for org {org_id!r} "
                f"(configured: {', '.join(self.orgs) or 'none'}); set LINEAR_API_KEYS or "
                "LINEAR_OAUTH_TOKENS",
                kind="LinearNotConfigured",
            ) from None


def _summary(issue: dict[str, Any]) -> IssueSummary:
    return IssueSummary(
        id=issue["id"],
        identifier=issue.get("identifier") or "",
        title=issue.get("title") or "",
        url=issue.get("url") or "",
        state=(issue.get("state") or {}).get("name", ""),
        description=issue.get("description") or "",
        priority=int(issue.get("priority") or 0),
        labels=[label["name"] for label in (issue.get("labels") or {}).get("nodes", [])],
        assignee=(issue.get("assignee") or {}).get("name", ""),
        team_id=(issue.get("team") or {}).get("id", ""),
        project_id=(issue.get("project") or {}).get("id", ""),
        updated_at=issue.get("updatedAt") or "",
    )


def _ref(issue: dict[str, Any]) -> IssueRef:
    summary = _summary(issue)
    return IssueRef(**summary.model_dump(include=set(IssueRef.model_fields)))


def _without_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


class LinearSteps:
    """The Linear steps, bound to credentials and an endpoint (Linear, or the local server)."""

    def __init__(
        self,
        credentials: LinearCredentials,
        url: str = DEFAULT_URL,
        client_factory: Callable[[str, LinearCredential, str], LinearClient] | None = None,
    ) -> None:
        self._credentials = credentials
        self._url = url
        self._factory = client_factory or (lambda org, cred, url: LinearClient(org, cred, url))

    def _client(self, org: str | None = None) -> LinearClient:
        """A client for `org`, by default the running step's org (from the run's tenancy)."""
        if org is None:
            org = durable.activity_context().info.tenancy.org_id
        if not org:
            raise durable.NonRetryableError(
                "this run belongs to no org, so it has no Linear credential; start it with "
                "a tenancy (durable start --org ..., or tenancy=durable.Tenancy(org_id=...))",
                kind="LinearNotConfigured",
            )
        return self._factory(org, self._credentials.for_org(org), self._url)

    @durable.implements(create_issue)
    async def create_issue(self, input: CreateIssue) -> IssueRef:
        async with self._client() as client:
            created = await client.create_issue(
                _without_none(
                    {
                        "id": input.id,
                        "teamId": input.team_id,
                        "title": input.title,
                        "description": input.description,
                        "priority": input.priority,
                        "labelIds": input.label_ids or None,
                        "stateId": input.state_id,
                        "projectId": input.project_id,
                    }
                )
            )
        return _ref(created)

    @durable.implements(update_issue)
    async def update_issue(self, input: UpdateIssue) -> IssueRef:
        async with self._client() as client:
            updated = await client.update_issue(
                input.issue_id,
                _without_none(
                    {
                        "title": input.title,
                        "description": input.description,
                        "priority": input.priority,
                        "labelIds": input.label_ids,
                        "stateId": input.state_id,
                        "assigneeId": input.assignee_id,
                    }
                ),
            )
        return _ref(updated)

    @durable.implements(create_comment)
    async def create_comment(self, input: CreateComment) -> CommentRef:
        async with self._client() as client:
            comment = await client.create_comment(
                {"id": input.id, "issueId": input.issue_id, "body": input.body}
            )
        return CommentRef(id=comment["id"], url=comment.get("url") or "")

    @durable.implements(list_issues)
    async def list_issues(self, input: ListIssues) -> Issues:
        async with self._client() as client:
            found = await client.list_issues(
                team_id=input.team_id,
                project_id=input.project_id,
                updated_since=input.updated_since,
                limit=input.limit,
            )
        return Issues(issues=[_summary(issue) for issue in found])

    @durable.implements(post_agent_activity)
    async def post_agent_activity(self, input: PostAgentActivity) -> AgentActivityRef:
        async with self._client() as client:
            made = await client.create_agent_activity(
                {"id": input.id, "agentSessionId": input.agent_session_id, "content": input.content}
            )
        return AgentActivityRef(id=made["id"])

    async def post_progress(self, progress: Any) -> None:
        """The agent-session progress hook: post a progress line to the Linear agent session
        the work answers, as a thought. Its id derives from the session, attempt and line, so
        a repeated call posts it once. Lines of sessions with no Linear session are skipped."""
        if not progress.linear_agent_session_id:
            return
        key = f"{progress.session_id}/{progress.attempt}/{progress.seq}"
        async with self._client(progress.tenancy.org_id) as client:
            await client.create_agent_activity(
                {
                    "id": str(uuid.uuid5(uuid.NAMESPACE_URL, key)),
                    "agentSessionId": progress.linear_agent_session_id,
                    "content": {"type": "thought", "body": progress.line},
                }
            )

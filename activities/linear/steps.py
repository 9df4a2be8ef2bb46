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
from .marks import REVIEW_LABEL, ensure_team_labels, is_marked, with_review_note


class IssueRef(BaseModel):
    id: str
    identifier: str = ""
    title: str = ""
    url: str = ""
    state: str = ""


class IssueSummary(IssueRef):
    state_type: str = ""  # backlog, unstarted, started, completed, canceled
    description: str = ""
    priority: int = 0
    labels: list[str] = []
    assignee: str = ""
    team_id: str = ""
    project_id: str = ""
    updated_at: str = ""

    @property
    def marked_review(self) -> bool:
        """One of the product's own review issues (see `marks`): never backlog."""
        return is_marked(self.labels, self.description)


class CreateIssue(BaseModel):
    id: str = Field(description="A UUID made by the workflow (ctx.uuid()): the idempotency key")
    team_id: str
    title: str
    description: str = ""
    priority: int | None = None
    label_ids: list[str] = []
    state_id: str | None = None
    project_id: str | None = None
    review: bool = Field(
        False,
        description="The product's own review issue: marked (label durable:review and a note) "
        "so that triage and sweeps leave it alone",
    )


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
    exclude_reviews: bool = Field(
        False, description="Leave out the product's own review issues (see `marks`)"
    )


class Issues(BaseModel):
    issues: list[IssueSummary]


class GetIssues(BaseModel):
    ids: list[str] = Field(description="Issue ids or identifiers such as ENG-12")


class FoundIssues(Issues):
    missing: list[str] = []  # ids Linear does not know (deleted, or never made)


class TeamQuery(BaseModel):
    team: str = Field("", description="A team key (ENG) or id; empty: the first team")


class Member(BaseModel):
    id: str
    name: str
    app: bool = False  # an app user (an agent), not a person


class Label(BaseModel):
    id: str
    name: str


class State(BaseModel):
    id: str
    name: str
    type: str


class Team(BaseModel):
    id: str
    key: str
    name: str
    members: list[Member] = []
    labels: list[Label] = []
    states: list[State] = []

    def state(self, *types: str) -> State | None:
        """The first state of the first of `types` that the team has (e.g. "canceled")."""
        for kind in types:
            for state in self.states:
                if state.type == kind:
                    return state
        return None

    def member(self, name: str) -> Member | None:
        """A member by name or display name, ignoring case."""
        wanted = name.strip().lower()
        return next((m for m in self.members if m.name.lower() == wanted), None)


class EnsureLabels(BaseModel):
    team_id: str
    names: list[str]


class Labels(BaseModel):
    labels: list[Label]


class ListProjects(BaseModel):
    pass


class Project(BaseModel):
    id: str
    name: str
    description: str = ""
    state: str = ""


class Projects(BaseModel):
    projects: list[Project]


class CreateProjectUpdate(BaseModel):
    id: str = Field(description="A UUID made by the workflow: the idempotency key")
    project_id: str
    body: str = Field(description="Markdown")
    health: str = Field("onTrack", description="onTrack, atRisk or offTrack")


class ProjectUpdateRef(BaseModel):
    id: str
    url: str = ""
    project_id: str = ""


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
get_issues = durable.declare_activity("linear.get-issues", GetIssues, FoundIssues, timeout="2m")
get_team = durable.declare_activity("linear.team", TeamQuery, Team)
ensure_labels = durable.declare_activity("linear.ensure-labels", EnsureLabels, Labels)
list_projects = durable.declare_activity("linear.list-projects", ListProjects, Projects)
create_project_update = durable.declare_activity(
    "linear.create-project-update", CreateProjectUpdate, ProjectUpdateRef
)
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
        state_type=(issue.get("state") or {}).get("type", ""),
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

    @property
    def orgs(self) -> list[str]:
        """The orgs these steps have a Linear credential for."""
        return self._credentials.orgs

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
        """Create the issue; a review issue carries the review label (made if the team lacks
        it) and the review note, from its first version on."""
        description, label_ids = input.description, list(input.label_ids)
        async with self._client() as client:
            if input.review:
                org = durable.activity_context().info.tenancy.org_id
                (label,) = await ensure_team_labels(client, org, input.team_id, [REVIEW_LABEL])
                description = with_review_note(description)
                label_ids = list(dict.fromkeys([*label_ids, label["id"]]))
            created = await client.create_issue(
                _without_none(
                    {
                        "id": input.id,
                        "teamId": input.team_id,
                        "title": input.title,
                        "description": description,
                        "priority": input.priority,
                        "labelIds": label_ids or None,
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
                without_label=REVIEW_LABEL if input.exclude_reviews else None,
                limit=input.limit,
            )
        issues = [_summary(issue) for issue in found]
        if input.exclude_reviews:
            # Once more on what came back: the note marks an issue whose label was removed.
            issues = [issue for issue in issues if not issue.marked_review]
        return Issues(issues=issues)

    @durable.implements(get_issues)
    async def get_issues(self, input: GetIssues) -> FoundIssues:
        found: list[IssueSummary] = []
        missing: list[str] = []
        async with self._client() as client:
            for issue_id in input.ids:
                issue = await client.issue(issue_id)
                if issue is None:
                    missing.append(issue_id)
                else:
                    found.append(_summary(issue))
        return FoundIssues(issues=found, missing=missing)

    @durable.implements(get_team)
    async def get_team(self, input: TeamQuery) -> Team:
        async with self._client() as client:
            teams = await client.teams()
            wanted = input.team.strip()
            team = next(
                (t for t in teams if not wanted or wanted in (t["id"], t["key"])),
                None,
            )
            if team is None:
                known = ", ".join(t["key"] for t in teams) or "none"
                raise durable.NonRetryableError(
                    f"Linear has no team {wanted!r} in this org (teams: {known})",
                    kind="LinearTeamNotFound",
                )
            states = await client.workflow_states(team["id"])
            labels = await client.labels(team["id"])
        members = [
            Member(id=m["id"], name=m["name"], app=bool(m.get("app")))
            for m in team["members"]["nodes"]
            if m.get("active", True)
        ]
        return Team(
            id=team["id"],
            key=team["key"],
            name=team["name"],
            members=members,
            labels=[Label(id=label["id"], name=label["name"]) for label in labels],
            states=[
                State(id=st["id"], name=st["name"], type=st["type"])
                for st in sorted(states, key=lambda st: st.get("position") or 0)
            ],
        )

    @durable.implements(ensure_labels)
    async def ensure_labels(self, input: EnsureLabels) -> Labels:
        """The labels named, by name (ignoring case), creating those the team lacks. A label
        created here has an id derived from org, team and name, so a retry finds it."""
        org = durable.activity_context().info.tenancy.org_id
        async with self._client() as client:
            found = await ensure_team_labels(client, org, input.team_id, input.names)
        return Labels(labels=[Label(id=label["id"], name=label["name"]) for label in found])

    @durable.implements(list_projects)
    async def list_projects(self, input: ListProjects) -> Projects:
        async with self._client() as client:
            found = await client.projects()
        return Projects(
            projects=[
                Project(
                    id=p["id"],
                    name=p["name"],
                    description=p.get("description") or "",
                    state=p.get("state") or "",
                )
                for p in found
            ]
        )

    @durable.implements(create_project_update)
    async def create_project_update(self, input: CreateProjectUpdate) -> ProjectUpdateRef:
        async with self._client() as client:
            made = await client.create_project_update(
                {
                    "id": input.id,
                    "projectId": input.project_id,
                    "body": input.body,
                    "health": input.health,
                }
            )
        return ProjectUpdateRef(
            id=made["id"], url=made.get("url") or "", project_id=made["project"]["id"]
        )

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

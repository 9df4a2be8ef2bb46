"""The root queries the local Linear server answers, and the relations and computed fields of
the records they return. Importing this module registers them in `local_resolve.FIELDS`."""

from __future__ import annotations

from typing import Any

from .local_errors import not_found
from .local_resolve import Context, field, to_many, to_one
from .local_state import Record, slug

PRIORITY_LABELS = {0: "No priority", 1: "Urgent", 2: "High", 3: "Medium", 4: "Low"}

# --- root queries -----------------------------------------------------------------------------


@field("Query", "viewer", "User")
def _viewer(ctx: Context, src: Any, args: dict[str, Any]) -> Record:
    return ctx.viewer


@field("Query", "organization")
def _organization(ctx: Context, src: Any, args: dict[str, Any]) -> Record:
    return ctx.ws.organization


def _listing(name: str, kind: str) -> None:
    field("Query", name, kind)(lambda ctx, src, args: ctx.ws.all(kind))


def _single(name: str, kind: str) -> None:
    field("Query", name, kind)(lambda ctx, src, args: ctx.ws.get(kind, args.get("id")))


for _name, _kind in (
    ("teams", "Team"),
    ("issues", "Issue"),
    ("workflowStates", "WorkflowState"),
    ("issueLabels", "IssueLabel"),
    ("projects", "Project"),
    ("users", "User"),
    ("comments", "Comment"),
    ("agentSessions", "AgentSession"),
    ("agentActivities", "AgentActivity"),
    ("projectUpdates", "ProjectUpdate"),
):
    _listing(_name, _kind)

for _name, _kind in (
    ("workflowState", "WorkflowState"),
    ("issueLabel", "IssueLabel"),
    ("project", "Project"),
    ("user", "User"),
    ("comment", "Comment"),
    ("agentSession", "AgentSession"),
    ("agentActivity", "AgentActivity"),
    ("projectUpdate", "ProjectUpdate"),
):
    _single(_name, _kind)


@field("Query", "issue", "Issue")
def _issue(ctx: Context, src: Any, args: dict[str, Any]) -> Record:
    return ctx.ws.issue(args["id"])


@field("Query", "team", "Team")
def _team(ctx: Context, src: Any, args: dict[str, Any]) -> Record:
    wanted = args["id"]
    for team in ctx.ws.all("Team"):
        if wanted in (team["id"], team["key"]):
            return team
    raise not_found("Team")


@field("Query", "issuePriorityValues")
def _priorities(ctx: Context, src: Any, args: dict[str, Any]) -> list[Record]:
    return [{"priority": value, "label": label} for value, label in PRIORITY_LABELS.items()]


# --- relations --------------------------------------------------------------------------------

to_one("Issue", "team", "Team", "teamId")
to_one("Issue", "state", "WorkflowState", "stateId")
to_one("Issue", "project", "Project", "projectId")
to_one("Issue", "assignee", "User", "assigneeId")
to_one("Issue", "creator", "User", "creatorId")
to_one("Issue", "parent", "Issue", "parentId")
to_many("Issue", "labels", "IssueLabel", lambda issue, label: label["id"] in issue["labelIds"])
to_many("Issue", "comments", "Comment", lambda issue, c: c["issueId"] == issue["id"])
to_many("Issue", "children", "Issue", lambda issue, child: child["parentId"] == issue["id"])
to_many("Issue", "agentSessions", "AgentSession", lambda i, s: s["issueId"] == i["id"])

to_many("Team", "states", "WorkflowState", lambda team, state: state["teamId"] == team["id"])
to_many("Team", "issues", "Issue", lambda team, issue: issue["teamId"] == team["id"])
# A team's own labels; workspace labels (no team) are not among them.
to_many("Team", "labels", "IssueLabel", lambda team, label: label["teamId"] == team["id"])
to_many("Team", "projects", "Project", lambda team, p: team["id"] in p["teamIds"])
to_many("Team", "members", "User", lambda team, user: user["id"] in team["memberIds"])
to_one("Team", "defaultIssueState", "WorkflowState", "defaultIssueStateId")

to_one("WorkflowState", "team", "Team", "teamId")
to_many("WorkflowState", "issues", "Issue", lambda s, issue: issue["stateId"] == s["id"])

to_one("IssueLabel", "team", "Team", "teamId")
to_one("IssueLabel", "parent", "IssueLabel", "parentId")
to_many("IssueLabel", "issues", "Issue", lambda label, i: label["id"] in i["labelIds"])
to_many("IssueLabel", "children", "IssueLabel", lambda label, c: c["parentId"] == label["id"])

to_many("Project", "teams", "Team", lambda project, team: team["id"] in project["teamIds"])
to_many("Project", "issues", "Issue", lambda project, i: i["projectId"] == project["id"])
to_one("Project", "lead", "User", "leadId")

to_many("User", "assignedIssues", "Issue", lambda user, i: i["assigneeId"] == user["id"])
to_many("User", "createdIssues", "Issue", lambda user, i: i["creatorId"] == user["id"])
to_many("User", "teams", "Team", lambda user, team: user["id"] in team["memberIds"])

to_one("Comment", "issue", "Issue", "issueId")
to_one("Comment", "user", "User", "userId")
to_one("Comment", "parent", "Comment", "parentId")
to_many("Comment", "children", "Comment", lambda c, child: child["parentId"] == c["id"])

to_one("AgentSession", "issue", "Issue", "issueId")
to_one("AgentSession", "comment", "Comment", "commentId")
to_one("AgentSession", "appUser", "User", "appUserId")
to_one("AgentSession", "creator", "User", "creatorId")
to_many("AgentSession", "activities", "AgentActivity", lambda s, a: a["agentSessionId"] == s["id"])

to_one("ProjectUpdate", "project", "Project", "projectId")
to_one("ProjectUpdate", "user", "User", "userId")
to_many(
    "Project", "projectUpdates", "ProjectUpdate", lambda project, u: u["projectId"] == project["id"]
)

to_one("AgentActivity", "agentSession", "AgentSession", "agentSessionId")
to_one("AgentActivity", "user", "User", "userId")
to_one("AgentActivity", "sourceComment", "Comment", "sourceCommentId")

for _parent in ("Organization", "Team", "User", "IssueLabel"):
    field(_parent, "organization")(lambda ctx, src, args: ctx.ws.organization)
field("Organization", "teams", "Team")(lambda ctx, src, args: ctx.ws.all("Team"))
field("Organization", "users", "User")(lambda ctx, src, args: ctx.ws.all("User"))
field("Organization", "labels", "IssueLabel")(lambda ctx, src, args: ctx.ws.all("IssueLabel"))

# --- computed fields --------------------------------------------------------------------------


def _url(kind: str) -> None:
    field(kind, "url")(lambda ctx, src, args: ctx.ws.url(kind, src))


for _kind in ("Issue", "Comment", "Project", "Team", "User", "AgentSession", "ProjectUpdate"):
    _url(_kind)


@field("Issue", "priorityLabel")
def _priority_label(ctx: Context, src: Record, args: dict[str, Any]) -> str:
    return PRIORITY_LABELS.get(src["priority"], "No priority")


@field("Issue", "branchName")
def _branch_name(ctx: Context, src: Record, args: dict[str, Any]) -> str:
    return f"{src['identifier'].lower()}-{slug(src['title'])}"


@field("Team", "issueCount")
def _issue_count(ctx: Context, src: Record, args: dict[str, Any]) -> int:
    return sum(issue["teamId"] == src["id"] for issue in ctx.ws.all("Issue"))


@field("Team", "displayName")
def _team_display_name(ctx: Context, src: Record, args: dict[str, Any]) -> str:
    return str(src["name"])


@field("User", "isMe")
def _is_me(ctx: Context, src: Record, args: dict[str, Any]) -> bool:
    return bool(src["id"] == ctx.viewer_id)


@field("Organization", "userCount")
def _user_count(ctx: Context, src: Record, args: dict[str, Any]) -> int:
    return len(ctx.ws.all("User"))


@field("AgentActivity", "content")
def _content(ctx: Context, src: Record, args: dict[str, Any]) -> Record:
    """The content union: the member type is named after the content's `type`."""
    content = dict(src["content"])
    content["__typename"] = f"AgentActivity{str(content['type']).title()}Content"
    return content

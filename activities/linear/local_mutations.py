"""The mutations the local Linear server performs. Importing this module registers them in
`local_resolve.FIELDS`.

Creates honour a client-supplied `input.id` (a UUID); a second create with an id already
taken fails with `local_errors.already_exists` and changes nothing.
"""

from __future__ import annotations

from typing import Any

from .local_errors import invalid_input
from .local_resolve import Context, field
from .local_state import Record, Workspace, apply_state_dates, new_issue

ACTIVITY_TYPES = ("thought", "action", "elicitation", "response", "error", "prompt")
# What an activity of each type does to its session's status, as in Linear.
_SESSION_STATUS = {
    "thought": "active",
    "action": "active",
    "elicitation": "awaitingInput",
    "response": "complete",
    "error": "error",
}


def _payload(ws: Workspace, name: str, record: Record) -> dict[str, Any]:
    return {"success": True, "lastSyncId": float(ws.sync_id), name: record}


def _check_priority(priority: Any) -> int:
    if priority is None:
        return 0
    if priority not in range(5):
        raise invalid_input("priority must be 0 (none), 1 (urgent), 2, 3 or 4 (low)")
    return int(priority)


def _team_state(ws: Workspace, team: Record, state_id: str) -> str:
    if ws.get("WorkflowState", state_id)["teamId"] != team["id"]:
        raise invalid_input("the workflow state does not belong to the issue's team")
    return state_id


def _labels(ws: Workspace, label_ids: list[str]) -> list[str]:
    for label_id in label_ids:
        ws.get("IssueLabel", label_id)
    return list(dict.fromkeys(label_ids))


def _next_number(ws: Workspace, team: Record) -> int:
    return 1 + max((i["number"] for i in ws.all("Issue") if i["teamId"] == team["id"]), default=0)


@field("Mutation", "issueCreate")
def issue_create(ctx: Context, src: Any, args: dict[str, Any]) -> dict[str, Any]:
    ws, input = ctx.ws, args["input"]
    team = ws.get("Team", input["teamId"])
    issue_id = ws.new_id("Issue", input.get("id"))
    title = (input.get("title") or "").strip()
    if not title:
        raise invalid_input("title must not be empty")
    state_id = input.get("stateId") or team["defaultIssueStateId"]
    for key, kind in (("assigneeId", "User"), ("projectId", "Project"), ("parentId", "Issue")):
        if input.get(key):
            ws.get(kind, input[key])
    record = new_issue(
        ws,
        id=issue_id,
        team=team,
        number=_next_number(ws, team),
        title=title,
        description=input.get("description"),
        priority=_check_priority(input.get("priority")),
        state_id=_team_state(ws, team, state_id),
        label_ids=_labels(ws, input.get("labelIds") or []),
        assignee_id=input.get("assigneeId"),
        project_id=input.get("projectId"),
        creator_id=ctx.viewer_id,
        created_at=input.get("createdAt") or ws.now(),
    )
    for key in ("parentId", "dueDate", "estimate", "sortOrder"):
        if input.get(key) is not None:
            record[key] = input[key]
    apply_state_dates(ws, record, at=record["createdAt"])
    return _payload(ws, "issue", ws.add("Issue", record))


@field("Mutation", "issueUpdate")
def issue_update(ctx: Context, src: Any, args: dict[str, Any]) -> dict[str, Any]:
    ws, changes = ctx.ws, dict(args["input"])
    issue = ws.issue(args["id"])
    # Check everything first: a refused update changes nothing.
    if "title" in changes and not (changes["title"] or "").strip():
        raise invalid_input("title must not be empty")
    if "priority" in changes:
        changes["priority"] = _check_priority(changes["priority"])
    team = ws.get("Team", changes.pop("teamId", None) or issue["teamId"])
    moved = team["id"] != issue["teamId"]
    if moved and not changes.get("stateId"):
        changes["stateId"] = team["defaultIssueStateId"]
    if changes.get("stateId"):
        _team_state(ws, team, changes["stateId"])
    elif "stateId" in changes:
        del changes["stateId"]
    for key, kind in (("assigneeId", "User"), ("projectId", "Project"), ("parentId", "Issue")):
        if changes.get(key):
            ws.get(kind, changes[key])
    labels = list(issue["labelIds"])
    if "labelIds" in changes:
        labels = _labels(ws, changes.pop("labelIds") or [])
    labels += _labels(ws, changes.pop("addedLabelIds", None) or [])
    removed = set(changes.pop("removedLabelIds", None) or [])
    state_changed = "stateId" in changes and changes["stateId"] != issue["stateId"]

    if moved:
        issue["number"] = _next_number(ws, team)
        issue["identifier"] = f"{team['key']}-{issue['number']}"
        issue["teamId"] = team["id"]
    issue["labelIds"] = [label for label in dict.fromkeys(labels) if label not in removed]
    issue.update(changes)
    ws.touch(issue)
    if state_changed:
        apply_state_dates(ws, issue, at=issue["updatedAt"])
    return _payload(ws, "issue", issue)


@field("Mutation", "commentCreate")
def comment_create(ctx: Context, src: Any, args: dict[str, Any]) -> dict[str, Any]:
    ws, input = ctx.ws, args["input"]
    if not input.get("issueId"):
        raise invalid_input("issueId is required (the local server keeps comments on issues)")
    issue = ws.issue(input["issueId"])
    comment_id = ws.new_id("Comment", input.get("id"))
    body = input.get("body") or ""
    if not body.strip():
        raise invalid_input("body must not be empty")
    if input.get("parentId"):
        ws.get("Comment", input["parentId"])
    now = input.get("createdAt") or ws.now()
    record = {
        "id": comment_id,
        "body": body,
        "issueId": issue["id"],
        "parentId": input.get("parentId"),
        "userId": ctx.viewer_id,
        "quotedText": input.get("quotedText"),
        "createdAt": now,
        "updatedAt": now,
        "editedAt": None,
    }
    return _payload(ws, "comment", ws.add("Comment", record))


@field("Mutation", "issueLabelCreate")
def issue_label_create(ctx: Context, src: Any, args: dict[str, Any]) -> dict[str, Any]:
    ws, input = ctx.ws, args["input"]
    label_id = ws.new_id("IssueLabel", input.get("id"))
    name = (input.get("name") or "").strip()
    team_id = input.get("teamId")
    if team_id:
        ws.get("Team", team_id)
    if not name:
        raise invalid_input("name must not be empty")
    if any(
        label["name"].casefold() == name.casefold() and label["teamId"] in (None, team_id)
        for label in ws.all("IssueLabel")
    ):
        raise invalid_input(f"a label named {name!r} already exists")
    if input.get("parentId"):
        ws.get("IssueLabel", input["parentId"])
    now = ws.now()
    record = {
        "id": label_id,
        "name": name,
        "color": input.get("color") or "#bec2c8",
        "description": input.get("description"),
        "isGroup": bool(input.get("isGroup")),
        "teamId": team_id,
        "parentId": input.get("parentId"),
        "createdAt": now,
        "updatedAt": now,
    }
    return _payload(ws, "issueLabel", ws.add("IssueLabel", record))


def open_agent_session(
    ws: Workspace, issue_id: str, creator_id: str | None, session_id: str | None = None
) -> Record:
    """A new agent session on an issue, run by the workspace's app user (the agent), as Linear
    makes when someone delegates an issue to the agent or mentions it."""
    issue = ws.issue(issue_id)
    app = next((user for user in ws.all("User") if user["app"]), None)
    if app is None:
        raise invalid_input("this workspace has no app user to run an agent session")
    new_id = ws.new_id("AgentSession", session_id)
    now = ws.now()
    record = {
        "id": new_id,
        "issueId": issue["id"],
        "commentId": None,
        "appUserId": app["id"],
        "creatorId": creator_id,
        "status": "pending",
        "type": "commentThread",
        "slugId": new_id.replace("-", "")[:12],
        "plan": None,
        "externalLink": None,
        "externalUrls": [],
        "context": {},
        "summary": None,
        "createdAt": now,
        "updatedAt": now,
        "startedAt": None,
        "endedAt": None,
        "dismissedAt": None,
    }
    return ws.add("AgentSession", record)


@field("Mutation", "agentSessionCreateOnIssue")
def agent_session_create_on_issue(ctx: Context, src: Any, args: dict[str, Any]) -> dict[str, Any]:
    input = args["input"]
    session = open_agent_session(ctx.ws, input["issueId"], ctx.viewer_id)
    if input.get("externalLink"):
        session["externalLink"] = input["externalLink"]
    session["externalUrls"] = list(input.get("externalUrls") or [])
    return _payload(ctx.ws, "agentSession", session)


@field("Mutation", "agentSessionUpdate")
def agent_session_update(ctx: Context, src: Any, args: dict[str, Any]) -> dict[str, Any]:
    ws, input = ctx.ws, args["input"]
    session = ws.get("AgentSession", args["id"])
    for key in ("plan", "externalLink", "dismissedAt"):
        if key in input:
            session[key] = input[key]
    urls: list[dict[str, Any]] = list(session["externalUrls"])
    if "externalUrls" in input:
        urls = list(input["externalUrls"] or [])
    urls += list(input.get("addedExternalUrls") or [])
    removed = set(input.get("removedExternalUrls") or [])
    session["externalUrls"] = [url for url in urls if url["url"] not in removed]
    ws.touch(session)
    return _payload(ws, "agentSession", session)


def _check_content(content: Any) -> dict[str, Any]:
    if not isinstance(content, dict) or content.get("type") not in ACTIVITY_TYPES:
        raise invalid_input(f"content.type must be one of {', '.join(ACTIVITY_TYPES)}")
    if content["type"] == "action":
        if not content.get("action") or content.get("parameter") is None:
            raise invalid_input("an action activity needs content.action and content.parameter")
    elif not isinstance(content.get("body"), str) or not content["body"].strip():
        raise invalid_input(f"a {content['type']} activity needs a non-empty content.body")
    return dict(content)


@field("Mutation", "agentActivityCreate")
def agent_activity_create(ctx: Context, src: Any, args: dict[str, Any]) -> dict[str, Any]:
    ws, input = ctx.ws, args["input"]
    session = ws.get("AgentSession", input["agentSessionId"])
    activity_id = ws.new_id("AgentActivity", input.get("id"))
    content = _check_content(input["content"])
    now = ws.now()
    record = {
        "id": activity_id,
        "agentSessionId": session["id"],
        "content": content,
        "ephemeral": bool(input.get("ephemeral")),
        "signal": input.get("signal"),
        "signalMetadata": input.get("signalMetadata"),
        "contextualMetadata": input.get("contextualMetadata"),
        "userId": session["appUserId"],
        "sourceCommentId": None,
        "createdAt": now,
        "updatedAt": now,
    }
    ws.add("AgentActivity", record)
    status = _SESSION_STATUS.get(content["type"])
    if status is not None:
        session["status"] = status
        if status == "active" and not session["startedAt"]:
            session["startedAt"] = now
        if status in ("complete", "error"):
            session["endedAt"] = now
        ws.touch(session)
    return _payload(ws, "agentActivity", record)


_HEALTH = ("onTrack", "atRisk", "offTrack")


@field("Mutation", "projectUpdateCreate")
def project_update_create(ctx: Context, src: Any, args: dict[str, Any]) -> dict[str, Any]:
    ws, input = ctx.ws, args["input"]
    project = ws.get("Project", input.get("projectId"))
    update_id = ws.new_id("ProjectUpdate", input.get("id"))
    body = input.get("body") or ""
    if not body.strip():
        raise invalid_input("body must not be empty")
    health = input.get("health") or "onTrack"
    if health not in _HEALTH:
        raise invalid_input(f"health must be one of {', '.join(_HEALTH)}")
    now = ws.now()
    record = {
        "id": update_id,
        "body": body,
        "health": health,
        "projectId": project["id"],
        "userId": ctx.viewer_id,
        "slugId": update_id.replace("-", "")[:12],
        "isDiffHidden": bool(input.get("isDiffHidden")),
        "createdAt": now,
        "updatedAt": now,
        "editedAt": None,
    }
    ws.touch(project)
    return _payload(ws, "projectUpdate", ws.add("ProjectUpdate", record))

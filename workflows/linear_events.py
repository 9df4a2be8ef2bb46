"""Events that Linear's webhooks become (`POST /webhooks/linear`, see `api.webhooks`).

Each model keeps the fields workflows match and branch on, typed, and the Linear object it is
about as Linear sent it (`raw`), for the rest. Fields have defaults where Linear may leave them
out, so a payload with fewer fields (or an event stored before a field was added) still decodes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from pydantic import BaseModel

import durable


class LinearActor(BaseModel):
    """Who made the change: a user, an OAuth app, an integration (Linear's `actor.type`)."""

    id: str = ""
    name: str = ""
    type: str = ""


class LinearChange(BaseModel):
    """What every Linear webhook event carries.

    Attributes:
        action: Linear's action (`create`, `update`, `remove`; `created`, `prompted` for agent
            sessions).
        organization_id: The Linear workspace; also the event's `tenancy.org_id`.
        webhook_id: The Linear webhook that sent it.
        webhook_timestamp: When Linear sent it, Unix milliseconds (checked on receipt).
        created_at: When the change happened, by Linear's clock.
        url: The entity in Linear's app.
        actor: Who made the change, when Linear says.
        raw: The Linear object the event is about, as sent; empty if it had to be dropped to
            keep the event under 256 KiB (`raw_dropped`).
    """

    action: str
    organization_id: str
    webhook_id: str = ""
    webhook_timestamp: int = 0
    created_at: datetime | None = None
    url: str = ""
    actor: LinearActor | None = None
    raw: dict[str, Any] = {}
    raw_dropped: bool = False


class LinearIssue(LinearChange):
    """An issue was created, updated or removed.

    Attributes:
        changed: The fields an update changed (the keys of Linear's `updatedFrom`).
        updated_from: Their values before the update.
    """

    issue_id: str
    identifier: str = ""
    title: str = ""
    team_id: str = ""
    state_id: str = ""
    state: str = ""  # the workflow state's name, e.g. "In Progress"
    state_type: str = ""  # backlog, unstarted, started, completed, canceled, triage
    assignee_id: str = ""
    delegate_id: str = ""  # the agent the issue is delegated to, if any
    changed: list[str] = []
    updated_from: dict[str, Any] = {}


class LinearComment(LinearChange):
    """A comment was made on an issue (or on another comment: `parent_id`)."""

    comment_id: str
    issue_id: str = ""
    identifier: str = ""
    title: str = ""  # the issue's
    team_id: str = ""
    body: str = ""
    user_id: str = ""
    parent_id: str = ""


class LinearAgentSession(LinearChange):
    """An agent session was created for our agent (mentioned, or delegated an issue), or a
    user prompted it again.

    Attributes:
        prompt_context: Linear's ready-made context for the agent (issue, comments, guidance);
            on `created` only.
        prompt: What the user wrote; on `prompted` only.
        signal: The prompt's signal, e.g. `stop`; on `prompted` only.
    """

    session_id: str
    issue_id: str = ""
    identifier: str = ""
    title: str = ""
    team_id: str = ""
    comment_id: str = ""
    status: str = ""
    app_user_id: str = ""
    prompt_context: str = ""
    activity_id: str = ""
    prompt: str = ""
    signal: str = ""


class LinearIssueCreated(durable.Event[LinearIssue]):
    type: ClassVar[str] = "linear/issue.created"


class LinearIssueUpdated(durable.Event[LinearIssue]):
    type: ClassVar[str] = "linear/issue.updated"


class LinearIssueRemoved(durable.Event[LinearIssue]):
    type: ClassVar[str] = "linear/issue.removed"


class LinearCommentCreated(durable.Event[LinearComment]):
    type: ClassVar[str] = "linear/comment.created"


class LinearAgentSessionCreated(durable.Event[LinearAgentSession]):
    type: ClassVar[str] = "linear/agent-session.created"


class LinearAgentSessionPrompted(durable.Event[LinearAgentSession]):
    type: ClassVar[str] = "linear/agent-session.prompted"


# (Linear's `type`, Linear's `action`) -> the event it becomes. Anything else is acknowledged
# and ignored (see api.webhooks).
WEBHOOK_EVENTS: dict[tuple[str, str], type[durable.Event[Any]]] = {
    ("Issue", "create"): LinearIssueCreated,
    ("Issue", "update"): LinearIssueUpdated,
    ("Issue", "remove"): LinearIssueRemoved,
    ("Comment", "create"): LinearCommentCreated,
    ("AgentSessionEvent", "created"): LinearAgentSessionCreated,
    ("AgentSessionEvent", "prompted"): LinearAgentSessionPrompted,
}

LINEAR_EVENTS: list[type[durable.Event[Any]]] = list(WEBHOOK_EVENTS.values())


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _common(payload: dict[str, Any]) -> dict[str, Any]:
    actor = payload.get("actor")
    sent = payload.get("webhookTimestamp")
    return {
        "action": payload.get("action"),
        "organization_id": payload.get("organizationId"),
        "webhook_id": _str(payload.get("webhookId")),
        "webhook_timestamp": int(sent) if isinstance(sent, int | float) else 0,
        "created_at": payload.get("createdAt"),
        "url": _str(payload.get("url")),
        "actor": actor if isinstance(actor, dict) else None,
    }


def _issue(payload: dict[str, Any]) -> dict[str, Any]:
    data = _obj(payload.get("data"))
    state = _obj(data.get("state"))
    updated_from = _obj(payload.get("updatedFrom"))
    return {
        **_common(payload),
        "url": _str(payload.get("url")) or _str(data.get("url")),
        "raw": data,
        "issue_id": data.get("id"),
        "identifier": _str(data.get("identifier")),
        "title": _str(data.get("title")),
        "team_id": _str(data.get("teamId")),
        "state_id": _str(data.get("stateId")),
        "state": _str(state.get("name")),
        "state_type": _str(state.get("type")),
        "assignee_id": _str(data.get("assigneeId")),
        "delegate_id": _str(data.get("delegateId")),
        "changed": sorted(updated_from),
        "updated_from": updated_from,
    }


def _comment(payload: dict[str, Any]) -> dict[str, Any]:
    data = _obj(payload.get("data"))
    issue = _obj(data.get("issue"))
    return {
        **_common(payload),
        "raw": data,
        "comment_id": data.get("id"),
        "issue_id": _str(data.get("issueId")) or _str(issue.get("id")),
        "identifier": _str(issue.get("identifier")),
        "title": _str(issue.get("title")),
        "team_id": _str(issue.get("teamId")),
        "body": _str(data.get("body")),
        "user_id": _str(data.get("userId")),
        "parent_id": _str(data.get("parentId")),
    }


def _agent_session(payload: dict[str, Any]) -> dict[str, Any]:
    session = _obj(payload.get("agentSession"))
    issue = _obj(session.get("issue"))
    activity = _obj(payload.get("agentActivity"))
    creator = session.get("creator")
    return {
        **_common(payload),
        "url": _str(session.get("url")),
        # An agent session names the human responsible, not an `actor`.
        "actor": {**creator, "type": "user"} if isinstance(creator, dict) else None,
        "raw": session,
        "session_id": session.get("id"),
        "issue_id": _str(session.get("issueId")) or _str(issue.get("id")),
        "identifier": _str(issue.get("identifier")),
        "title": _str(issue.get("title")),
        "team_id": _str(issue.get("teamId")),
        "comment_id": _str(session.get("commentId")),
        "status": _str(session.get("status")),
        "app_user_id": _str(payload.get("appUserId")) or _str(session.get("appUserId")),
        "prompt_context": _str(payload.get("promptContext")),
        "activity_id": _str(activity.get("id")),
        "prompt": _str(_obj(activity.get("content")).get("body")),
        "signal": _str(activity.get("signal")),
    }


_FIELDS = {"Issue": _issue, "Comment": _comment, "AgentSessionEvent": _agent_session}


def webhook_data(payload: dict[str, Any]) -> dict[str, Any]:
    """The event data (unvalidated) for a Linear webhook payload whose `(type, action)` is in
    `WEBHOOK_EVENTS`: validate it with the event type's model."""
    return _FIELDS[payload["type"]](payload)

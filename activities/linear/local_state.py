"""One Linear workspace held in memory: records keyed by their GraphQL type name, with the
field names of Linear's schema (camelCase), references held as ids (`teamId`, `stateId`, ...).

Each org the local server knows gets its own workspace, seeded by `local_seed` with the same
realistic team, whose ids are derived from the org id (so they are stable across restarts and
differ between orgs).
"""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from .local_errors import already_exists, invalid_input, not_found

Record = dict[str, Any]

# Type name -> the key of its list in a snapshot (the name of Linear's root query for it).
TABLES: dict[str, str] = {
    "Team": "teams",
    "WorkflowState": "workflowStates",
    "IssueLabel": "issueLabels",
    "Project": "projects",
    "User": "users",
    "Issue": "issues",
    "Comment": "comments",
    "AgentSession": "agentSessions",
    "AgentActivity": "agentActivities",
    "ProjectUpdate": "projectUpdates",
}

_SEED_NAMESPACE = uuid.UUID("5b6f0c8e-3f5e-4f53-9a53-4c0c3d3e8a11")
_IDENTIFIER = re.compile(r"^([A-Za-z][A-Za-z0-9]*)-(\d+)$")


def iso(moment: datetime) -> str:
    """Linear's DateTime format: UTC, milliseconds, `Z`."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60]


class Workspace:
    """The teams, issues, comments and agent activity of one org."""

    def __init__(
        self,
        org_id: str,
        base_url: Callable[[], str],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.org_id = org_id
        self._base_url = base_url
        self._clock = clock
        self.sync_id = 1
        self.tables: dict[str, dict[str, Record]] = {kind: {} for kind in TABLES}
        name = org_id.removeprefix("org-").replace("-", " ").replace("_", " ").title() or "Local"
        created = self._clock() - timedelta(days=400)
        self.organization: Record = {
            "id": self.seed_id("organization"),
            "name": name,
            "urlKey": slug(name) or "local",
            "createdAt": iso(created),
            "updatedAt": iso(created),
        }

    # --- time, ids, urls ----------------------------------------------------------------------

    def now(self) -> str:
        return iso(self._clock())

    def moment(self) -> datetime:
        return self._clock()

    def seed_id(self, name: str) -> str:
        return str(uuid.uuid5(_SEED_NAMESPACE, f"{self.org_id}/{name}"))

    @property
    def base_url(self) -> str:
        return f"{self._base_url().rstrip('/')}/{self.organization['urlKey']}"

    def url(self, kind: str, record: Record) -> str:
        if kind == "Issue":
            return f"{self.base_url}/issue/{record['identifier']}/{slug(record['title'])}"
        if kind == "Comment":
            issue = self.tables["Issue"].get(record.get("issueId") or "")
            parent = self.url("Issue", issue) if issue else self.base_url
            return f"{parent}#comment-{record['id'][:8]}"
        if kind == "Project":
            return f"{self.base_url}/project/{slug(record['name'])}-{record['slugId']}"
        if kind == "Team":
            return f"{self.base_url}/team/{record['key']}"
        if kind == "User":
            return f"{self.base_url}/profiles/{slug(record['name'])}"
        if kind == "AgentSession":
            return f"{self.base_url}/agent-session/{record['slugId']}"
        if kind == "ProjectUpdate":
            project = self.tables["Project"].get(record.get("projectId") or "")
            parent = self.url("Project", project) if project else self.base_url
            return f"{parent}/updates#project-update-{record['slugId']}"
        return self.base_url

    # --- reading ------------------------------------------------------------------------------

    def get(self, kind: str, id: str | None) -> Record:
        """A record by id; Linear's "Entity not found" error when there is none."""
        record = self.tables[kind].get(id or "")
        if record is None:
            raise not_found(kind)
        return record

    def find(self, kind: str, id: str | None) -> Record | None:
        return self.tables[kind].get(id or "") if id else None

    def issue(self, id_or_identifier: str) -> Record:
        """An issue by id or by identifier ("ENG-12", any case)."""
        found = self.tables["Issue"].get(id_or_identifier)
        if found is None and (match := _IDENTIFIER.match(id_or_identifier)):
            key, number = match.group(1).upper(), int(match.group(2))
            found = next(
                (
                    issue
                    for issue in self.tables["Issue"].values()
                    if issue["number"] == number
                    and self.tables["Team"][issue["teamId"]]["key"] == key
                ),
                None,
            )
        if found is None:
            raise not_found("Issue")
        return found

    def all(self, kind: str) -> list[Record]:
        return list(self.tables[kind].values())

    # --- writing ------------------------------------------------------------------------------

    def new_id(self, kind: str, supplied: str | None) -> str:
        """The id of a record about to be created: the client's own (a UUID, not yet taken)
        or a fresh UUID v4."""
        if supplied is None:
            return str(uuid.uuid4())
        try:
            parsed = uuid.UUID(supplied)
        except ValueError:
            raise invalid_input("id must be a UUID") from None
        if str(parsed) != supplied.lower():
            raise invalid_input("id must be a UUID in its canonical form")
        if supplied in self.tables[kind]:
            raise already_exists(kind, supplied)
        return supplied

    def add(self, kind: str, record: Record) -> Record:
        self.tables[kind][record["id"]] = record
        self.sync_id += 1
        return record

    def touch(self, record: Record) -> None:
        record["updatedAt"] = self.now()
        self.sync_id += 1

    # --- inspecting ---------------------------------------------------------------------------

    def issue_view(self, id_or_identifier: str) -> dict[str, Any]:
        """An issue with its url, comments, and agent sessions with their activities."""
        issue = copy.deepcopy(self.issue(id_or_identifier))
        issue["url"] = self.url("Issue", issue)
        issue["comments"] = [c for c in self.all("Comment") if c["issueId"] == issue["id"]]
        issue["agentSessions"] = [
            {
                **session,
                "activities": [
                    a for a in self.all("AgentActivity") if a["agentSessionId"] == session["id"]
                ],
            }
            for session in self.all("AgentSession")
            if session["issueId"] == issue["id"]
        ]
        return issue

    def snapshot(self) -> dict[str, Any]:
        """Everything, as JSON-ready data; issues and comments with their `url`."""
        out: dict[str, Any] = {
            "organization": copy.deepcopy(self.organization),
            "lastSyncId": self.sync_id,
        }
        for kind, key in TABLES.items():
            rows = copy.deepcopy(self.all(kind))
            if kind in ("Issue", "Comment", "AgentSession", "ProjectUpdate"):
                for row in rows:
                    row["url"] = self.url(kind, row)
            out[key] = rows
        return out


def new_issue(
    ws: Workspace,
    *,
    id: str,
    team: Record,
    number: int,
    title: str,
    description: str | None,
    priority: int,
    state_id: str,
    label_ids: list[str],
    assignee_id: str | None,
    project_id: str | None,
    creator_id: str | None,
    created_at: str,
) -> Record:
    return {
        "id": id,
        "identifier": f"{team['key']}-{number}",
        "number": number,
        "title": title,
        "description": description,
        "priority": priority,
        "estimate": None,
        "teamId": team["id"],
        "stateId": state_id,
        "labelIds": label_ids,
        "assigneeId": assignee_id,
        "projectId": project_id,
        "creatorId": creator_id,
        "parentId": None,
        "dueDate": None,
        "sortOrder": float(-number),
        "createdAt": created_at,
        "updatedAt": created_at,
        "startedAt": None,
        "completedAt": None,
        "canceledAt": None,
        "archivedAt": None,
    }


def apply_state_dates(ws: Workspace, issue: Record, at: str) -> None:
    """Set startedAt / completedAt / canceledAt the way Linear does on a state change."""
    kind = ws.get("WorkflowState", issue["stateId"])["type"]
    if kind in ("started", "completed") and not issue.get("startedAt"):
        issue["startedAt"] = at
    issue["completedAt"] = at if kind == "completed" else None
    issue["canceledAt"] = at if kind == "canceled" else None

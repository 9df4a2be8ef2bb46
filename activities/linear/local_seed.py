"""The workspace every org starts with: an Engineering team (key ENG) with Linear's default
workflow states, the labels Bug / Feature / Improvement, a project, two people and the app user
(the agent), and ten issues last updated at varied times over the past 30 days."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from .local_state import Workspace, apply_state_dates, iso, new_issue

_STATES = [  # name, type, color
    ("Backlog", "backlog", "#bec2c8"),
    ("Todo", "unstarted", "#e2e2e2"),
    ("In Progress", "started", "#f2c94c"),
    ("Done", "completed", "#5e6ad2"),
    ("Canceled", "canceled", "#95a2b3"),
]
_LABELS = [("Bug", "#eb5757"), ("Feature", "#bb87fc"), ("Improvement", "#4ea7fc")]
_USERS = [  # name, email, admin, app
    ("Ada Lovelace", "ada@{domain}", True, False),
    ("Grace Hopper", "grace@{domain}", False, False),
    ("Durable Agent", "agent@{domain}", False, True),
]
# title, label, state, priority, assignee (index into _USERS or None), in project,
# days since the last update, description
# fmt: off
_ISSUES: list[tuple[str, str, str, int, int | None, bool, float, str]] = [
    ("Webhook retries deliver the same event twice", "Bug", "In Progress", 1, 0, True, 1.0,
     "When the receiver answers slowly, the retry fires before the first delivery is "
     "acknowledged and the handler runs twice.\n\n**Expected:** one delivery per event id."),
    ("Add rate-limit backoff to the Linear sync", "Improvement", "Todo", 2, 1, True, 3.0,
     "The sync hammers the API after a `RATELIMITED` answer. Honour "
     "`X-RateLimit-Requests-Reset` and back off."),
    ("Onboarding checklist for new workspaces", "Feature", "Backlog", 3, None, False, 12.0,
     "A short checklist on first login: invite teammates, connect GitHub, create a project."),
    ("Search ignores the archived-projects filter", "Bug", "Done", 2, 1, False, 20.0,
     "Steps: archive a project, search for one of its issues with the filter on. "
     "The issue still shows."),
    ("Export issue history as CSV", "Feature", "Backlog", 4, None, False, 28.0,
     "Customers ask for a CSV of state changes per issue for their quarterly reports."),
    ("Slack notifications arrive out of order", "Bug", "Todo", 2, 0, False, 6.0,
     "Two quick state changes post to Slack in reverse order about one time in ten."),
    ("Speed up the issues list for large teams", "Improvement", "In Progress", 3, 1, True, 2.0,
     "Teams with 20k+ issues wait 4 s for the list. Paginate on the server and cache counts."),
    ("Document the agent session lifecycle", "Improvement", "Done", 4, 0, True, 15.0,
     "Write down the states an agent session goes through and which activity moves it."),
    ("Dark mode colours for priority badges", "Feature", "Canceled", 0, None, False, 25.0,
     "The urgent badge is unreadable on the dark theme."),
    ("Crash when a cycle has no end date", "Bug", "Todo", 1, None, False, 0.2,
     "Opening the cycle view for a cycle without an end date throws a TypeError."),
]
# fmt: on


def seeded_workspace(
    org_id: str,
    base_url: Callable[[], str],
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Workspace:
    """A new workspace for an org, seeded with the Engineering team."""
    ws = Workspace(org_id, base_url, clock)
    _seed(ws)
    return ws


def _seed(ws: Workspace) -> None:
    now = ws.moment()
    created = iso(now - timedelta(days=365))
    domain = f"{ws.organization['urlKey']}.test"
    for name, email, admin, app in _USERS:
        ws.add(
            "User",
            {
                "id": ws.seed_id(f"user/{name}"),
                "name": name,
                "displayName": name.split()[0].lower(),
                "email": email.format(domain=domain),
                "active": True,
                "admin": admin,
                "app": app,
                "guest": False,
                "initials": "".join(part[0] for part in name.split()),
                "createdAt": created,
                "updatedAt": created,
            },
        )
    users = ws.all("User")
    team = ws.add(
        "Team",
        {
            "id": ws.seed_id("team/ENG"),
            "name": "Engineering",
            "key": "ENG",
            "description": "Product engineering",
            "color": "#5e6ad2",
            "private": False,
            "timezone": "Etc/UTC",
            "memberIds": [user["id"] for user in users],
            "createdAt": created,
            "updatedAt": created,
        },
    )
    for position, (name, type_, color) in enumerate(_STATES):
        ws.add(
            "WorkflowState",
            {
                "id": ws.seed_id(f"state/ENG/{name}"),
                "name": name,
                "type": type_,
                "color": color,
                "position": float(position),
                "description": None,
                "teamId": team["id"],
                "createdAt": created,
                "updatedAt": created,
            },
        )
    team["defaultIssueStateId"] = ws.seed_id("state/ENG/Todo")
    for name, color in _LABELS:
        ws.add(
            "IssueLabel",
            {
                "id": ws.seed_id(f"label/{name}"),
                "name": name,
                "color": color,
                "description": None,
                "isGroup": False,
                "teamId": None,
                "parentId": None,
                "createdAt": created,
                "updatedAt": created,
            },
        )
    project = ws.add(
        "Project",
        {
            "id": ws.seed_id("project/reliability"),
            "name": "Q3 Reliability",
            "description": "Make every integration survive retries, rate limits and restarts.",
            "color": "#26b5ce",
            "state": "started",
            "slugId": ws.seed_id("project/reliability")[:12].replace("-", ""),
            "priority": 2,
            "teamIds": [team["id"]],
            "leadId": users[0]["id"],
            "createdAt": iso(now - timedelta(days=45)),
            "updatedAt": iso(now - timedelta(days=1)),
        },
    )
    state_ids = {name: ws.seed_id(f"state/ENG/{name}") for name, _, _ in _STATES}
    for number, (title, label, state, priority, assignee, in_project, age, text) in enumerate(
        _ISSUES, start=1
    ):
        updated = now - timedelta(days=age)
        created_at = updated - timedelta(days=3 + number)
        record = new_issue(
            ws,
            id=ws.seed_id(f"issue/ENG-{number}"),
            team=team,
            number=number,
            title=title,
            description=text,
            priority=priority,
            state_id=state_ids[state],
            label_ids=[ws.seed_id(f"label/{label}")],
            assignee_id=users[assignee]["id"] if assignee is not None else None,
            project_id=project["id"] if in_project else None,
            creator_id=users[number % 2]["id"],
            created_at=iso(created_at),
        )
        record["updatedAt"] = iso(updated)
        apply_state_dates(ws, record, at=iso(updated))
        ws.add("Issue", record)

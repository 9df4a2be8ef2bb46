"""A typed async client for Linear's GraphQL API (httpx).

Errors are sorted the way a step needs them:
- rate limits (HTTP 429, or HTTP 400 with `extensions.code = "RATELIMITED"`) raise
  `LinearRateLimited`, a `durable.RetryAfter` that waits for Linear's reset;
- bad credentials and forbidden requests raise `LinearAuthError`, and invalid operations
  `LinearRequestError`: both `durable.NonRetryableError`, since no retry fixes them;
- server errors and network failures raise `LinearUnavailable`, retried by the step's policy.

Credentials never appear in messages or logs: errors name the org, not the key.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

import durable

DEFAULT_URL = "https://api.linear.app/graphql"
# When Linear gives no reset time for a rate limit.
DEFAULT_RATE_LIMIT_WAIT = timedelta(seconds=30)


@dataclass(frozen=True)
class LinearCredential:
    """An API key (`Authorization: <key>`) or an OAuth access token (`Bearer <token>`)."""

    secret: str
    oauth: bool = False

    def header(self) -> str:
        return f"Bearer {self.secret}" if self.oauth else self.secret

    def __repr__(self) -> str:  # never print the secret
        return f"LinearCredential(oauth={self.oauth}, secret=***)"


class LinearError(durable.DurableError):
    """Base of the errors this client raises."""


class LinearAuthError(durable.NonRetryableError, LinearError):
    def __init__(self, org_id: str, detail: str) -> None:
        super().__init__(
            f"Linear rejected the credentials configured for org {org_id!r}: {detail}",
            kind="LinearAuthError",
        )


class LinearRequestError(durable.NonRetryableError, LinearError):
    def __init__(self, message: str, code: str = "") -> None:
        self.code = code
        super().__init__(message, kind="LinearRequestError")


class LinearRateLimited(durable.RetryAfter, LinearError):
    pass


class LinearUnavailable(durable.ServiceUnavailable, LinearError):
    """A server error or network failure: the step waits for Linear to come back."""

    def __init__(self, message: str) -> None:
        super().__init__(message, service="Linear")


def _reset_delay(headers: httpx.Headers, now: float | None = None) -> timedelta:
    """How long until Linear's rate-limit window resets, from its headers."""
    now = time.time() if now is None else now
    resets = [
        headers.get(name)
        for name in (
            "X-RateLimit-Requests-Reset",
            "X-RateLimit-Complexity-Reset",
            "X-RateLimit-Endpoint-Requests-Reset",
        )
    ]
    epochs_ms = [int(v) for v in resets if v and v.isdigit()]
    if epochs_ms:
        return timedelta(seconds=max(0.0, max(epochs_ms) / 1000 - now) + 0.1)
    retry_after = headers.get("Retry-After")
    if retry_after and retry_after.isdigit():
        return timedelta(seconds=int(retry_after))
    return DEFAULT_RATE_LIMIT_WAIT


class LinearClient:
    """One org's connection to Linear."""

    def __init__(
        self,
        org_id: str,
        credential: LinearCredential,
        url: str = DEFAULT_URL,
        *,
        timeout: float = 30.0,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.org_id = org_id
        self.url = url
        self._credential = credential
        self._http = http or httpx.AsyncClient(timeout=timeout)
        self._owns_http = http is None

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> LinearClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def execute(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run one operation and return its `data`, or raise one of this module's errors."""
        try:
            response = await self._http.post(
                self.url,
                json={"query": query, "variables": variables or {}},
                headers={
                    "Authorization": self._credential.header(),
                    "Content-Type": "application/json",
                },
            )
        except httpx.HTTPError as err:
            raise LinearUnavailable(f"cannot reach Linear at {self.url}: {err}") from None
        try:
            body: dict[str, Any] = response.json()
        except ValueError:
            body = {}
        errors: list[dict[str, Any]] = body.get("errors") or []
        codes = {str((e.get("extensions") or {}).get("code", "")).upper() for e in errors}
        messages = "; ".join(str(e.get("message", "")) for e in errors) or response.reason_phrase
        if response.status_code == 429 or "RATELIMITED" in codes:
            delay = _reset_delay(response.headers)
            raise LinearRateLimited(
                f"Linear rate-limited org {self.org_id!r}; retrying in "
                f"{delay.total_seconds():.0f} s",
                delay,
            )
        if response.status_code in (401, 403) or codes & {"AUTHENTICATION_ERROR", "FORBIDDEN"}:
            raise LinearAuthError(self.org_id, messages)
        if response.status_code >= 500:
            raise LinearUnavailable(f"Linear answered {response.status_code}: {messages}")
        if errors:
            code = next(iter(codes - {""}), "")
            raise LinearRequestError(f"Linear refused the request: {messages}", code)
        if response.status_code != 200 or "data" not in body:
            raise LinearUnavailable(f"Linear answered {response.status_code} without data")
        data: dict[str, Any] = body["data"]
        return data

    # --- issues ---------------------------------------------------------------------------

    async def list_issues(
        self,
        *,
        team_id: str | None = None,
        project_id: str | None = None,
        updated_since: datetime | None = None,
        without_label: str | None = None,
        page_size: int = 50,
        limit: int = 500,
    ) -> list[dict[str, Any]]:
        """Issues of a team or project, optionally only those updated since a time, or only
        those without a label of the name `without_label` (ignoring case); follows pages up
        to `limit`."""
        filter_: dict[str, Any] = {}
        if team_id:
            filter_["team"] = {"id": {"eq": team_id}}
        if project_id:
            filter_["project"] = {"id": {"eq": project_id}}
        if updated_since:
            filter_["updatedAt"] = {"gt": updated_since.astimezone(UTC).isoformat()}
        if without_label:
            # No label, or every label another: `every` alone would also do, but an issue
            # with no labels at all must pass whichever way `every` reads an empty list.
            filter_["or"] = [
                {"labels": {"length": {"eq": 0}}},
                {"labels": {"every": {"name": {"neqIgnoreCase": without_label}}}},
            ]
        found: list[dict[str, Any]] = []
        after: str | None = None
        while len(found) < limit:
            data = await self.execute(
                LIST_ISSUES, {"filter": filter_, "first": page_size, "after": after}
            )
            page = data["issues"]
            found += page["nodes"]
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
        return found[:limit]

    async def issue(self, issue_id: str) -> dict[str, Any] | None:
        """An issue by id or identifier (`ENG-12`), or None."""
        return await self._find(GET_ISSUE, "issue", issue_id)

    async def create_issue(self, input: dict[str, Any]) -> dict[str, Any]:
        """Create an issue. With `input["id"]` (a UUID made by the workflow), a retry finds
        the issue the first attempt made instead of making a second."""
        return await self._create(
            CREATE_ISSUE, "issueCreate", "issue", input, lambda: self.issue(input["id"])
        )

    async def update_issue(self, issue_id: str, input: dict[str, Any]) -> dict[str, Any]:
        data = await self.execute(UPDATE_ISSUE, {"id": issue_id, "input": input})
        return _payload(data, "issueUpdate", "issue")

    async def create_comment(self, input: dict[str, Any]) -> dict[str, Any]:
        """Comment on an issue; idempotent with `input["id"]` like `create_issue`."""
        return await self._create(
            CREATE_COMMENT, "commentCreate", "comment", input, lambda: self.comment(input["id"])
        )

    async def comment(self, comment_id: str) -> dict[str, Any] | None:
        return await self._find(GET_COMMENT, "comment", comment_id)

    async def workflow_states(self, team_id: str) -> list[dict[str, Any]]:
        data = await self.execute(WORKFLOW_STATES, {"teamId": team_id})
        nodes: list[dict[str, Any]] = data["workflowStates"]["nodes"]
        return nodes

    async def labels(self, team_id: str) -> list[dict[str, Any]]:
        """The team's labels and the workspace's (which belong to no team)."""
        data = await self.execute(LABELS, {"teamId": team_id})
        nodes: list[dict[str, Any]] = data["issueLabels"]["nodes"]
        return nodes

    async def create_label(self, input: dict[str, Any]) -> dict[str, Any]:
        data = await self.execute(CREATE_LABEL, {"input": input})
        return _payload(data, "issueLabelCreate", "issueLabel")

    async def teams(self) -> list[dict[str, Any]]:
        """Every team, with its members (people and app users)."""
        data = await self.execute(TEAMS)
        nodes: list[dict[str, Any]] = data["teams"]["nodes"]
        return nodes

    async def projects(self) -> list[dict[str, Any]]:
        """The workspace's projects (the first 100)."""
        data = await self.execute(PROJECTS)
        nodes: list[dict[str, Any]] = data["projects"]["nodes"]
        return nodes

    async def create_project_update(self, input: dict[str, Any]) -> dict[str, Any]:
        """Post a project update; idempotent with `input["id"]` like `create_issue`."""
        return await self._create(
            CREATE_PROJECT_UPDATE,
            "projectUpdateCreate",
            "projectUpdate",
            input,
            lambda: self._find(GET_PROJECT_UPDATE, "projectUpdate", input["id"]),
        )

    # --- the Agent API -----------------------------------------------------------------------

    async def create_agent_activity(self, input: dict[str, Any]) -> dict[str, Any]:
        """Post an activity (thought, action, response, error) to an agent session;
        idempotent with `input["id"]`."""
        return await self._create(
            CREATE_AGENT_ACTIVITY,
            "agentActivityCreate",
            "agentActivity",
            input,
            lambda: self._find(GET_AGENT_ACTIVITY, "agentActivity", input["id"]),
        )

    async def update_agent_session(self, session_id: str, input: dict[str, Any]) -> bool:
        data = await self.execute(UPDATE_AGENT_SESSION, {"id": session_id, "input": input})
        return bool(data["agentSessionUpdate"]["success"])

    async def _find(self, query: str, field: str, id: str) -> dict[str, Any] | None:
        """One object by id, or None when Linear says there is no such entity."""
        try:
            data = await self.execute(query, {"id": id})
        except LinearRequestError as err:
            if _not_found(err):
                return None
            raise
        found: dict[str, Any] | None = data.get(field)
        return found

    async def _create(
        self,
        mutation: str,
        field: str,
        entity: str,
        input: dict[str, Any],
        existing: Any,
    ) -> dict[str, Any]:
        try:
            data = await self.execute(mutation, {"input": input})
        except LinearRequestError:
            # A retried create whose first attempt went through: the id is taken, by us.
            if input.get("id"):
                found: dict[str, Any] | None = await existing()
                if found is not None:
                    return found
            raise
        return _payload(data, field, entity)


def _payload(data: dict[str, Any], field: str, entity: str) -> dict[str, Any]:
    result = data.get(field) or {}
    if not result.get("success", True) or result.get(entity) is None:
        raise LinearRequestError(f"Linear did not complete {field}: {result}")
    found: dict[str, Any] = result[entity]
    return found


def _not_found(err: LinearRequestError) -> bool:
    text = str(err).lower()
    return "not found" in text or "entity not found" in text or err.code == "ENTITY_NOT_FOUND"


TEAMS = """
query Teams {
  teams(first: 50) {
    nodes { id key name members(first: 100) { nodes { id name displayName app active } } }
  }
}
"""

PROJECTS = """
query Projects {
  projects(first: 100) { nodes { id name description state } }
}
"""

PROJECT_UPDATE_FIELDS = "id body url health createdAt project { id name }"

CREATE_PROJECT_UPDATE = f"""
mutation CreateProjectUpdate($input: ProjectUpdateCreateInput!) {{
  projectUpdateCreate(input: $input) {{ success projectUpdate {{ {PROJECT_UPDATE_FIELDS} }} }}
}}
"""

GET_PROJECT_UPDATE = f"""
query GetProjectUpdate($id: String!) {{
  projectUpdate(id: $id) {{ {PROJECT_UPDATE_FIELDS} }}
}}
"""

ISSUE_FIELDS = """
    id identifier title description priority url createdAt updatedAt
    state { id name type }
    team { id key name }
    project { id name }
    assignee { id name }
    labels { nodes { id name } }
"""

LIST_ISSUES = f"""
query ListIssues($filter: IssueFilter, $first: Int, $after: String) {{
  issues(filter: $filter, first: $first, after: $after) {{
    nodes {{ {ISSUE_FIELDS} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}
"""

GET_ISSUE = f"""
query GetIssue($id: String!) {{
  issue(id: $id) {{ {ISSUE_FIELDS} }}
}}
"""

CREATE_ISSUE = f"""
mutation CreateIssue($input: IssueCreateInput!) {{
  issueCreate(input: $input) {{ success issue {{ {ISSUE_FIELDS} }} }}
}}
"""

UPDATE_ISSUE = f"""
mutation UpdateIssue($id: String!, $input: IssueUpdateInput!) {{
  issueUpdate(id: $id, input: $input) {{ success issue {{ {ISSUE_FIELDS} }} }}
}}
"""

COMMENT_FIELDS = "id body url createdAt issue { id identifier }"

CREATE_COMMENT = f"""
mutation CreateComment($input: CommentCreateInput!) {{
  commentCreate(input: $input) {{ success comment {{ {COMMENT_FIELDS} }} }}
}}
"""

GET_COMMENT = f"""
query GetComment($id: String!) {{
  comment(id: $id) {{ {COMMENT_FIELDS} }}
}}
"""

WORKFLOW_STATES = """
query WorkflowStates($teamId: ID!) {
  workflowStates(filter: { team: { id: { eq: $teamId } } }) { nodes { id name type position } }
}
"""

LABELS = """
query Labels($teamId: ID!) {
  issueLabels(filter: { or: [{ team: { id: { eq: $teamId } } }, { team: { null: true } }] }) {
    nodes { id name color }
  }
}
"""

CREATE_LABEL = """
mutation CreateLabel($input: IssueLabelCreateInput!) {
  issueLabelCreate(input: $input) { success issueLabel { id name color } }
}
"""

CREATE_AGENT_ACTIVITY = """
mutation CreateAgentActivity($input: AgentActivityCreateInput!) {
  agentActivityCreate(input: $input) { success agentActivity { id createdAt } }
}
"""

GET_AGENT_ACTIVITY = """
query GetAgentActivity($id: String!) {
  agentActivity(id: $id) { id createdAt }
}
"""

UPDATE_AGENT_SESSION = """
mutation UpdateAgentSession($id: String!, $input: AgentSessionUpdateInput!) {
  agentSessionUpdate(id: $id, input: $input) { success }
}
"""

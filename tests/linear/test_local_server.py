"""The local Linear server over real HTTP: schema validation, auth, the seeded workspace,
idempotent creates, the agent API, and injected rate limits and failures."""

from __future__ import annotations

import asyncio
import re
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from activities.linear.local_schema import DEFAULT_SCHEMA_PATH, SchemaMissing, schema_path
from activities.linear.local_server import LocalLinear

from .conftest import TEST_KEY, TEST_ORG, TEST_TOKEN

LIST_ISSUES = """
query ListIssues($filter: IssueFilter, $first: Int, $after: String) {
  issues(filter: $filter, first: $first, after: $after) {
    nodes {
      id identifier title description priority url createdAt updatedAt
      state { id name type } team { id key name } project { id name }
      assignee { id name } labels { nodes { id name } }
    }
    pageInfo { hasNextPage endCursor }
  }
}
"""

CREATE_ISSUE = """
mutation CreateIssue($input: IssueCreateInput!) {
  issueCreate(input: $input) { success issue { id identifier title state { name } } }
}
"""


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


async def post(
    http: httpx.AsyncClient,
    server: LocalLinear,
    query: str,
    variables: dict[str, Any] | None = None,
    auth: str | None = TEST_KEY,
) -> httpx.Response:
    headers = {"Authorization": auth} if auth is not None else {}
    return await http.post(
        server.url, json={"query": query, "variables": variables or {}}, headers=headers
    )


def team_id(server: LocalLinear) -> str:
    return str(server.state()["teams"][0]["id"])


async def test_a_valid_query_returns_the_seeded_issues_page_by_page(
    local_linear: LocalLinear, http: httpx.AsyncClient
) -> None:
    seen: list[dict[str, Any]] = []
    after = None
    pages = 0
    while True:
        response = await post(
            http,
            local_linear,
            LIST_ISSUES,
            {"filter": {"team": {"id": {"eq": team_id(local_linear)}}}, "first": 4, "after": after},
        )
        assert response.status_code == 200, response.text
        assert int(response.headers["X-RateLimit-Requests-Remaining"]) < 5000
        page = response.json()["data"]["issues"]
        seen += page["nodes"]
        pages += 1
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert pages == 3
    assert sorted(issue["identifier"] for issue in seen) == sorted(f"ENG-{n}" for n in range(1, 11))
    first = next(issue for issue in seen if issue["identifier"] == "ENG-1")
    assert first["team"] == {"id": team_id(local_linear), "key": "ENG", "name": "Engineering"}
    assert first["state"]["type"] == "started"
    assert first["labels"]["nodes"][0]["name"] == "Bug"
    assert first["url"].startswith(f"{local_linear.origin}/acme/issue/ENG-1/")
    assert local_linear.calls("ListIssues") == 3

    page = await http.get(first["url"])  # an issue's url shows it
    assert page.json()["identifier"] == "ENG-1"


async def test_filters_and_lookup_by_identifier(
    local_linear: LocalLinear, http: httpx.AsyncClient
) -> None:
    week_ago = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 7 * 86400))
    recent = await post(
        http, local_linear, LIST_ISSUES, {"filter": {"updatedAt": {"gt": week_ago}}}
    )
    recent_ids = {issue["identifier"] for issue in recent.json()["data"]["issues"]["nodes"]}
    assert recent_ids == {"ENG-1", "ENG-2", "ENG-6", "ENG-7", "ENG-10"}

    project = local_linear.state()["projects"][0]["id"]
    in_project = await post(
        http, local_linear, LIST_ISSUES, {"filter": {"project": {"id": {"eq": project}}}}
    )
    assert len(in_project.json()["data"]["issues"]["nodes"]) == 4

    by_identifier = await post(
        http, local_linear, 'query { issue(id: "eng-3") { identifier title } }'
    )
    assert by_identifier.json()["data"]["issue"]["identifier"] == "ENG-3"

    missing = await post(http, local_linear, 'query { issue(id: "ENG-404") { id } }')
    assert missing.status_code == 200
    assert missing.json()["data"] is None
    [error] = missing.json()["errors"]
    assert error["message"] == "Entity not found: Issue"
    assert error["extensions"]["code"] == "INPUT_ERROR"
    assert error["extensions"]["type"] == "invalid input"


async def test_an_unknown_field_is_a_validation_error_naming_it(
    local_linear: LocalLinear, http: httpx.AsyncClient
) -> None:
    response = await post(http, local_linear, "query { viewer { id favouriteColour } }")
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert "favouriteColour" in error["message"]
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"

    unparsable = await post(http, local_linear, "query { viewer { id ")
    assert unparsable.status_code == 400
    assert unparsable.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"


@pytest.mark.parametrize(
    "auth", [None, "", "lin_api_wrong", f"Bearer {TEST_KEY}", TEST_TOKEN, "Bearer nope"]
)
async def test_a_missing_or_bad_credential_is_an_authentication_error(
    local_linear: LocalLinear, http: httpx.AsyncClient, auth: str | None
) -> None:
    response = await post(http, local_linear, "query { viewer { id } }", auth=auth)
    assert response.status_code == 401
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "AUTHENTICATION_ERROR"
    assert error["extensions"]["type"] == "authentication error"
    assert error["extensions"]["http"] == {"status": 401}


async def test_keys_tokens_and_revocation(
    local_linear: LocalLinear, http: httpx.AsyncClient
) -> None:
    query = "query Me { viewer { name isMe } organization { name } }"
    as_key = await post(http, local_linear, query)
    assert as_key.json()["data"] == {
        "viewer": {"name": "Ada Lovelace", "isMe": True},
        "organization": {"name": "Acme"},
    }
    as_token = await post(http, local_linear, query, auth=f"Bearer {TEST_TOKEN}")
    assert as_token.json()["data"]["viewer"]["name"] == "Durable Agent"

    local_linear.revoke(TEST_KEY)
    revoked = await post(http, local_linear, query)
    assert revoked.status_code == 401
    assert revoked.json()["errors"][0]["extensions"]["code"] == "AUTHENTICATION_ERROR"
    assert local_linear.calls("Me") == 3


async def test_a_create_with_a_taken_id_is_refused_and_creates_nothing(
    local_linear: LocalLinear, http: httpx.AsyncClient
) -> None:
    issue_id = str(uuid.uuid4())
    input = {"id": issue_id, "teamId": team_id(local_linear), "title": "Retry-safe issue"}
    first = await post(http, local_linear, CREATE_ISSUE, {"input": input})
    assert first.status_code == 200
    created = first.json()["data"]["issueCreate"]
    assert created["success"] is True
    assert created["issue"] == {
        "id": issue_id,
        "identifier": "ENG-11",
        "title": "Retry-safe issue",
        "state": {"name": "Todo"},
    }

    again = await post(http, local_linear, CREATE_ISSUE, {"input": {**input, "title": "Twice"}})
    assert again.status_code == 200
    body = again.json()
    assert body["data"] is None
    [error] = body["errors"]
    assert error["message"] == f"Entity already exists: Issue with id {issue_id}"
    assert error["path"] == ["issueCreate"]
    assert error["extensions"]["code"] == "INPUT_ERROR"
    assert error["extensions"]["meta"] == {"entity": "Issue", "id": issue_id}

    issues = [issue for issue in local_linear.state()["issues"] if issue["id"] == issue_id]
    assert [issue["title"] for issue in issues] == ["Retry-safe issue"]
    assert len(local_linear.state()["issues"]) == 11

    malformed = await post(http, local_linear, CREATE_ISSUE, {"input": {**input, "id": "x"}})
    assert malformed.json()["errors"][0]["extensions"]["code"] == "INVALID_INPUT"


async def test_update_comment_and_label(local_linear: LocalLinear, http: httpx.AsyncClient) -> None:
    state = local_linear.state()
    done = next(s["id"] for s in state["workflowStates"] if s["name"] == "Done")
    updated = await post(
        http,
        local_linear,
        """mutation U($id: String!, $input: IssueUpdateInput!) {
             issueUpdate(id: $id, input: $input) { success issue { state { name } priority } } }""",
        {"id": "ENG-2", "input": {"stateId": done, "priority": 1}},
    )
    assert updated.json()["data"]["issueUpdate"]["issue"] == {
        "state": {"name": "Done"},
        "priority": 1,
    }
    assert local_linear.workspace().issue("ENG-2")["completedAt"] is not None

    comment = """mutation C($input: CommentCreateInput!) {
      commentCreate(input: $input) { success comment { id body issue { identifier } } }
    }"""
    comment_id = str(uuid.uuid4())
    input = {"id": comment_id, "issueId": "ENG-2", "body": "Shipped."}
    made = await post(http, local_linear, comment, {"input": input})
    assert made.json()["data"]["commentCreate"]["comment"] == {
        "id": comment_id,
        "body": "Shipped.",
        "issue": {"identifier": "ENG-2"},
    }
    again = await post(http, local_linear, comment, {"input": input})
    assert "already exists" in again.json()["errors"][0]["message"]
    assert [c["body"] for c in local_linear.state()["comments"]] == ["Shipped."]

    label = """mutation L($input: IssueLabelCreateInput!) {
                 issueLabelCreate(input: $input) { success issueLabel { id name } } }"""
    created = await post(http, local_linear, label, {"input": {"name": "Regression"}})
    assert created.json()["data"]["issueLabelCreate"]["issueLabel"]["name"] == "Regression"
    duplicate = await post(http, local_linear, label, {"input": {"name": "bug"}})
    assert duplicate.json()["errors"][0]["extensions"]["code"] == "INVALID_INPUT"


async def test_agent_activities_move_the_session_and_honour_ids(
    local_linear: LocalLinear, http: httpx.AsyncClient
) -> None:
    session = local_linear.open_agent_session("ENG-1")
    activity = """mutation A($input: AgentActivityCreateInput!) {
      agentActivityCreate(input: $input) {
        success
        agentActivity { id content { ... on AgentActivityThoughtContent { body } } }
      }
    }"""
    activity_id = str(uuid.uuid4())
    input = {
        "id": activity_id,
        "agentSessionId": session["id"],
        "content": {"type": "thought", "body": "Reading the issue."},
    }
    made = await post(http, local_linear, activity, {"input": input}, auth=f"Bearer {TEST_TOKEN}")
    assert made.json()["data"]["agentActivityCreate"]["agentActivity"] == {
        "id": activity_id,
        "content": {"body": "Reading the issue."},
    }
    again = await post(http, local_linear, activity, {"input": input}, auth=f"Bearer {TEST_TOKEN}")
    assert "already exists" in again.json()["errors"][0]["message"]
    assert local_linear.state()["agentSessions"][0]["status"] == "active"

    response = {**input, "id": str(uuid.uuid4()), "content": {"type": "response", "body": "Done"}}
    await post(http, local_linear, activity, {"input": response}, auth=f"Bearer {TEST_TOKEN}")
    update = await post(
        http,
        local_linear,
        """mutation S($id: String!, $input: AgentSessionUpdateInput!) {
             agentSessionUpdate(id: $id, input: $input) { success } }""",
        {"id": session["id"], "input": {"externalLink": "http://example.test/run/1"}},
        auth=f"Bearer {TEST_TOKEN}",
    )
    assert update.json()["data"]["agentSessionUpdate"]["success"] is True
    state = local_linear.state()
    assert state["agentSessions"][0]["status"] == "complete"
    assert state["agentSessions"][0]["externalLink"] == "http://example.test/run/1"
    assert [a["content"]["type"] for a in state["agentActivities"]] == ["thought", "response"]

    empty = {**input, "id": str(uuid.uuid4()), "content": {"type": "thought"}}
    refused = await post(
        http, local_linear, activity, {"input": empty}, auth=f"Bearer {TEST_TOKEN}"
    )
    assert refused.json()["errors"][0]["extensions"]["code"] == "INVALID_INPUT"


@pytest.mark.parametrize(("form", "status"), [("http429", 429), ("ratelimited400", 400)])
async def test_an_injected_rate_limit_answers_like_linear_then_service_resumes(
    local_linear: LocalLinear, http: httpx.AsyncClient, form: str, status: int
) -> None:
    local_linear.rate_limit(times=2, form=form, reset_in_seconds=30)  # type: ignore[arg-type]
    before_ms = time.time() * 1000
    for _ in range(2):
        limited = await post(http, local_linear, "query Me { viewer { id } }")
        assert limited.status_code == status
        assert limited.json()["errors"][0]["extensions"]["code"] == "RATELIMITED"
        assert limited.json()["errors"][0]["extensions"]["type"] == "ratelimited"
        assert limited.headers["X-RateLimit-Requests-Remaining"] == "0"
        assert limited.headers["X-RateLimit-Requests-Limit"] == "5000"
        reset_ms = int(limited.headers["X-RateLimit-Requests-Reset"])
        assert before_ms + 29_000 <= reset_ms <= time.time() * 1000 + 31_000
        assert limited.headers["Retry-After"] == "30"
    served = await post(http, local_linear, "query Me { viewer { id } }")
    assert served.status_code == 200
    assert served.json()["data"]["viewer"]["id"]
    assert local_linear.calls("Me") == 3


async def test_failures_and_faults_for_one_operation(
    local_linear: LocalLinear, http: httpx.AsyncClient
) -> None:
    local_linear.fail(times=1, status=503, operation="Teams")
    other = await post(http, local_linear, "query Me { viewer { id } }")
    assert other.status_code == 200
    failed = await post(http, local_linear, "query Teams { teams { nodes { key } } }")
    assert failed.status_code == 503
    assert failed.json()["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    served = await post(http, local_linear, "query Teams { teams { nodes { key } } }")
    assert served.json()["data"] == {"teams": {"nodes": [{"key": "ENG"}]}}

    local_linear.slow(times=1, seconds=0.3)
    started = time.monotonic()
    slow = await post(http, local_linear, "query Teams { teams { nodes { key } } }")
    assert slow.status_code == 200
    assert time.monotonic() - started >= 0.3


async def test_the_control_state_and_reset_endpoints(
    local_linear: LocalLinear, http: httpx.AsyncClient
) -> None:
    control = f"{local_linear.origin}/control"
    assert (await http.post(control, json={"action": "fail", "times": 1})).status_code == 200
    assert (await post(http, local_linear, "query { viewer { id } }")).status_code == 500
    bad = await http.post(control, json={"action": "rate_limit", "form": "sometimes"})
    assert bad.status_code == 400

    await post(
        http, local_linear, CREATE_ISSUE, {"input": {"teamId": team_id(local_linear), "title": "x"}}
    )
    state = (await http.get(f"{local_linear.origin}/state")).json()
    assert len(state["issues"]) == 11
    assert state["requests"] == {"anonymous": 1, "CreateIssue": 1}
    session = await http.post(control, json={"action": "agent_session", "issue": "ENG-11"})
    assert session.json()["agentSession"]["status"] == "pending"

    assert (await http.post(f"{local_linear.origin}/reset")).status_code == 200
    assert len((await http.get(f"{local_linear.origin}/state")).json()["issues"]) == 10


def test_the_schema_ships_in_the_package_with_its_licence(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LINEAR_SCHEMA_PATH", raising=False)
    package = Path(__file__).parents[2] / "activities" / "linear"
    assert schema_path() == DEFAULT_SCHEMA_PATH == package / "schema" / "schema.graphql"
    assert DEFAULT_SCHEMA_PATH.stat().st_size > 1_000_000, "Linear's whole public schema"
    licence = (DEFAULT_SCHEMA_PATH.parent / "LICENSE").read_text()
    assert "MIT License" in licence and "Copyright (c) 2019 Linear" in licence


async def test_a_schema_path_that_names_no_file_says_where_it_looked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere" / "schema.graphql"
    monkeypatch.setenv("LINEAR_SCHEMA_PATH", str(missing))
    assert schema_path() == missing
    expected = f"Linear's schema is expected at {missing} (set LINEAR_SCHEMA_PATH"
    with pytest.raises(SchemaMissing, match=re.escape(expected)):
        await LocalLinear().start()


async def test_the_command_line_serves_and_prints_its_url() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "activities.linear.local_server",
        "--port",
        "0",
        "--key",
        f"lin_api_cli={TEST_ORG}",
        stdout=asyncio.subprocess.PIPE,
        cwd=Path(__file__).parents[2],
    )
    try:
        assert process.stdout is not None
        first = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        match = re.search(r"(http://127\.0\.0\.1:\d+/graphql)", first)
        assert match, first
        lines = [(await asyncio.wait_for(process.stdout.readline(), 5)).decode() for _ in range(3)]
        assert "lin_api_cli" in lines[-1]
        async with httpx.AsyncClient() as http:
            response = await http.post(
                match.group(1),
                json={"query": "{ viewer { name } }"},
                headers={"Authorization": "lin_api_cli"},
            )
        assert response.json()["data"]["viewer"]["name"] == "Ada Lovelace"
    finally:
        process.terminate()
        await process.wait()

"""The Linear client against the local Linear-compatible server, which validates every
operation against Linear's published schema."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from uuid import uuid4

import pytest

from activities.linear.client import (
    LinearAuthError,
    LinearClient,
    LinearCredential,
    LinearRateLimited,
    LinearRequestError,
    LinearUnavailable,
)
from activities.linear.local_server import LocalLinear

from .conftest import TEST_KEY, TEST_ORG, TEST_TOKEN


def client_for(server: LocalLinear, oauth: bool = False) -> LinearClient:
    credential = LinearCredential(TEST_TOKEN, oauth=True) if oauth else LinearCredential(TEST_KEY)
    return LinearClient(TEST_ORG, credential, server.url)


async def team_of(client: LinearClient) -> dict[str, Any]:
    data = await client.execute("query { teams { nodes { id key name } } }")
    team: dict[str, Any] = data["teams"]["nodes"][0]
    return team


async def test_every_operation_works_against_the_real_schema(local_linear: LocalLinear) -> None:
    client = client_for(local_linear)
    try:
        team = await team_of(client)
        issues = await client.list_issues(team_id=team["id"])
        assert len(issues) == 10 and all(i["team"]["key"] == "ENG" for i in issues)
        recent = await client.list_issues(
            team_id=team["id"], updated_since=datetime.now(UTC) - timedelta(days=7)
        )
        assert 0 < len(recent) < len(issues), "updated-since filters"
        paged = await client.list_issues(team_id=team["id"], page_size=3)
        assert {i["id"] for i in paged} == {i["id"] for i in issues}, "pages are followed"

        states = await client.workflow_states(team["id"])
        assert {s["name"] for s in states} >= {"Backlog", "Todo", "Done"}
        labels = await client.labels(team["id"])
        assert {label["name"] for label in labels} >= {"Bug", "Feature"}
        label = await client.create_label({"name": "Needs triage", "teamId": team["id"]})

        new_id = str(uuid4())
        created = await client.create_issue(
            {"id": new_id, "teamId": team["id"], "title": "Flaky deploy", "description": "x"}
        )
        assert created["id"] == new_id and created["identifier"] == "ENG-11"
        done = next(s for s in states if s["name"] == "Done")
        updated = await client.update_issue(
            new_id, {"stateId": done["id"], "labelIds": [label["id"]], "priority": 2}
        )
        assert updated["state"]["name"] == "Done" and updated["priority"] == 2
        assert (await client.issue("ENG-11") or {}).get("id") == new_id
        assert await client.issue(str(uuid4())) is None

        comment_id = str(uuid4())
        comment = await client.create_comment(
            {"id": comment_id, "issueId": new_id, "body": "Proposed: close"}
        )
        assert comment["id"] == comment_id
    finally:
        await client.aclose()
    state = local_linear.state()
    assert len(state["issues"]) == 11 and len(state["comments"]) == 1


async def test_agent_activities_post_to_a_session_once(local_linear: LocalLinear) -> None:
    session = local_linear.open_agent_session("ENG-1")["id"]
    client = client_for(local_linear, oauth=True)
    activity = {"id": str(uuid4()), "agentSessionId": session, "content": {"type": "thought"}}
    activity["content"]["body"] = "Looking at ENG-1"
    try:
        first = await client.create_agent_activity(activity)
        again = await client.create_agent_activity(activity)
        assert await client.update_agent_session(session, {"externalLink": "http://x.test/s"})
    finally:
        await client.aclose()
    assert first["id"] == again["id"] == activity["id"]
    assert len(local_linear.state()["agentActivities"]) == 1


async def test_a_create_retried_with_its_id_finds_what_the_first_made(
    local_linear: LocalLinear,
) -> None:
    client = client_for(local_linear)
    try:
        team = await team_of(client)
        input = {"id": str(uuid4()), "teamId": team["id"], "title": "Only once"}
        first = await client.create_issue(input)
        second = await client.create_issue(input)
        comment = {"id": str(uuid4()), "issueId": first["id"], "body": "once"}
        await client.create_comment(comment)
        await client.create_comment(comment)
    finally:
        await client.aclose()
    assert first["id"] == second["id"]
    state = local_linear.state()
    assert [i["title"] for i in state["issues"]].count("Only once") == 1
    assert len(state["comments"]) == 1
    assert local_linear.calls("CreateIssue") == 2, "the second create reached Linear"


async def test_an_unknown_field_is_refused_with_a_clear_error(local_linear: LocalLinear) -> None:
    client = client_for(local_linear)
    try:
        with pytest.raises(LinearRequestError, match="colour") as raised:
            await client.execute("query { issues { nodes { id colour } } }")
    finally:
        await client.aclose()
    assert raised.value.code == "GRAPHQL_VALIDATION_FAILED"
    assert raised.value.kind == "LinearRequestError", "non-retryable: no retry fixes it"


@pytest.mark.parametrize("form", ["http429", "ratelimited400"])
async def test_both_forms_of_rate_limit_say_when_to_come_back(
    local_linear: LocalLinear, form: Literal["http429", "ratelimited400"]
) -> None:
    local_linear.rate_limit(times=1, form=form, reset_in_seconds=7)
    client = client_for(local_linear)
    try:
        with pytest.raises(LinearRateLimited) as raised:
            await team_of(client)
        assert timedelta(seconds=5) < raised.value.delay <= timedelta(seconds=8)
        assert "org-acme" in str(raised.value)
        assert (await team_of(client))["key"] == "ENG", "then normal service"
    finally:
        await client.aclose()


async def test_bad_credentials_fail_at_once_naming_the_org_not_the_key(
    local_linear: LocalLinear,
) -> None:
    client = LinearClient(TEST_ORG, LinearCredential("lin_api_wrong"), local_linear.url)
    try:
        with pytest.raises(LinearAuthError) as raised:
            await team_of(client)
    finally:
        await client.aclose()
    assert "org 'org-acme'" in str(raised.value)
    assert "lin_api_wrong" not in str(raised.value)
    assert "lin_api_wrong" not in repr(LinearCredential("lin_api_wrong"))


async def test_server_errors_and_an_absent_server_are_retryable(
    local_linear: LocalLinear,
) -> None:
    local_linear.fail(times=1, status=500)
    client = client_for(local_linear)
    try:
        with pytest.raises(LinearUnavailable, match="500"):
            await team_of(client)
    finally:
        await client.aclose()
    gone = LinearClient(TEST_ORG, LinearCredential(TEST_KEY), "http://127.0.0.1:9/graphql")
    try:
        with pytest.raises(LinearUnavailable, match="cannot reach Linear"):
            await gone.execute("query { viewer { id } }")
    finally:
        await gone.aclose()

"""The weekly status review end to end: real local Linear, local agent, Temporal, PostgreSQL.

In the seed, five issues moved in the last 7 days: ENG-1, ENG-2 and ENG-7 in the project
"Q3 Reliability", ENG-6 and ENG-10 in no project. The tests add a second project, "Onboarding",
and move ENG-6 into it, as a Linear user would."""

from __future__ import annotations

from typing import Any

from activities.linear.local_server import LocalLinear
from adapters.temporal import replay
from workflows import registry
from workflows.pm.status_review import StatusReviewParams, StatusReviewRequested

from ..linear.conftest import TEST_ORG
from .conftest import Pm

REVIEW = StatusReviewRequested(data=StatusReviewParams())


def add_onboarding_project(linear: LocalLinear) -> str:
    ws = linear.workspace(TEST_ORG)
    (reliability,) = ws.all("Project")
    project = dict(
        reliability,
        id="0c6f3d1e-2b4a-4c55-9e77-0a1b2c3d4e5f",
        name="Onboarding",
        slugId="0c6f3d1e2b4a",
    )
    ws.add("Project", project)
    ws.issue("ENG-6")["projectId"] = project["id"]
    return str(project["id"])


def updates(linear: LocalLinear) -> dict[str, list[dict[str, Any]]]:
    by_project: dict[str, list[dict[str, Any]]] = {}
    for update in linear.state()["projectUpdates"]:
        by_project.setdefault(update["projectId"], []).append(update)
    return by_project


async def test_the_review_is_published_per_project_once(pm: Pm, local_linear: LocalLinear) -> None:
    onboarding = add_onboarding_project(local_linear)
    (reliability,) = [p["id"] for p in local_linear.state()["projects"] if p["id"] != onboarding]
    async with pm.running(local_linear) as client:
        handle = await pm.trigger(client, REVIEW)
        out = await handle.result()
        history = await client.temporal.get_workflow_handle(handle.workflow_id).fetch_history()
        assert out.status == "published" and out.moved == 5 and len(out.updates) == 2
        published = updates(local_linear)
        (mine,) = published[reliability]
        assert mine["body"].startswith("## Q3 Reliability")
        for identifier in ("ENG-1", "ENG-2", "ENG-7"):
            assert identifier in mine["body"]
        assert "ENG-6" not in mine["body"], "each project gets its own part"
        (theirs,) = published[onboarding]
        assert "ENG-6" in theirs["body"] and theirs["url"] in [u.url for u in out.updates]
        assert "## Not in a project" in out.report and "ENG-10" in out.report

        # Nothing moved since: the next review publishes nothing.
        again = await (await pm.trigger(client, REVIEW)).result()
    assert again.status == "nothing-moved" and again.updates == []
    assert sum(len(v) for v in updates(local_linear).values()) == 2
    await replay(registry(), [history])


async def test_a_rate_limit_mid_publish_posts_each_update_once(
    pm: Pm, local_linear: LocalLinear
) -> None:
    add_onboarding_project(local_linear)
    local_linear.slow(times=1, seconds=0.0, operation="CreateProjectUpdate")
    local_linear.rate_limit(times=1, reset_in_seconds=2.0, operation="CreateProjectUpdate")
    async with pm.running(local_linear) as client:
        out = await (await pm.trigger(client, REVIEW)).result()
    assert out.status == "published" and len(out.updates) == 2
    assert local_linear.calls("CreateProjectUpdate") == 3, "two made, one refused"
    assert sorted(len(v) for v in updates(local_linear).values()) == [1, 1]

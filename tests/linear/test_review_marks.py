"""The mark on the product's own review issues, against the local Linear: `create_issue` with
`review=True` gives the issue the label `durable:review` and the review note, and the fetch
step with `exclude_reviews=True` leaves such an issue out (by the label in Linear's query, and
by the note should the label be gone), while every other issue still comes back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import uuid4

import durable
from activities.linear.client import LinearClient, LinearCredential
from activities.linear.local_server import LocalLinear
from activities.linear.marks import REVIEW_LABEL, REVIEW_NOTE, is_marked, with_review_note
from activities.linear.steps import (
    CreateIssue,
    LinearCredentials,
    LinearSteps,
    ListIssues,
    UpdateIssue,
)
from durable._activity_context import reset_activity_context, set_activity_context

from .conftest import TEST_KEY, TEST_ORG


class _Attempt(durable.ActivityContext):
    """What the worker installs around a step attempt of a run of org TEST_ORG."""

    def __init__(self) -> None:
        self.info = durable.StepInfo(
            workflow_id="test-run",
            run_id="1",
            workflow="tests/review-marks",
            step_id="fetch-issues",
            attempt=1,
            tenancy=durable.Tenancy(org_id=TEST_ORG),
        )

    def heartbeat(self, *details: Any) -> None:
        pass

    def heartbeat_details(self) -> tuple[Any, ...]:
        return ()

    @property
    def is_cancelled(self) -> bool:
        return False


@contextmanager
def in_a_step() -> Iterator[None]:
    token = set_activity_context(_Attempt())
    try:
        yield
    finally:
        reset_activity_context(token)


def steps_for(linear: LocalLinear) -> LinearSteps:
    return LinearSteps(LinearCredentials(api_keys=json.dumps({TEST_ORG: TEST_KEY})), linear.url)


def labels_of(linear: LocalLinear, identifier: str) -> set[str]:
    state = linear.state()
    (issue,) = [i for i in state["issues"] if i["identifier"] == identifier]
    return {lb["name"] for lb in state["issueLabels"] if lb["id"] in issue["labelIds"]}


async def test_a_review_issue_is_marked_and_the_fetch_leaves_it_out(
    local_linear: LocalLinear,
) -> None:
    steps = steps_for(local_linear)
    team = local_linear.state()["teams"][0]["id"]
    seeded = {i["identifier"] for i in local_linear.state()["issues"]}
    with in_a_step():
        review = await steps.create_issue(
            CreateIssue(
                id=str(uuid4()),
                team_id=team,
                title="Triage proposal: 3 issue(s) of ENG",
                description="| ENG-10 Crash when a cycle has no end date | Bug | urgent |",
                review=True,
            )
        )
        audit = await steps.create_issue(
            CreateIssue(id=str(uuid4()), team_id=team, title="Audit findings: 2", review=True)
        )
        # Real work with no label at all, and one that merely talks about the mark.
        plain = await steps.create_issue(
            CreateIssue(id=str(uuid4()), team_id=team, title="Crash on login")
        )
        talks = await steps.create_issue(
            CreateIssue(
                id=str(uuid4()),
                team_id=team,
                title="Document the durable:review label",
                description=f"Explain what `{REVIEW_LABEL}` means to the team.",
            )
        )
        everything = await steps.list_issues(ListIssues(team_id=team))
        backlog = await steps.list_issues(ListIssues(team_id=team, exclude_reviews=True))

    # In Linear: the label (made once for the team) and the note a reader sees.
    assert labels_of(local_linear, review.identifier) == {REVIEW_LABEL}
    assert labels_of(local_linear, audit.identifier) == {REVIEW_LABEL}
    made = [lb for lb in local_linear.state()["issueLabels"] if lb["name"] == REVIEW_LABEL]
    assert len(made) == 1 and made[0]["teamId"] == team
    (stored,) = [i for i in local_linear.state()["issues"] if i["id"] == review.id]
    assert stored["description"].startswith("| ENG-10 Crash")
    assert stored["description"].endswith("\n\n" + REVIEW_NOTE)
    assert labels_of(local_linear, plain.identifier) == set()

    # Without the flag the fetch is what it was; with it, the review issues are gone.
    assert {i.identifier for i in everything.issues} == seeded | {
        review.identifier,
        audit.identifier,
        plain.identifier,
        talks.identifier,
    }
    assert {i.identifier for i in backlog.issues} == seeded | {
        plain.identifier,
        talks.identifier,
    }


async def test_a_review_issue_stays_out_if_its_label_or_its_note_is_removed(
    local_linear: LocalLinear,
) -> None:
    steps = steps_for(local_linear)
    team = local_linear.state()["teams"][0]["id"]
    with in_a_step():
        no_label = await steps.create_issue(
            CreateIssue(id=str(uuid4()), team_id=team, title="Stale-issue sweep: 2", review=True)
        )
        no_note = await steps.create_issue(
            CreateIssue(id=str(uuid4()), team_id=team, title="Triage proposal: 1", review=True)
        )
        # Someone clears the label of one and rewrites the description of the other.
        await steps.update_issue(UpdateIssue(issue_id=no_label.id, label_ids=[]))
        await steps.update_issue(UpdateIssue(issue_id=no_note.id, description="Edited."))
        backlog = await steps.list_issues(ListIssues(team_id=team, exclude_reviews=True))
    fetched = {i.identifier for i in backlog.issues}
    assert no_label.identifier not in fetched, "the note still marks it"
    assert no_note.identifier not in fetched, "the label still marks it"

    # The label is filtered in Linear's own query, not only after the answer came back.
    client = LinearClient(TEST_ORG, LinearCredential(TEST_KEY), local_linear.url)
    try:
        raw = await client.list_issues(team_id=team, without_label=REVIEW_LABEL.upper())
    finally:
        await client.aclose()
    raw_ids = {i["identifier"] for i in raw}
    assert no_note.identifier not in raw_ids and no_label.identifier in raw_ids
    assert len(raw_ids) == 11, "the ten seeded issues and the one whose label was removed"


def test_the_note_is_found_however_linear_gives_it_back() -> None:
    assert with_review_note("") == REVIEW_NOTE
    assert with_review_note(with_review_note("body")) == f"body\n\n{REVIEW_NOTE}"
    assert is_marked([], f"body\n\n_{REVIEW_NOTE}_\n")
    assert is_marked(["Bug", "Durable:Review"], "")
    assert not is_marked(["Bug"], f"Quoting it: {REVIEW_NOTE}")

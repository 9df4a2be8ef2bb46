"""The mark on the Linear issues the product opens for its own reviews (a backlog-triage or a
stale-sweep proposal, an audit's findings), so that no PM agent takes them for backlog.

The mark lives in Linear, so every run, a restarted one and one on another worker sees it:

- the label `durable:review` (a team label, made when the team lacks it): what the issue
  list filters on, in Linear's own query;
- a note line in the description (`REVIEW_NOTE`): the same mark should the label be removed
  or renamed, and what a reader of the issue sees.

`ListIssues(exclude_reviews=True)` leaves marked issues out (in the query, then once more on
what came back); `is_marked` is the test workflows apply to what they are given.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

import durable

from .client import LinearClient

REVIEW_LABEL = "durable:review"
REVIEW_NOTE = (
    f"Opened by durable for a review ({REVIEW_LABEL}): backlog triage and the stale sweeper "
    "leave this issue alone."
)


def with_review_note(description: str) -> str:
    """`description` ending with the review note (once)."""
    if _has_note(description):
        return description
    return f"{description.rstrip()}\n\n{REVIEW_NOTE}" if description.strip() else REVIEW_NOTE


def is_marked(labels: Iterable[str], description: str) -> bool:
    """Whether an issue with these label names and description is one of the product's own
    review issues."""
    return any(label.strip().lower() == REVIEW_LABEL for label in labels) or _has_note(description)


def _has_note(description: str) -> bool:
    # Linear may give the line back with emphasis or an escape around it: strip those.
    return any(line.strip(" _*\\>").strip() == REVIEW_NOTE for line in description.splitlines())


def unmarked(labels: Iterable[str]) -> list[str]:
    """Label names without the review label (an agent must not propose it for real work)."""
    return [label for label in labels if label.strip().lower() != REVIEW_LABEL]


async def ensure_team_labels(
    client: LinearClient, org: str, team_id: str, names: Iterable[str]
) -> list[dict[str, Any]]:
    """The labels named, by name (ignoring case), creating those the team lacks. A label
    created here has an id derived from org, team and name, so a retry finds it."""
    existing = {label["name"].lower(): label for label in await client.labels(team_id)}
    out: list[dict[str, Any]] = []
    for name in dict.fromkeys(n.strip() for n in names if n.strip()):
        label = existing.get(name.lower())
        if label is None:
            label_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{org}/{team_id}/{name}"))
            try:
                label = await client.create_label({"id": label_id, "name": name, "teamId": team_id})
            except durable.NonRetryableError:
                # Made by an attempt that crashed before it completed: find it.
                again = {x["name"].lower(): x for x in await client.labels(team_id)}
                if name.lower() not in again:
                    raise
                label = again[name.lower()]
            existing[name.lower()] = label
        out.append(label)
    return out

"""The demo `durable dev` runs: the backlog-triage PM agent against the local Linear, with the
shipped local agent. It prints where to watch the run, the one command that approves it, and,
once it is decided, what changed in Linear."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from activities.linear.local_server import LocalLinear
from adapters.temporal import TemporalDurableClient
from durable import RunCancelled, Tenancy, WorkflowFailed
from workflows.pm.backlog_triage import (
    BacklogTriageOutput,
    BacklogTriageParams,
    BacklogTriageRequested,
)

PRIORITIES = {0: "none", 1: "urgent", 2: "high", 3: "medium", 4: "low"}


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_link(ui: str | None, namespace: str, workflow_id: str) -> str:
    if ui is None:
        return "(external cluster: find it in its UI)"
    return f"{ui}/namespaces/{namespace}/workflows/{quote(workflow_id, safe='')}"


def issue_line(state: dict[str, Any], issue: dict[str, Any]) -> str:
    labels = ", ".join(
        label["name"] for label in state["issueLabels"] if label["id"] in issue["labelIds"]
    )
    people = {user["id"]: user["name"] for user in state["users"]}
    return (
        f"{issue['identifier']:<7} {PRIORITIES.get(issue['priority'], issue['priority']):<7} "
        f"{people.get(issue['assigneeId'] or '', '-'):<14} [{labels}]  {issue['title']}"
    )


async def run_demo(
    client: TemporalDurableClient,
    linear: LocalLinear,
    org: str,
    ui: str | None,
    namespace: str,
) -> BacklogTriageOutput | None:
    """Start a triage run for `org` on the local Linear and narrate it until it ends. The local
    Linear is seeded afresh on every start, so each start runs its own demo, looking at the
    seed's last 30 days (not since the run of an earlier start)."""
    started = datetime.now(UTC)
    event = BacklogTriageRequested(
        id=f"demo:backlog-triage:{started:%Y%m%dT%H%M%S}",
        data=BacklogTriageParams(since=started - timedelta(days=30)),
        tenancy=Tenancy(org_id=org),
    )
    receipt = await client.send_event(event)
    workflow_id = (receipt.started or [f"rensei/pm.backlog-triage.run:{event.id}"])[0]
    handle = client.get(workflow_id)
    say("")
    say("  Demo: the backlog-triage PM agent is running against the local Linear.")
    say(f"  workflow id      {workflow_id}")
    say(f"  watch it         {run_link(ui, namespace, workflow_id)}")
    while True:
        desc = await handle.describe()
        waits = desc.waiting_on and "approval" in desc.waiting_on and desc.resolve_with
        if not desc.status.is_open or waits:
            break
        await asyncio.sleep(0.5)
    if desc.status.is_open:
        reviews = [
            issue
            for issue in linear.state(org)["issues"]
            if issue["title"].startswith("Triage proposal")
        ]
        if reviews:
            say(
                f"  proposal         {reviews[-1]['identifier']} in the local Linear: "
                f"{reviews[-1]['url']}"
            )
        say("  It waits for your decision (24 h). In another terminal:")
        say(f"    durable approve '{workflow_id}'")
        say(f"    durable approve '{workflow_id}' --decision revise --notes 'ENG-10 priority 2'")
        say(f"    durable approve '{workflow_id}' --decision reject --notes 'not now'")
        say("    durable linear issues          # the local Linear's issues, before and after")
        for command in desc.resolve_with:  # the same, with Temporal's own CLI
            say("  or with Temporal's CLI:")
            say(f"    {command}")
        say("")
    try:
        out: BacklogTriageOutput = await handle.result()
    except (RunCancelled, WorkflowFailed) as err:
        say(f"  Demo run ended: {err}")
        return None
    say("")
    say(f"  Demo run {out.status} after {out.rounds} round(s).")
    if out.applied:
        state = linear.state(org)
        applied = set(out.applied)
        say("  Changed in the local Linear (priority, owner, labels):")
        for issue in state["issues"]:
            if issue["identifier"] in applied:
                say(f"    {issue_line(state, issue)}")
    say("")
    return out

"""The ledger check at the end of a chaos run, against what the store, Temporal and the local
Linear hold (read as PostgreSQL's superuser, so row-level security hides no org's rows).

- Every event the harness sent and got a receipt for is stored once (`events`), and was acted
  on once: a trigger has one `start` delivery, `delivered`; an answer was taken by exactly one
  wait (`waits.event_id`), the right step of the right run, with at most one signal delivery,
  `delivered`. No id got two "stored now" receipts.
- The agent sessions' own events too: each `agent-session.requested` started its session once,
  each `agent-session.completed` was taken by exactly one wait.
- Every run ended as its inputs call for, with its side effects exactly once: an example run's
  note (`notes`), each run's agent sessions (`agent_sessions`), a triage run's review issue in
  its org's Linear workspace (Done when approved, Canceled when rejected), its comments, the
  labels it made (no name twice), and the issues it changed (or left alone).
- Nothing is stuck: no run without a result by the deadline, no wait left open, no delivery
  left pending, no workflow still running in Temporal.

Each problem is one line in `problems`, filed under lost, duplicated, stuck or wrong.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from temporalio.client import Client

from .stack import Stack
from .workload import REVISE_NOTES, Outcome, Sent

NEEDS_TRIAGE = ("ENG-3", "ENG-5", "ENG-10")  # the seeded issues a triage run proposes for
# A finding with its reproduction (`python -m bench.chaos --repro answer-while-temporal-down`):
# an answer acknowledged while its run's start was still pending (Temporal was down when the
# trigger came) is older than the run, and the run's wait never takes it.
KNOWN_ANSWER_BEFORE_START = "[KNOWN: sent while its run's start was deferred; bench/chaos/repro.py]"
SESSION_REQUESTED = "rensei/pm.agent-session.requested"
SESSION_COMPLETED = "rensei/pm.agent-session.completed"


@dataclass
class Ledger:
    problems: dict[str, list[str]] = field(
        default_factory=lambda: {"lost": [], "duplicated": [], "stuck": [], "wrong": []}
    )
    checked: Counter[str] = field(default_factory=Counter)

    def add(self, kind: str, line: str) -> None:
        self.problems[kind].append(line)

    def count(self, kind: str) -> int:
        return len(self.problems[kind])

    @property
    def clean(self) -> bool:
        return not any(self.problems.values())


async def check(
    stack: Stack, sent: dict[str, Sent], outcomes: list[Outcome], *, linear: bool = True
) -> Ledger:
    ledger = Ledger()
    conn = await stack.superuser()
    try:
        await check_sent(conn, ledger, sent)
        await check_sessions(conn, ledger)
        await check_leftovers(conn, ledger)
        for outcome in outcomes:
            await check_run(conn, ledger, outcome)
            if linear and outcome.spec.kind == "triage" and outcome.result is not None:
                check_linear(stack, ledger, outcome)
    finally:
        await conn.close()
    assert stack.temporal_client is not None
    await check_temporal(stack.temporal_client, ledger)
    return ledger


async def check_sent(conn: asyncpg.Connection, ledger: Ledger, sent: dict[str, Sent]) -> None:
    ids = [s.event_id for s in sent.values() if s.acked]
    stored = Counter(
        r["id"] for r in await conn.fetch("SELECT id FROM events WHERE id = ANY($1)", ids)
    )
    deliveries: dict[str, list[asyncpg.Record]] = {}
    for row in await conn.fetch(
        "SELECT event_id, kind, workflow_id, step_id, state FROM deliveries"
        " WHERE event_id = ANY($1)",
        ids,
    ):
        deliveries.setdefault(row["event_id"], []).append(row)
    takers: dict[str, list[asyncpg.Record]] = {}
    for row in await conn.fetch(
        "SELECT event_id, workflow_id, step_id, state FROM waits WHERE event_id = ANY($1)", ids
    ):
        takers.setdefault(row["event_id"], []).append(row)
    for s in sent.values():
        if not s.acked:
            ledger.add("lost", f"{s.event_id}: never acknowledged in {s.sends} send(s)")
            continue
        ledger.checked["events"] += 1
        if stored[s.event_id] != 1:
            ledger.add("lost", f"{s.event_id}: acknowledged but not stored")
            continue
        if s.new > 1:
            ledger.add("duplicated", f"{s.event_id}: {s.new} receipts said 'stored now'")
        mine = deliveries.get(s.event_id, [])
        if s.round == 0:
            starts = [d for d in mine if d["kind"] == "start" and d["workflow_id"] == s.target]
            if len(starts) > 1 or len(mine) > len(starts):
                ledger.add("duplicated", f"{s.event_id}: deliveries {[dict(d) for d in mine]}")
            elif not starts or starts[0]["state"] != "delivered":
                ledger.add("lost", f"{s.event_id}: start not delivered: {[dict(d) for d in mine]}")
            continue
        taken = takers.get(s.event_id, [])
        step = f"await-approval#{s.round}"
        signals = [d for d in mine if d["kind"] == "signal"]
        if len(taken) > 1 or len(signals) > 1:
            ledger.add(
                "duplicated",
                f"{s.event_id}: taken by {[dict(t) for t in taken]}, signals "
                f"{[dict(d) for d in signals]}",
            )
        elif not taken:
            early = " (sent before its wait)" if s.early else ""
            trigger = next(
                (t for t in sent.values() if t.round == 0 and t.target == s.target), None
            )
            if s.at_once and trigger is not None and trigger.deferred:
                early += f" {KNOWN_ANSWER_BEFORE_START}"
            early += await before_not_before(conn, s, step)
            ledger.add("lost", f"{s.event_id}{early}: acknowledged, taken by no wait")
        elif (taken[0]["workflow_id"], taken[0]["step_id"]) != (s.target, step):
            ledger.add("wrong", f"{s.event_id}: taken by {dict(taken[0])}, not {s.target} {step}")
        elif signals and signals[0]["state"] != "delivered":
            ledger.add("lost", f"{s.event_id}: its signal is {signals[0]['state']}")


async def before_not_before(conn: asyncpg.Connection, s: Sent, step: str) -> str:
    """Why a wait passed over an answer: it was received before the wait's `not_before`."""
    row = await conn.fetchrow(
        "SELECT e.received_at, w.not_before FROM events e, waits w"
        " WHERE e.id = $1 AND w.workflow_id = $2 AND w.step_id = $3",
        s.event_id,
        s.target,
        step,
    )
    if row is None or row["received_at"] >= row["not_before"]:
        return ""
    return (
        f" [KNOWN: received {row['received_at']:%H:%M:%S.%f}, before the wait's not_before "
        f"{row['not_before']:%H:%M:%S.%f} (the run's first workflow task - 5 s); "
        "python -m bench.chaos --repro answer-before-first-task]"
    )


async def check_sessions(conn: asyncpg.Connection, ledger: Ledger) -> None:
    """The events the runs sent themselves: session requests and completions."""
    for row in await conn.fetch(
        "SELECT e.id, count(d.*) FILTER (WHERE d.kind = 'start') AS starts,"
        " count(d.*) FILTER (WHERE d.kind = 'start' AND d.state = 'delivered') AS delivered"
        " FROM events e LEFT JOIN deliveries d ON d.event_id = e.id"
        " WHERE e.type = $1 GROUP BY e.id",
        SESSION_REQUESTED,
    ):
        ledger.checked["session events"] += 1
        if row["starts"] > 1:
            ledger.add("duplicated", f"session request {row['id']}: {row['starts']} starts")
        elif row["delivered"] != 1:
            ledger.add("lost", f"session request {row['id']}: its start was not delivered")
    for row in await conn.fetch(
        "SELECT e.id, e.data->>'session_id' AS session,"
        " (SELECT count(*) FROM waits w WHERE w.event_id = e.id) AS taken"
        " FROM events e WHERE e.type = $1",
        SESSION_COMPLETED,
    ):
        ledger.checked["session events"] += 1
        if row["taken"] > 1:
            ledger.add("duplicated", f"completion {row['id']}: taken by {row['taken']} waits")
        elif row["taken"] == 0:
            ledger.add("lost", f"completion {row['id']} of {row['session']}: taken by no wait")
    for row in await conn.fetch(
        "SELECT data->>'session_id' AS session, count(*) AS n FROM events WHERE type = $1"
        " GROUP BY 1 HAVING count(*) > 1",
        SESSION_COMPLETED,
    ):
        ledger.add("duplicated", f"session {row['session']} announced its end {row['n']} times")


async def check_leftovers(conn: asyncpg.Connection, ledger: Ledger) -> None:
    for row in await conn.fetch(
        "SELECT workflow_id, step_id, event_type FROM waits WHERE state = 'open'"
    ):
        ledger.add("stuck", f"wait still open: {dict(row)}")
    for row in await conn.fetch(
        "SELECT event_id, kind, workflow_id, attempts, last_error FROM deliveries"
        " WHERE state = 'pending'"
    ):
        ledger.add("stuck", f"delivery still pending: {dict(row)}")
    for row in await conn.fetch(
        "SELECT event_id, kind, workflow_id FROM deliveries WHERE state = 'undeliverable'"
    ):
        ledger.add("lost", f"delivery undeliverable: {dict(row)}")


async def check_run(conn: asyncpg.Connection, ledger: Ledger, outcome: Outcome) -> None:
    spec, out = outcome.spec, outcome.result
    wid = spec.workflow_id
    ledger.checked["runs"] += 1
    if outcome.stuck:
        ledger.add("stuck", f"{wid}: no result by the deadline: {outcome.error}")
        return
    if out is None:
        ledger.add("wrong", f"{wid}: {outcome.error}")
        return
    sessions = await conn.fetch(
        "SELECT session_id, status FROM agent_sessions WHERE requested_by = $1", wid
    )
    rounds = 1 + spec.decisions.count("revise")
    want_sessions = {"example": 0, "demo": 1, "triage": rounds}[spec.kind]
    if len(sessions) != want_sessions or any(s["status"] != "completed" for s in sessions):
        kind = "duplicated" if len(sessions) > want_sessions else "wrong"
        ledger.add(kind, f"{wid}: agent sessions {[dict(s) for s in sessions]}")
    if spec.kind == "example":
        notes = await conn.fetchval("SELECT count(*) FROM notes WHERE workflow_id = $1", wid)
        if notes != 1:
            ledger.add("duplicated" if notes > 1 else "lost", f"{wid}: {notes} notes")
        if out.get("parts") != 3 or not out.get("note_key"):
            ledger.add("wrong", f"{wid}: ended with {out}")
    elif spec.kind == "demo":
        if out.get("status") != "completed":
            ledger.add("wrong", f"{wid}: ended with {out}")
    else:
        want = "approved" if spec.decisions[-1] == "approve" else "rejected"
        applied = sorted(NEEDS_TRIAGE) if want == "approved" else []
        got = (out.get("status"), out.get("rounds"), sorted(out.get("applied") or []))
        if got != (want, rounds, applied):
            ledger.add("wrong", f"{wid}: ended {got}, not {(want, rounds, applied)}")


def check_linear(stack: Stack, ledger: Ledger, outcome: Outcome) -> None:
    """The triage run's org in the local Linear: one review issue, its comments, the issues."""
    spec = outcome.spec
    state = stack.linear.state(spec.org)
    states = {s["id"]: s["type"] for s in state["workflowStates"]}
    reviews = [i for i in state["issues"] if i["title"].startswith("Triage proposal")]
    approved = spec.decisions[-1] == "approve"
    ledger.checked["linear orgs"] += 1
    if len(reviews) != 1:
        kind = "duplicated" if len(reviews) > 1 else "lost"
        ledger.add(kind, f"{spec.org}: {len(reviews)} review issues")
        return
    (review,) = reviews
    comments = [c["body"] for c in state["comments"] if c["issueId"] == review["id"]]
    want = (["Revised proposal (round 2)"] if "revise" in spec.decisions else []) + [
        "Approved by chaos" if approved else "Rejected by chaos"
    ]
    if len(comments) > len(want):
        ledger.add("duplicated", f"{spec.org}: comments {comments!r}")
    elif [c[: len(w)] for c, w in zip(comments, want, strict=False)] != want:
        ledger.add("wrong", f"{spec.org}: comments {comments!r}, want {want!r}")
    done = states.get(review["stateId"])
    if done != ("completed" if approved else "canceled"):
        ledger.add("wrong", f"{spec.org}: the review issue is {done}")
    names = Counter((lb.get("teamId"), lb["name"].lower()) for lb in state["issueLabels"])
    for (_, name), n in names.items():
        if n > 1:
            ledger.add("duplicated", f"{spec.org}: label {name!r} exists {n} times")
    issues = {i["identifier"]: i for i in state["issues"]}
    for identifier in NEEDS_TRIAGE:
        issue = issues[identifier]
        before = stack_before(stack, spec.org, identifier)
        if not approved:
            changed = {k for k in ("priority", "labelIds", "assigneeId") if issue[k] != before[k]}
            if changed:
                ledger.add("wrong", f"{spec.org} {identifier}: rejected, yet changed {changed}")
        elif not (issue["priority"] and issue["labelIds"] and issue["assigneeId"]):
            ledger.add("wrong", f"{spec.org} {identifier}: approved, not triaged: {issue}")
    if approved and "revise" in spec.decisions and issues["ENG-10"]["priority"] != 2:
        ledger.add("wrong", f"{spec.org} ENG-10: not revised ({REVISE_NOTES})")


def stack_before(stack: Stack, org: str, identifier: str) -> dict[str, Any]:
    """An issue as the seed made it (the harness snapshots each org before its run)."""
    return stack.before[org][identifier]


async def check_temporal(client: Client, ledger: Ledger) -> None:
    async for wf in client.list_workflows("ExecutionStatus = 'Running'"):
        ledger.add("stuck", f"still running in Temporal: {wf.id} ({wf.workflow_type})")

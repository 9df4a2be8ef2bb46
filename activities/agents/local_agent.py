"""A small, deterministic agent for the command runtime, for tests and the demo: no model.

    echo '{"prompt": "triage", "context": {"issues": [{"id": "A-1", "title": "Crash on save"}]}}' \\
        | python -m activities.agents.local_agent

It reads `{"prompt", "context"}` on stdin, prints a few `{"progress": ...}` lines and one
`{"result": ...}` line on stdout. `context["task"]` picks what it does (see `TASKS`):

- `triage` (the default when there are `issues`): labels, a priority and an owner per issue by
  keyword rules; reviewer `notes` such as "ENG-3 priority 1; ENG-4 owner Grace Hopper; ENG-5
  labels bug, security; skip ENG-6" revise the proposal.
- `status-report`: a markdown status report from `projects` and what moved in each.
- `stale-review`: for each stale issue, propose `close` or `ping` (its assignee), with a reason;
  reviewer `notes` such as "keep ENG-5; close ENG-3; ping ENG-6" revise it.
- `audit`: findings about one `project`'s issues (urgent work left open, bugs with no owner,
  work in progress that has not moved).
- `revise-finding`: a `finding` revised with the reviewer's `notes`.
- `consolidate-memory`: memory notes for a `project` from the `sessions` it is given.

Otherwise it describes the prompt.

Flags in `context`, for tests: `sleep` (seconds to work before answering, reporting progress
each second), `garbage` (print a line that is not JSON), `exit` (exit with this status after
writing to stderr), `stderr` (text to write to stderr).

Standard library only: it runs as a plain script too (`python local_agent.py`).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from typing import Any

# keyword -> label; the first rule that matches a title or description gives a label.
LABEL_RULES: list[tuple[tuple[str, ...], str]] = [
    (("crash", "error", "exception", "fails", "failure", "broken", "bug"), "bug"),
    (("slow", "latency", "timeout", "performance"), "performance"),
    (("security", "leak", "vulnerab", "xss", "injection"), "security"),
    (("docs", "documentation", "readme", "typo"), "docs"),
    (("add", "support", "feature", "allow", "request"), "feature"),
]
URGENT = ("crash", "data loss", "outage", "security", "down")


def say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def progress(text: str) -> None:
    say({"progress": text})


def triage(issue: dict[str, Any]) -> dict[str, Any]:
    text = f"{issue.get('title', '')} {issue.get('description', '')}".lower()
    labels = sorted({label for words, label in LABEL_RULES if any(w in text for w in words)})
    matched = bool(labels)
    if not labels:
        # No rule matched: keep the labels it has, or ask for a human's eye.
        labels = [str(x) for x in issue.get("labels") or []] or ["needs-triage"]
    if any(w in text for w in URGENT):
        priority = 1
    elif "bug" in labels or "security" in labels:
        priority = 2
    elif "performance" in labels:
        priority = 3
    else:
        priority = 4
    return {
        "issue_id": str(issue.get("id", "")),
        "labels": labels,
        "priority": priority,
        "reason": f"matched {', '.join(labels)}" if matched else "no rule matched",
    }


def _directives(notes: str) -> list[tuple[str, str, str]]:
    """Reviewer notes as (issue, what, value): "ENG-3 priority 1", "ENG-4 owner Grace Hopper",
    "ENG-5 labels bug, security", "skip ENG-6"; separated by ';' or new lines."""
    found: list[tuple[str, str, str]] = []
    for part in re.split(r"[;\n]+", notes):
        words = part.strip().split(None, 2)
        if len(words) == 2 and words[0].lower() == "skip":
            found.append((words[1].upper(), "skip", ""))
        elif len(words) == 3 and words[1].lower() in ("priority", "owner", "labels", "label"):
            found.append((words[0].upper(), words[1].lower().rstrip("s"), words[2].strip()))
    return found


def _owner(issue: dict[str, Any], members: list[dict[str, Any]], load: dict[str, int]) -> str:
    """Keep the assignee; otherwise the member with the fewest proposed issues so far."""
    if issue.get("assignee"):
        return str(issue["assignee"])
    people = [str(m.get("name", "")) for m in members if not m.get("app") and m.get("name")]
    if not people:
        return ""
    chosen = min(people, key=lambda name: (load.get(name, 0), name))
    load[chosen] = load.get(chosen, 0) + 1
    return chosen


def _known_label(name: str, known: list[str]) -> str:
    for label in known:
        if label.lower() == name.lower():
            return label
    return name


def triage_all(context: dict[str, Any]) -> dict[str, Any]:
    issues = [i for i in context.get("issues") or [] if isinstance(i, dict)]
    members = [m for m in context.get("members") or [] if isinstance(m, dict)]
    known = [str(label) for label in context.get("labels") or []]
    progress(f"triaging {len(issues)} issue(s)")
    load: dict[str, int] = {}
    proposals = []
    for issue in issues:
        proposal = triage(issue)
        proposal["identifier"] = str(issue.get("identifier", ""))
        proposal["labels"] = [_known_label(label, known) for label in proposal["labels"]]
        proposal["owner"] = _owner(issue, members, load)
        proposals.append(proposal)
    notes = str(context.get("notes") or "")
    if notes:
        progress("revising with the reviewer's notes")
        by_key = {p["identifier"].upper(): p for p in proposals if p["identifier"]}
        by_key.update({p["issue_id"].upper(): p for p in proposals})
        skipped: set[str] = set()
        for key, what, value in _directives(notes):
            target = by_key.get(key)
            if target is None:
                continue
            if what == "skip":
                skipped.add(target["issue_id"])
            elif what == "priority" and value.isdigit():
                target["priority"] = int(value)
            elif what == "owner":
                target["owner"] = value
            elif what == "label":
                target["labels"] = [
                    _known_label(v.strip(), known) for v in value.split(",") if v.strip()
                ]
            target["reason"] = f"revised: {what} as the reviewer asked"
        proposals = [p for p in proposals if p["issue_id"] not in skipped]
    urgent = sum(1 for p in proposals if p["priority"] == 1)
    return {
        "kind": "triage",
        "proposals": proposals,
        "summary": f"proposed labels, priorities and owners for {len(proposals)} issue(s); "
        f"{urgent} urgent",
    }


def status_report(context: dict[str, Any]) -> dict[str, Any]:
    projects = [p for p in context.get("projects") or [] if isinstance(p, dict)]
    progress(f"writing a status report over {len(projects)} project(s)")
    lines = [f"# Status review: {context.get('period', 'this week')}", ""]
    total = 0
    for project in projects:
        moved = [i for i in project.get("moved") or [] if isinstance(i, dict)]
        total += len(moved)
        done = [i for i in moved if i.get("state_type") == "completed"]
        started = [i for i in moved if i.get("state_type") == "started"]
        lines.append(f"## {project.get('name', 'No project')}")
        if not moved:
            lines += ["Nothing moved.", ""]
            continue
        lines.append(f"{len(moved)} issue(s) moved: {len(done)} done, {len(started)} in progress.")
        for issue in moved:
            lines.append(
                f"- {issue.get('identifier', '')} {issue.get('title', '')}: "
                f"{issue.get('state', '')}"
            )
        lines.append("")
    return {
        "kind": "status-report",
        "report": "\n".join(lines).strip() + "\n",
        "summary": f"status report: {total} issue(s) moved across {len(projects)} project(s)",
    }


def stale_review(context: dict[str, Any]) -> dict[str, Any]:
    issues = [i for i in context.get("issues") or [] if isinstance(i, dict)]
    days = float(context.get("stale_days") or 14)
    progress(f"reviewing {len(issues)} stale issue(s)")
    proposals = []
    for issue in issues:
        idle = float(issue.get("days_idle") or 0)
        unowned = not issue.get("assignee")
        if unowned and (issue.get("state_type") in ("backlog", "unstarted") or idle >= 2 * days):
            action, reason = "close", f"no owner and untouched for {idle:.0f} days"
        elif unowned:
            action, reason = "ping", f"untouched for {idle:.0f} days and has no owner"
        else:
            action, reason = "ping", f"{issue['assignee']} has not touched it for {idle:.0f} days"
        proposals.append(
            {
                "issue_id": str(issue.get("id", "")),
                "identifier": str(issue.get("identifier", "")),
                "action": action,
                "reason": reason,
            }
        )
    notes = str(context.get("notes") or "")
    if notes:
        progress("revising with the reviewer's notes")
        # "keep ENG-5" drops it; "close ENG-3" / "ping ENG-3" sets its action.
        for part in re.split(r"[;\n]+", notes):
            words = part.strip().split()
            if len(words) != 2 or words[0].lower() not in ("keep", "close", "ping"):
                continue
            verb, key = words[0].lower(), words[1].upper()
            for proposal in proposals:
                if key in (proposal["identifier"].upper(), proposal["issue_id"].upper()):
                    proposal["action"] = verb
                    proposal["reason"] = f"the reviewer asked to {verb} it"
        proposals = [p for p in proposals if p["action"] != "keep"]
    closing = sum(1 for p in proposals if p["action"] == "close")
    return {
        "kind": "stale-review",
        "proposals": proposals,
        "summary": f"{closing} to close, {len(proposals) - closing} to ping",
    }


def audit(context: dict[str, Any]) -> dict[str, Any]:
    project = context.get("project") or {}
    issues = [i for i in project.get("issues") or [] if isinstance(i, dict)]
    name = str(project.get("name", "project"))
    progress(f"auditing {name}: {len(issues)} issue(s)")
    open_ = [i for i in issues if i.get("state_type") not in ("completed", "canceled")]
    rules = [
        (
            "high",
            "Urgent work is still open",
            [i for i in open_ if i.get("priority") == 1],
            "Urgent issues should be resolved or re-prioritised.",
        ),
        (
            "medium",
            "Bugs nobody owns",
            [
                i
                for i in open_
                if "bug" in [str(x).lower() for x in i.get("labels") or []]
                and not i.get("assignee")
            ],
            "Open bugs without an assignee tend to be forgotten.",
        ),
        (
            "low",
            "Work in progress that has not moved",
            [
                i
                for i in open_
                if i.get("state_type") == "started" and float(i.get("days_idle") or 0) >= 7
            ],
            "Started issues untouched for a week or more.",
        ),
    ]
    findings: list[dict[str, Any]] = []
    for severity, title, matched, why in rules:
        if not matched:
            continue
        findings.append(
            {
                "id": f"F{len(findings) + 1}",
                "title": f"{name}: {title}",
                "severity": severity,
                "detail": why
                + " "
                + ", ".join(f"{i.get('identifier', '')} ({i.get('title', '')})" for i in matched),
                "issue_ids": [str(i.get("id", "")) for i in matched],
            }
        )
    return {
        "kind": "audit",
        "project": name,
        "findings": findings,
        "summary": f"{name}: {len(findings)} finding(s) over {len(issues)} issue(s)",
    }


def revise_finding(context: dict[str, Any]) -> dict[str, Any]:
    finding = dict(context.get("finding") or {})
    notes = str(context.get("notes") or "").strip()
    progress(f"revising finding {finding.get('id', '')}")
    match = re.search(r"severity\s+(high|medium|low)", notes, re.IGNORECASE)
    if match:
        finding["severity"] = match[1].lower()
    if notes:
        finding["detail"] = f"{finding.get('detail', '')}\n\nRevised: {notes}".strip()
    return {
        "kind": "revise-finding",
        "finding": finding,
        "summary": f"revised {finding.get('id', '')}",
    }


def consolidate_memory(context: dict[str, Any]) -> dict[str, Any]:
    project = str(context.get("project") or "")
    sessions = [s for s in context.get("sessions") or [] if isinstance(s, dict)]
    progress(f"consolidating {len(sessions)} session(s) for {project or 'no project'}")
    seen: set[str] = set()
    points = []
    for session in sessions:
        summary = str(session.get("summary") or "").strip()
        if summary and summary.lower() not in seen:
            seen.add(summary.lower())
            points.append(f"- {summary} ({session.get('agent_id') or 'agent'})")
    previous = str(context.get("previous") or "").strip()
    note = "\n".join([f"## What agents learned about {project or 'the org'}", *points])
    if previous:
        note = previous + "\n" + "\n".join(points)
    return {
        "kind": "memory",
        "project": project,
        "note": note.strip() + "\n",
        "summary": f"{len(points)} new point(s) from {len(sessions)} session(s)",
    }


TASKS = {
    "triage": triage_all,
    "status-report": status_report,
    "stale-review": stale_review,
    "audit": audit,
    "revise-finding": revise_finding,
    "consolidate-memory": consolidate_memory,
}


def answer(prompt: str, context: dict[str, Any]) -> dict[str, Any]:
    task = context.get("task") or ("triage" if context.get("issues") else "")
    if task:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; this agent does: {', '.join(TASKS)}")
        return TASKS[str(task)](context)
    words = prompt.split()
    return {
        "kind": "echo",
        "words": len(words),
        "summary": f"read a prompt of {len(words)} word(s): {' '.join(words[:12])}",
    }


def main() -> int:
    try:
        request = json.loads(sys.stdin.read() or "{}")
    except json.JSONDecodeError as err:
        sys.stderr.write(f"local agent: stdin is not JSON: {err}\n")
        return 2
    prompt = str(request.get("prompt", ""))
    context = request.get("context") or {}
    progress(f"started (pid {os.getpid()})")
    progress(f"read a prompt of {len(prompt)} character(s)")
    if context.get("stderr"):
        sys.stderr.write(str(context["stderr"]) + "\n")
        sys.stderr.flush()
    seconds = float(context.get("sleep", 0) or 0)
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(1.0, left))
        progress(f"working ({max(0.0, deadline - time.monotonic()):.0f} s left)")
    if context.get("garbage"):
        sys.stdout.write("Sure! Here is my answer: labels=bug priority=high\n")
        sys.stdout.flush()
        return 0
    if "exit" in context:
        code = int(context["exit"])
        sys.stderr.write(f"local agent: exiting with status {code} as asked\n")
        return code
    try:
        result = answer(prompt, context)
    except ValueError as err:
        sys.stderr.write(f"local agent: {err}\n")
        return 2
    progress("done")
    say({"result": result})
    return 0


if __name__ == "__main__":
    sys.exit(main())

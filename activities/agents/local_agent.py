"""A small, deterministic agent for the command runtime, for tests and the demo: no model.

    echo '{"prompt": "triage", "context": {"issues": [{"id": "A-1", "title": "Crash on save"}]}}' \\
        | python -m activities.agents.local_agent

It reads `{"prompt", "context"}` on stdin, prints a few `{"progress": ...}` lines and one
`{"result": ...}` line on stdout. With issues in the context it proposes labels and a priority
per issue by simple keyword rules; otherwise it describes the prompt.

Flags in `context`, for tests: `sleep` (seconds to work before answering, reporting progress
each second), `garbage` (print a line that is not JSON), `exit` (exit with this status after
writing to stderr), `stderr` (text to write to stderr).

Standard library only: it runs as a plain script too (`python local_agent.py`).
"""

from __future__ import annotations

import json
import os
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
    if not labels:
        labels = ["needs-triage"]
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
        "reason": f"matched {', '.join(labels)}" if labels != ["needs-triage"] else "no rule",
    }


def answer(prompt: str, context: dict[str, Any]) -> dict[str, Any]:
    issues = context.get("issues")
    if isinstance(issues, list) and issues:
        progress(f"triaging {len(issues)} issue(s)")
        proposals = [triage(i) for i in issues if isinstance(i, dict)]
        urgent = sum(1 for p in proposals if p["priority"] == 1)
        return {
            "kind": "triage",
            "proposals": proposals,
            "summary": f"proposed labels and priorities for {len(proposals)} issue(s); "
            f"{urgent} urgent",
        }
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
    result = answer(prompt, context)
    progress("done")
    say({"result": result})
    return 0


if __name__ == "__main__":
    sys.exit(main())

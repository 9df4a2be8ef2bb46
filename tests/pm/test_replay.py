"""Replay the recorded histories of the PM agents, the audit and memory consolidation
(tests/histories/pm, made by `python -m tests.histories.pm.record`): today's code must take
the same path as the code that recorded them, so a change that would break runs in flight
fails here."""

from __future__ import annotations

import json
from pathlib import Path

from adapters.temporal import load_history, replay
from workflows import registry

HISTORIES = Path(__file__).parent.parent / "histories" / "pm"


async def test_current_code_replays_every_recorded_pm_history() -> None:
    index: dict[str, str] = json.loads((HISTORIES / "index.json").read_text())
    assert set(index) >= {
        "backlog_triage.json",
        "status_review.json",
        "stale_sweeper.json",
        "audit.json",
        "audit_project.json",
        "memory_consolidate.json",
        "pm_tick.json",
    }
    histories = [load_history((HISTORIES / name).read_text(), run) for name, run in index.items()]
    await replay(registry(), histories)

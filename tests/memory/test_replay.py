"""Replay the recorded memory consolidation histories (tests/histories/memory, made by
`python -m tests.histories.memory.record`): two runs at once, one counting two projects, the
other finding a note rewritten meanwhile. Today's code must take the same path as the code
that recorded them, so a change that would break runs in flight fails here. (A plain run is
replayed from tests/histories/pm by tests/pm/test_replay.py.)"""

from __future__ import annotations

import json
from pathlib import Path

from adapters.temporal import load_history, replay
from workflows import registry

HISTORIES = Path(__file__).parent.parent / "histories" / "memory"


async def test_current_code_replays_the_recorded_memory_histories() -> None:
    index: dict[str, str] = json.loads((HISTORIES / "index.json").read_text())
    assert set(index) == {"two_projects.json", "note_changed_meanwhile.json"}
    histories = [load_history((HISTORIES / name).read_text(), run) for name, run in index.items()]
    await replay(registry(), histories)

"""Record the memory consolidation histories that tests/memory/test_replay.py replays:

    python -m tests.histories.memory.record

Starts a dev server, PostgreSQL and the local Linear of its own; runs agent sessions of one org
on two projects with the shipped local agent, then two consolidation runs at once: the first
counts both projects; the second finds the first project's note rewritten meanwhile and leaves
it (the "another run changed the note" path). Writes both histories next to this file and their
workflow ids to index.json. Re-record only when an incompatible change is intended and no runs
of the old code remain in flight.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from activities.linear.local_server import LocalLinear
from tests.histories.pm.record import record_with_pm
from tests.memory.conftest import holding, session, start, writes_waiting
from tests.pm.conftest import Pm

HERE = Path(__file__).parent
ORG = "org-recorded"


async def record(pm: Pm, linear: LocalLinear) -> dict[str, str]:
    async with pm.running(linear) as client:
        held = await session(client, ORG, "billing", "invoices double charged on retry")
        await session(client, ORG, "billing", "refund webhook lost after deploy")
        await session(client, ORG, "search", "archived filter ignored")
        async with holding(pm.pool, ORG, "billing", held):
            first = await start(client, ORG)
            await writes_waiting(pm.pool, 1)
            second = await start(client, ORG)
            await writes_waiting(pm.pool, 2)
        out = await first.result()
        assert out.counted == 3, out
        out = await second.result()
        assert "another run changed the note" in out.groups[0].error, out
    return {
        "two_projects.json": first.workflow_id,
        "note_changed_meanwhile.json": second.workflow_id,
    }


if __name__ == "__main__":
    asyncio.run(record_with_pm(HERE, record))

"""`durable session` as a user runs it: a session's status and progress, followed live."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from .conftest import Agents
from .test_sessions import session_of_parent, until_session
from .workflows import ParentInput

DURABLE = str(Path(sys.executable).parent / "durable")


async def durable(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        DURABLE,
        *args,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 90)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_session_shows_progress_while_it_runs_and_the_end(
    agents: Agents, database_url: str
) -> None:
    env = {"DATABASE_URL": database_url}
    async with agents.running() as client:
        handle = await client.start(
            "tests/agents-parent.run", ParentInput(prompt="watch me", context={"sleep": 3})
        )
        session_id = await session_of_parent(agents, handle.id)
        await until_session(agents, session_id)
        code, out, err = await durable("session", session_id, "--follow", env=env)
        assert code == 0, err
        await handle.result()
        code, as_json, _ = await durable("session", session_id, "--json", "--result", env=env)
    lines = out.splitlines()
    assert lines[0] == f"session      {session_id}"
    assert "status       running" in lines[1] or "status       completed" in lines[1]
    assert any("working (" in line for line in lines), "progress lines, printed as they came"
    assert any(line.endswith("  done") for line in lines)
    assert "status       completed" in lines
    assert f"result ref   agent-session:{session_id}" in lines
    shown = json.loads(as_json)
    assert shown["status"] == "completed"
    assert shown["result"]["summary"] == "read a prompt of 2 word(s): watch me"
    assert shown["progress"][-1]["line"] == "done"


async def test_an_unknown_session_is_exit_3(database_url: str) -> None:
    code, _, err = await durable("session", "no-such-session", env={"DATABASE_URL": database_url})
    assert code == 3
    assert "no agent session 'no-such-session' is recorded" in err

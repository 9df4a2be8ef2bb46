"""`durable session` as a user runs it: a session's status and progress, followed live."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from workers.embedded import EmbeddedTemporal

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
    agents: Agents, database_url: str, dev_server: EmbeddedTemporal
) -> None:
    # Temporal too: `durable session` reads the session as its run's org, named in its memo.
    env = {"DATABASE_URL": database_url, "TEMPORAL_ADDRESS": dev_server.address}
    async with agents.running() as client:
        handle = await client.start(
            "tests/agents-parent.run", ParentInput(prompt="watch me", context={"sleep": 3})
        )
        session_id = await session_of_parent(agents, handle.workflow_id)
        await until_session(agents, session_id)
        code, out, err = await durable("session", session_id, "--follow", env=env)
        assert code == 0, err
        await handle.result()
        code, as_json, _ = await durable("session", session_id, "--json", "--result", env=env)
        hidden, _, says = await durable("session", session_id, "--org", "someone-else", env=env)
    assert hidden == 3 and f"no agent session {session_id!r}" in says, "another org sees nothing"
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


async def test_an_unknown_session_is_exit_3(
    database_url: str, dev_server: EmbeddedTemporal
) -> None:
    env = {"DATABASE_URL": database_url, "TEMPORAL_ADDRESS": dev_server.address}
    code, _, err = await durable("session", "no-such-session", env=env)
    assert code == 3
    assert "no agent session 'no-such-session' is recorded" in err
    # Without Temporal the session's org is unknown: say so, and how to give it.
    env["TEMPORAL_ADDRESS"] = "127.0.0.1:1"
    code, _, err = await durable("session", "no-such-session", env=env)
    assert code == 4 and "cannot reach Temporal" in err and "--org" in err
    code, _, err = await durable("session", "no-such-session", "--org", "acme", env=env)
    assert code == 3, "with --org, Temporal is not needed"

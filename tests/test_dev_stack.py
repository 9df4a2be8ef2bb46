"""`durable dev`, the README's first command: it starts everything, runs the example, stops
everything on Ctrl-C, and keeps runs across a restart."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from workers.embedded import free_port, port_in_use

from .test_cli import durable

BIN = Path(sys.executable).parent


@asynccontextmanager
async def dev_stack(env: dict[str, str]) -> AsyncIterator[asyncio.subprocess.Process]:
    process = await asyncio.create_subprocess_exec(
        str(BIN / "durable"),
        "dev",
        env={**os.environ, **env},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    seen: list[str] = []
    try:
        async with asyncio.timeout(120):
            while True:
                line = (await process.stderr.readline()).decode()
                assert line, f"durable dev exited early: {''.join(seen)}"
                seen.append(line)
                if "Press Ctrl-C" in line:
                    break
        banner = "".join(seen)
        assert f"Temporal UI      http://127.0.0.1:{env['DURABLE_UI_PORT']}" in banner
        drain = asyncio.create_task(process.stderr.read())
        yield process
        process.send_signal(signal.SIGINT)  # what Ctrl-C sends
        code = await asyncio.wait_for(process.wait(), 60)
        assert code == 0, (await drain).decode()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_dev_runs_the_example_stops_on_ctrl_c_and_keeps_runs(tmp_path: Path) -> None:
    temporal_port, ui_port, api_port = free_port(), free_port(), free_port()
    linear_port = free_port()
    env = {
        "DURABLE_LINEAR_PORT": str(linear_port),
        "DURABLE_DATA_DIR": str(tmp_path / "data"),
        "DURABLE_TEMPORAL_PORT": str(temporal_port),
        "DURABLE_UI_PORT": str(ui_port),
        "DURABLE_API_PORT": str(api_port),
        "DURABLE_TASK_QUEUE": "dev-test",
    }
    async with dev_stack(env):
        ui = await asyncio.to_thread(
            urllib.request.urlopen, f"http://127.0.0.1:{ui_port}/", timeout=10
        )
        assert ui.status == 200, "the Temporal UI answers at the printed address"
        code, out, err = await durable("start", "rensei/example.run", "--wait", env=env)
        assert code == 0, err
        run_id = out.splitlines()[0]
        assert '"parts": 3' in out
        code, out, err = await durable("approve", run_id, env=env)
        assert code == 0, err
        event_id = json.loads(out)["id"]
        found = await asyncio.to_thread(
            urllib.request.urlopen, f"http://127.0.0.1:{api_port}/events/{event_id}", timeout=10
        )
        assert json.loads(found.read())["type"] == "rensei/approval.resolved", (
            "the HTTP API of durable dev serves the event the CLI sent"
        )
        linear = await asyncio.to_thread(
            urllib.request.urlopen, f"http://127.0.0.1:{linear_port}/state", timeout=10
        )
        issues = json.loads(linear.read())["issues"]
        assert len(issues) == 10, "with no Linear key, the local Linear runs, seeded"
    assert not port_in_use(temporal_port), "Ctrl-C stopped the Temporal dev server"
    assert not port_in_use(ui_port)
    assert not port_in_use(linear_port), "and the local Linear"

    async with dev_stack(env):
        code, out, _ = await durable("status", run_id, env=env)
    assert code == 0
    assert "status     completed" in out, "the run survived the restart (SQLite in the data dir)"

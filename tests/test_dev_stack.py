"""`durable dev`, the README's first command: it starts everything, runs the example, stops
everything on Ctrl-C, and keeps runs across a restart."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest

from workers.embedded import free_port, port_in_use

from .test_cli import durable

BIN = Path(sys.executable).parent


class Stderr:
    """What `durable dev` has printed so far; read as it comes."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    @property
    def text(self) -> str:
        return "".join(self.lines)

    async def wait_for(self, needle: str, timeout: float = 120) -> str:
        """The first line containing `needle`, once printed."""
        async with asyncio.timeout(timeout):
            while True:
                for line in self.lines:
                    if needle in line:
                        return line
                await asyncio.sleep(0.1)


@asynccontextmanager
async def dev_stack(
    env: dict[str, str], *args: str, cwd: Path | None = None
) -> AsyncIterator[tuple[asyncio.subprocess.Process, Stderr]]:
    process = await asyncio.create_subprocess_exec(
        str(BIN / "durable"),
        "dev",
        *args,
        env={**os.environ, **env},
        cwd=cwd,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    stream = process.stderr
    seen = Stderr()

    async def read() -> None:
        while line := (await stream.readline()).decode():
            seen.lines.append(line)

    reader = asyncio.create_task(read())
    try:
        try:
            await seen.wait_for("Press Ctrl-C")
        except TimeoutError:
            raise AssertionError(f"durable dev did not come up: {seen.text}") from None
        assert f"Temporal UI      http://127.0.0.1:{env['DURABLE_UI_PORT']}" in seen.text
        yield process, seen
        process.send_signal(signal.SIGINT)  # what Ctrl-C sends
        code = await asyncio.wait_for(process.wait(), 60)
        await reader
        assert code == 0, seen.text
    finally:
        if process.returncode is None:  # the test failed inside: still stop what dev started
            process.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(process.wait(), 60)
            except TimeoutError:
                process.kill()
                await process.wait()
        reader.cancel()


def stack_env(tmp_path: Path) -> dict[str, str]:
    return {
        "DURABLE_LINEAR_PORT": str(free_port()),
        "DURABLE_DATA_DIR": str(tmp_path / "data"),
        "DURABLE_TEMPORAL_PORT": str(free_port()),
        "DURABLE_UI_PORT": str(free_port()),
        "DURABLE_API_PORT": str(free_port()),
        "DURABLE_TASK_QUEUE": "dev-test",
    }


async def test_the_first_command_runs_a_pm_agent_up_to_an_approval(tmp_path: Path) -> None:
    env = stack_env(tmp_path)
    async with dev_stack(env) as (_, stderr):
        line = await stderr.wait_for("    durable approve '")
        run_id = line.split("'")[1]
        assert run_id.startswith("rensei/pm.backlog-triage.run:demo:backlog-triage:")
        link = await stderr.wait_for("watch it ")
        assert f"http://127.0.0.1:{env['DURABLE_UI_PORT']}/namespaces/default/workflows/" in link
        assert "proposal         ENG-11 in the local Linear" in stderr.text
        code, out, err = await durable("linear", "issues", "--json", env=env)
        assert code == 0, err
        before = {i["identifier"]: i for i in json.loads(out)}
        assert before["ENG-10"]["assignee"] == "" and before["ENG-11"]["title"].startswith(
            "Triage proposal"
        )
        code, _, err = await durable("approve", run_id, "--by", "new-user", env=env)
        assert code == 0, err
        await stderr.wait_for("Demo run approved after 1 round(s).")
        code, out, err = await durable("linear", "issues", "--json", env=env)
        after = {i["identifier"]: i for i in json.loads(out)}
        assert after["ENG-10"]["assignee"] == "Ada Lovelace" and after["ENG-10"]["priority"] == 1
        # What the README says the approval changes, and nothing else.
        assert before["ENG-3"]["priority"] == 3 and after["ENG-3"]["priority"] == 4
        assert after["ENG-3"]["assignee"] == "Grace Hopper"
        assert after["ENG-5"]["assignee"] == "Ada Lovelace"
        assert before["ENG-10"]["priority"] == 1, "ENG-10 was urgent before the approval"
        changed = {k for k in before if k != "ENG-11" and before[k] != after[k]}
        assert changed == {"ENG-3", "ENG-5", "ENG-10"}
        assert after["ENG-11"]["state"] == "Done", "the review issue is closed"
        code, out, _ = await durable("linear", "issues", env=env)
        assert any(row.startswith("ENG-10 ") and "Ada Lovelace" in row for row in out.splitlines())
        code, out, _ = await durable("status", run_id, env=env)
        assert "status        completed" in out
        code, out, _ = await durable("result", run_id, env=env)
        decided_by = json.loads(out)["decided_by"]
        assert decided_by.startswith("key:local-dev-") and decided_by.endswith("(via api)"), (
            "the approval went through the API with the local key, and says so"
        )
        key_file = Path(env["DURABLE_DATA_DIR"]) / "api-key"
        assert key_file.stat().st_mode & 0o777 == 0o600, "only its owner reads the local key"
        assert key_file.read_text().strip() not in stderr.text, "the key is never printed"
    assert "ENG-10  urgent  Ada Lovelace" in stderr.text, "the demo prints what changed"
    assert "HTTP Request" not in stderr.text, "no httpx request lines between the instructions"


async def test_no_demo_starts_nothing_and_linear_view_says_when_nothing_answers(
    tmp_path: Path,
) -> None:
    env = stack_env(tmp_path)
    code, _, err = await durable("linear", "issues", env=env)
    assert code == 4 and "cannot read Linear" in err and "durable dev" in err
    async with dev_stack(env, "--no-demo") as (_, stderr):
        code, out, err = await durable("linear", "issues", "--json", env=env)
        assert code == 0, err
        assert len(json.loads(out)) == 10, "the seeded issues, and no triage proposal"
    assert "Demo" not in stderr.text


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
    async with dev_stack(env, "--no-demo") as (_, stderr):
        # It logs in as its app role, not as the cluster's superuser: row-level security binds it.
        shown = (await stderr.wait_for("DATABASE_URL     ")).split()[-1]
        conn = await asyncpg.connect(shown)
        try:
            role = await conn.fetchrow(
                "SELECT current_user AS name, rolsuper, rolbypassrls FROM pg_roles"
                " WHERE rolname = current_user"
            )
        finally:
            await conn.close()
        assert role is not None and tuple(role) == ("durable", False, False), shown
        ui = await asyncio.to_thread(
            urllib.request.urlopen, f"http://127.0.0.1:{ui_port}/", timeout=10
        )
        assert ui.status == 200, "the Temporal UI answers at the printed address"
        code, out, err = await durable("start", "rensei/example.run", "--wait", env=env)
        assert code == 0, err
        assert '"parts": 3' in out
        # The local key acts for org `local`: it answers that org's runs, and no other's.
        code, out, err = await durable("approve", out.splitlines()[0], env=env)
        assert code == 3 and "the API refused it (404): no run" in err, "a run of no org"
        args = ["start", "rensei/example.run", "--wait", "--org", "local"]
        code, out, err = await durable(*args, env=env)
        assert code == 0, err
        run_id = out.splitlines()[0]
        code, out, err = await durable("approve", run_id, env=env)
        assert code == 0, err
        event_id = json.loads(out)["id"]
        url = f"http://127.0.0.1:{api_port}/events/{event_id}"
        key = (Path(env["DURABLE_DATA_DIR"]) / "api-key").read_text().strip()
        asked = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
        found = await asyncio.to_thread(urllib.request.urlopen, asked, timeout=10)
        assert json.loads(found.read())["type"] == "rensei/approval.resolved", (
            "the HTTP API of durable dev serves the event the CLI sent, to the local key"
        )
        with pytest.raises(urllib.error.HTTPError, match="401"):
            await asyncio.to_thread(urllib.request.urlopen, url, timeout=10)
        linear = await asyncio.to_thread(
            urllib.request.urlopen, f"http://127.0.0.1:{linear_port}/state", timeout=10
        )
        issues = json.loads(linear.read())["issues"]
        assert len(issues) == 10, "with no Linear key, the local Linear runs, seeded"
    assert not port_in_use(temporal_port), "Ctrl-C stopped the Temporal dev server"
    assert not port_in_use(ui_port)
    assert not port_in_use(linear_port), "and the local Linear"

    async with dev_stack(env, "--no-demo"):
        code, out, _ = await durable("status", run_id, env=env)
    assert code == 0
    assert "status        completed" in out, "the run survived the restart (SQLite in the data dir)"

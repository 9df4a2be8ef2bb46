"""The `durable` command as a user runs it: help, exit codes, messages, and a run started,
watched and cancelled against a real dev server."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest
from temporalio.client import Client

from adapters.temporal import build_worker
from workers.embedded import EmbeddedTemporal, free_port
from workers.runtime import worker_registry

DURABLE = str(Path(sys.executable).parent / "durable")


@asynccontextmanager
async def worker_process(env: dict[str, str]) -> AsyncIterator[asyncio.subprocess.Process]:
    """`durable worker` with `env` over this process's environment, until the block ends;
    then SIGTERM, and it must stop gracefully (exit 0) within a minute."""
    worker = await asyncio.create_subprocess_exec(
        DURABLE,
        "worker",
        env={**os.environ, **env},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield worker
    finally:
        if worker.returncode is None:
            worker.terminate()
        code = await asyncio.wait_for(worker.wait(), 60)
    assert code == 0, f"durable worker exited {code} on SIGTERM"


async def durable(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        DURABLE,
        *args,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 90)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.mark.parametrize(
    ("command", "says"),
    [
        (["--help"], "durable dev"),
        (["dev", "--help"], "Ctrl-C stops it all"),
        (["worker", "--help"], "SIGTERM"),
        (["api", "--help"], "/readyz"),
        (["keys", "create", "--help"], "cross-org:read"),
        (["start", "--help"], "--input-file"),
        (["status", "--help"], "current step"),
        (["cancel", "--help"], "--reason"),
        (["result", "--help"], "Wait for a run"),
        (["migrate", "--help"], "idempotent"),
        (["workflows", "--help"], "input fields"),
        (["sync-schedules", "--help"], "Temporal Schedules"),
        (["send-event", "--help"], "--data"),
        (["approve", "--help"], "data.workflow_id"),
        (["waits", "--help"], "waiting for"),
        (["linear", "issues", "--help"], "priority, owner"),
        (["dev", "--help"], "--no-demo"),
        (["approve", "--help"], "--item"),
        (["send-event", "--help"], "--org"),
    ],
)
async def test_every_command_has_help(command: list[str], says: str) -> None:
    code, out, _ = await durable(*command)
    assert code == 0
    assert says in " ".join(out.split())


async def test_workflows_lists_the_example_with_its_input() -> None:
    code, out, _ = await durable("workflows")
    assert code == 0
    assert "rensei/example.run" in out and "topic" in out


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["start", "rensei/nope.run"],
            3,
            "unknown workflow 'rensei/nope.run'; registered workflows",
        ),
        (["start", "rensei/example.run", "-i", "{not json"], 2, "input is not valid JSON"),
        (
            ["send-event", "rensei/pm.backlog-triage.requested", "--org", "no spaces allowed"],
            2,
            "'rensei/pm.backlog-triage.requested' is malformed",
        ),
        (
            ["send-event", "rensei/pm.backlog-triage.requested", "-d", '{"max_issues": 0}'],
            2,
            "greater than or equal to 1",
        ),
        (["linear", "issues", "--org", "acme"], 2, "only the local Linear's org 'local'"),
        (["start", "rensei/example.run", "-i", "[1]"], 2, "input must be a JSON object"),
        (["start", "rensei/example.run", "-i", '{"work_seconds": "x"}'], 2, "work_seconds"),
        (["start", "rensei/example.run", "-f", "/no/such.json"], 2, "does not exist"),
    ],
)
async def test_bad_starts_exit_with_a_code_and_say_why(
    args: list[str], code: int, message: str
) -> None:
    got, out, err = await durable(*args)
    assert got == code
    assert message in err
    assert out == "", "nothing was started, so no run id is printed"


async def test_no_temporal_server_is_exit_4_with_a_hint() -> None:
    env = {"DURABLE_TEMPORAL_PORT": str(free_port())}
    code, _, err = await durable("status", "some-run", env=env)
    assert code == 4
    assert "cannot reach Temporal" in err and "durable dev" in err


async def test_start_status_result_and_cancel_against_a_dev_server(
    dev_server: EmbeddedTemporal,
    dev_client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    tmp_path: Path,
) -> None:
    env = {"TEMPORAL_ADDRESS": dev_server.address, "DURABLE_TASK_QUEUE": task_queue}
    input_file = tmp_path / "input.json"
    input_file.write_text(json.dumps({"topic": "cli works", "cool_down": "1s"}))
    async with build_worker(dev_client, worker_registry(pool), task_queue):
        code, out, err = await durable(
            "start",
            "rensei/example.run",
            "-f",
            str(input_file),
            "--wait",
            "--org",
            "acme",
            "--project",
            "triage",
            env=env,
        )
        assert code == 0, err
        run_id, result = out.split("\n", 1)
        assert json.loads(result)["summary"] == "cli works -> cli: 3 letters; works: 5 letters"
        attributes = (await dev_client.get_workflow_handle(run_id).describe()).search_attributes
        assert attributes["DurableOrgId"] == ["acme"]
        assert attributes["DurableProjectId"] == ["triage"]
        code, _, err = await durable("start", "rensei/example.run", "--org", "no spaces", env=env)
        assert code == 2 and "--org" in err
        code, out, _ = await durable("status", run_id, env=env)
        assert code == 0
        assert "status        completed" in out

        code, out, _ = await durable(
            "start", "rensei/example.run", "-i", '{"work_seconds": 60}', env=env
        )
        long_run = out.strip()
        for _ in range(50):
            code, out, _ = await durable("status", long_run, "--json", env=env)
            if json.loads(out)["current_steps"]:
                break
            await asyncio.sleep(0.2)
        assert json.loads(out)["status"] == "running"
        assert json.loads(out)["current_steps"][0].startswith("research-")
        code, out, _ = await durable("cancel", long_run, "--reason", "not needed", env=env)
        assert code == 0
        code, _, err = await durable("result", long_run, env=env)
        assert code == 1
        assert "was cancelled" in err
        code, _, err = await durable("cancel", "no-such-run", env=env)
        assert code == 3
        assert "no run with workflow id 'no-such-run'" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["send-event", "rensei/nope.thing"], "unknown event type 'rensei/nope.thing'"),
        (["approve", "some-run", "--decision", "maybe"], "is malformed"),
        (["send-event", "rensei/approval.resolved", "-d", "{bad"], "not valid JSON"),
    ],
)
async def test_bad_events_are_refused_before_anything_is_sent(
    args: list[str], message: str
) -> None:
    code, out, err = await durable(*args)
    assert code == 2
    assert message in err
    assert out == ""


async def test_approve_and_send_event_store_once_and_report(
    dev_server: EmbeddedTemporal,
    database_url: str,
    pool: asyncpg.Pool,
    task_queue: str,
    tmp_path: Path,
) -> None:
    env = {
        "TEMPORAL_ADDRESS": dev_server.address,
        "DATABASE_URL": database_url,
        "DURABLE_DATA_DIR": str(tmp_path),  # no `durable dev` key here: direct access
    }
    code, out, err = await durable("approve", f"run-{task_queue}", "--notes", "ship it", env=env)
    assert code == 0, err
    receipt = json.loads(out)
    assert receipt["type"] == "rensei/approval.resolved"
    assert receipt["duplicate"] is False
    stored = await pool.fetchval("SELECT data FROM events WHERE id = $1", receipt["id"])
    assert json.loads(stored)["via"] == "cli" and json.loads(stored)["by"].startswith("operator:")
    data = {"workflow_id": f"run-{task_queue}", "decision": "approve"}
    args = ["send-event", "rensei/approval.resolved", "-d", json.dumps(data), "--id", "a-1"]
    assert (await durable(*args, env=env))[0] == 0
    code, out, _ = await durable(*args, env=env)
    assert code == 0
    assert json.loads(out)["duplicate"] is True, "the same id twice is stored once"
    stored = await pool.fetchval("SELECT count(*) FROM events WHERE id = 'a-1'")
    assert stored == 1
    other = [*args[:3], json.dumps({**data, "decision": "reject"}), *args[4:]]
    code, out, err = await durable(*other, env=env)
    assert code == 2 and "event id 'a-1' was already used" in err, "other content: refused"
    code, out, _ = await durable("waits", f"run-{task_queue}", env=env)
    assert code == 0
    assert "waits for no event" in out

"""The CLI run outside the checkout: it finds the running `durable dev` from any directory, and
when it finds no database it says which setting led it where (never a password)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from workers.embedded import free_port

from .test_cli import durable
from .test_dev_stack import dev_stack

UNAVAILABLE = 4  # the documented exit code: Temporal or Postgres unreachable


@pytest.fixture(autouse=True)
def no_configured_database(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever this process was given, the CLI here starts with neither variable set."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("DURABLE_DATA_DIR", raising=False)


def folders(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A project folder to run `durable dev` in, a folder deep inside it, and one elsewhere."""
    project, elsewhere = tmp_path / "proj", tmp_path / "elsewhere"
    deeper = project / "src" / "deeper"
    deeper.mkdir(parents=True)
    elsewhere.mkdir()
    return project, deeper, elsewhere


async def test_reads_find_the_running_dev_stack_from_any_directory(tmp_path: Path) -> None:
    project, deeper, elsewhere = folders(tmp_path)
    state = tmp_path / "state"
    env = {
        "DURABLE_LINEAR_PORT": str(free_port()),
        "DURABLE_TEMPORAL_PORT": str(free_port()),
        "DURABLE_UI_PORT": str(free_port()),
        "DURABLE_API_PORT": str(free_port()),
        "DURABLE_TASK_QUEUE": "anywhere-test",
        "XDG_STATE_HOME": str(state),
    }
    record = state / "durable" / "dev.json"
    async with dev_stack(env, "--no-demo", cwd=project) as (_, stderr):
        assert f"data             {project / '.durable'}" in stderr.text
        assert record.stat().st_mode & 0o777 == 0o600, "the record is its owner's only"
        assert record.parent.stat().st_mode & 0o777 == 0o700
        assert json.loads(record.read_text())["data_dir"] == str(project / ".durable")
        args = ["start", "rensei/example.run", "--wait", "--org", "local"]
        code, out, err = await durable(*args, env=env, cwd=elsewhere)
        assert code == 0, err
        run_id = out.splitlines()[0]
        # Elsewhere by the record; inside the project by its `.durable`, with no record to read.
        no_record = {**env, "XDG_STATE_HOME": str(tmp_path / "no-state")}
        for where, env_there in ((elsewhere, env), (deeper, no_record), (project, no_record)):
            code, out, err = await durable("waits", run_id, env=env_there, cwd=where)
            assert (code, out.strip()) == (0, f"{run_id} waits for no event"), err
            args = ["steps", run_id, "--org", "local"]
            code, out, err = await durable(*args, env=env_there, cwd=where)
            assert code == 0, err
            assert out.startswith("plan ") and "example.record-note" in out, f"read from {where}"
        # The local API key is found the same way: the approval goes through the API with it.
        code, out, err = await durable("approve", run_id, env=env, cwd=elsewhere)
        assert code == 0, err
        assert json.loads(out)["type"] == "rensei/approval.resolved"
    assert not record.exists(), "Ctrl-C removed the record with the stack"
    code, _, err = await durable("waits", run_id, "--org", "", env=env, cwd=elsewhere)
    assert code == UNAVAILABLE
    assert f"no record of a running `durable dev` in {record}" in err


async def dead_pid() -> int:
    process = await asyncio.create_subprocess_exec("true")
    await process.wait()
    return process.pid


async def test_with_nothing_running_the_error_names_the_setting_and_the_folder(
    tmp_path: Path,
) -> None:
    _, _, elsewhere = folders(tmp_path)
    env = {"XDG_STATE_HOME": str(tmp_path / "state")}
    code, out, err = await durable("waits", "some-run", "--org", "", env=env, cwd=elsewhere)
    assert (code, out) == (UNAVAILABLE, "")
    assert "DATABASE_URL is not set, so the CLI looked for the embedded stack" in err
    assert f"in {elsewhere / '.durable'} (the default: ./.durable of the current directory" in err
    assert "start `durable dev` or set DATABASE_URL" in err
    assert "Check DATABASE_URL" not in err, "it is not set: nothing to check there"

    # A record of a `durable dev` that has stopped is ignored, and the message says so.
    record = tmp_path / "state" / "durable" / "dev.json"
    record.parent.mkdir(parents=True, mode=0o700)
    stale = {"data_dir": str(tmp_path / "proj" / ".durable"), "pid": await dead_pid()}
    record.write_text(json.dumps({**stale, "postgres": True}))
    record.chmod(0o600)
    code, _, err = await durable("steps", "some-run", "--org", "a", env=env, cwd=elsewhere)
    assert code == UNAVAILABLE
    assert f"the record {record} names {tmp_path / 'proj' / '.durable'}, whose" in err
    assert f"(pid {stale['pid']}) is no longer running: ignored" in err

    # One anyone else could have written is not believed.
    record.write_text(json.dumps({**stale, "pid": os.getpid(), "postgres": False}))
    record.chmod(0o644)
    code, _, err = await durable("waits", "some-run", "--org", "", env=env, cwd=elsewhere)
    assert code == UNAVAILABLE
    assert f"the record {record} is not owner-only or not yours: ignored" in err

    env["DURABLE_DATA_DIR"] = str(tmp_path / "data")
    code, _, err = await durable("waits", "some-run", "--org", "", env=env, cwd=elsewhere)
    assert code == UNAVAILABLE
    assert f"in {tmp_path / 'data'} (from DURABLE_DATA_DIR) and found none running" in err


async def test_an_unreachable_database_url_says_so_without_its_password(tmp_path: Path) -> None:
    secret = "hunter2-not-printed"
    env = {"DATABASE_URL": f"postgresql://app:{secret}@127.0.0.1:{free_port()}/durable"}
    for command in (["waits", "some-run", "--org", ""], ["steps", "some-run", "--org", "a"]):
        code, out, err = await durable(*command, env=env, cwd=tmp_path)
        assert code == UNAVAILABLE
        assert "cannot connect to PostgreSQL at postgresql://app:***@127.0.0.1:" in err
        assert "(from DATABASE_URL)" in err and "check DATABASE_URL" in err
        assert "embedded stack" in err and "looked for" not in err
        assert secret not in out + err

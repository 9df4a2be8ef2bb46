"""`durable dev` after a crash: a kill -9 leaves nothing that stops the next start, which stops
only what is provably its own; a port taken by someone else, or a signal while starting, ends
it cleanly with nothing left running."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from workers import orphans
from workers.embedded import EmbeddedTemporal, port_in_use

from .test_cli import durable
from .test_dev_stack import BIN, Stderr, dev_stack, stack_env


def crash_env(tmp_path: Path) -> dict[str, str]:
    """stack_env, with the CLI's record of the running stack kept in tmp_path too."""
    return {**stack_env(tmp_path), "XDG_STATE_HOME": str(tmp_path / "state")}


def made_data_dir(env: dict[str, str]) -> Path:
    data = Path(env["DURABLE_DATA_DIR"])
    data.mkdir(mode=0o700)
    return data


def naming(data: Path) -> list[str]:
    """The live processes whose command line names `data` (a zombie's is empty)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if str(data).encode() in argv:
            shown = argv.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{entry.name}: {shown}")
    return found


async def nothing_left(data: Path) -> None:
    """No Temporal, PostgreSQL or anything else of `data` is running (a stopped postmaster
    may take a moment to be gone)."""
    for _ in range(100):
        if not naming(data):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"still running: {naming(data)}")


@asynccontextmanager
async def dev_then_kill(env: dict[str, str]) -> AsyncIterator[Stderr]:
    """`durable dev --no-demo`, up; on leaving, SIGKILL it alone (never its children)."""
    process = await asyncio.create_subprocess_exec(
        str(BIN / "durable"),
        "dev",
        "--no-demo",
        env={**os.environ, **env},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    stream, seen = process.stderr, Stderr()

    async def read() -> None:
        while line := (await stream.readline()).decode():
            seen.lines.append(line)

    reader = asyncio.create_task(read())
    try:
        await seen.wait_for("Press Ctrl-C")
        yield seen
    finally:
        process.kill()
        await process.wait()
        reader.cancel()


async def interrupted_dev(env: dict[str, str], during: str, signum: int) -> tuple[int, str]:
    """Run `durable dev --no-demo`, send it `signum` once it prints `during`; when it has
    exited, its exit code and stderr."""
    process = await asyncio.create_subprocess_exec(
        str(BIN / "durable"),
        "dev",
        "--no-demo",
        env={**os.environ, **env},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    seen = []
    try:
        async with asyncio.timeout(90):
            while line := (await process.stderr.readline()).decode():
                seen.append(line)
                if during in line:
                    process.send_signal(signum)
            code = await process.wait()
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
            await process.wait()
    return code, "".join(seen)


async def test_after_a_kill_9_the_next_start_stops_the_orphans_and_keeps_the_runs(
    tmp_path: Path,
) -> None:
    env = crash_env(tmp_path)
    data = Path(env["DURABLE_DATA_DIR"])
    async with dev_then_kill(env):
        args = ["start", "rensei/example.run", "--wait", "--org", "local"]
        code, out, err = await durable(*args, env=env)
        assert code == 0, err
        run_id = out.splitlines()[0]
        record = data / "dev-children.json"
        assert record.stat().st_mode & 0o777 == 0o600, "the record of its children is owner-only"
        children = json.loads(record.read_text())
        temporal, postgres = children["temporal"]["pid"], children["postgres"]["pid"]
    assert orphans.process(postgres) is not None, "a kill -9 leaves the PostgreSQL running"
    handles = data / "postgres" / ".handle_pids.json"
    assert json.loads(handles.read_text()), "and the library's handle of the killed process"

    async with dev_stack(env, "--no-demo") as (process, stderr):
        line = f"stopped the PostgreSQL left by an earlier durable dev (pid {postgres})"
        assert line in stderr.text
        # PR_SET_PDEATHSIG has sent the Temporal dev server SIGTERM; when it was still shutting
        # down, the new start stopped it and said so.
        if "stopped the Temporal dev server" in stderr.text:
            assert f"dev server left by an earlier durable dev (pid {temporal})" in stderr.text
        assert orphans.process(temporal) is None and orphans.process(postgres) is None
        assert json.loads(handles.read_text()) == [process.pid], "no stale handle left"
        code, out, err = await durable("status", run_id, env=env)
        assert code == 0, err
        assert "status        completed" in out, "the run from before the crash is still there"
    assert "Traceback" not in stderr.text
    await nothing_left(data)


async def test_a_temporal_left_without_its_parent_is_found_by_its_record(
    tmp_path: Path,
) -> None:
    """Where no parent-death signal stops it, the record does: the same server, same files."""
    env = crash_env(tmp_path)
    data = made_data_dir(env)
    db_file = data / "temporal.sqlite"
    server = EmbeddedTemporal(
        port=int(env["DURABLE_TEMPORAL_PORT"]), ui_port=int(env["DURABLE_UI_PORT"]), db_file=db_file
    )
    orphan = await asyncio.create_subprocess_exec(
        *server.command(),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        orphans.record(data, "temporal", orphan.pid, "--db-filename", str(db_file))
        for _ in range(300):
            if port_in_use(server.port):
                break
            await asyncio.sleep(0.2)
        async with dev_stack(env, "--no-demo") as (_, stderr):
            line = "stopped the Temporal dev server left by an earlier durable dev"
            assert f"{line} (pid {orphan.pid})" in stderr.text
            assert await asyncio.wait_for(orphan.wait(), 5) is not None
    finally:
        if orphan.returncode is None:
            orphan.kill()
            await orphan.wait()
    await nothing_left(data)


async def test_a_recorded_process_that_is_not_ours_is_left_alone(tmp_path: Path) -> None:
    env = crash_env(tmp_path)
    data = made_data_dir(env)
    other = await asyncio.create_subprocess_exec("sleep", "60")
    try:
        found = orphans.process(other.pid)
        assert found is not None
        # Its pid and start time, as a killed durable dev would have recorded its Temporal's:
        # only its command line (not our binary, not our data folder) tells it apart.
        forged = {
            "pid": other.pid,
            "start_ticks": found.start_ticks,
            "binary": str(BIN / "temporal"),
            "option": "--db-filename",
            "value": str(data / "temporal.sqlite"),
        }
        (data / "dev-children.json").write_text(json.dumps({"temporal": forged}))
        async with dev_stack(env, "--no-demo") as (_, stderr):
            assert "stopped" not in stderr.text
            assert orphans.process(other.pid) == found, "the other process runs on"
        assert other.returncode is None and orphans.process(other.pid) == found
    finally:
        other.kill()
        await other.wait()
    await nothing_left(data)


@pytest.mark.parametrize("setting", ["DURABLE_TEMPORAL_PORT", "DURABLE_API_PORT"])
async def test_a_port_taken_by_someone_else_is_named_and_nothing_starts(
    tmp_path: Path, setting: str
) -> None:
    env = crash_env(tmp_path)
    port = int(env[setting])
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen()
        code, _, err = await durable("dev", "--no-demo", env=env)
    assert code == 2, err
    assert f"port {port} ({setting}) is taken by another program" in err
    assert f"set {setting} to a free port" in err
    assert "Traceback" not in err
    await nothing_left(Path(env["DURABLE_DATA_DIR"]))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_a_signal_while_starting_stops_what_had_started(
    tmp_path: Path, signum: signal.Signals
) -> None:
    env = crash_env(tmp_path)
    code, err = await interrupted_dev(env, "starting PostgreSQL", signum)
    assert code == 128 + signum, err
    assert f"interrupted ({signum.name} while starting): stopped everything" in err
    assert "stopping the Temporal dev server" in err and "stopping PostgreSQL" in err
    assert "Traceback" not in err
    await nothing_left(Path(env["DURABLE_DATA_DIR"]))
    assert not port_in_use(int(env["DURABLE_TEMPORAL_PORT"]))

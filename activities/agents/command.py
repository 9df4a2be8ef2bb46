"""The command-line agent runtime: a subprocess given the request as JSON on stdin, answering
JSON lines on stdout.

The protocol, one JSON object per stdout line:

    {"progress": "reading 3 issues"}      any number, shown to the user as they come
    {"result": {...}}                     once: the answer (any JSON value)

then exit 0. stdin carries `{"session_id", "prompt", "context"}` and is closed. stderr is
captured into the transcript and quoted (its tail) in failure messages. The process runs in a
session of its own, so stopping it (timeout, cancellation, bad output) stops its children too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import Mapping, Sequence
from typing import Any

from .runtime import (
    AgentRuntime,
    AgentRuntimeError,
    AgentTimedOut,
    RuntimeIO,
    RuntimeRequest,
)

# A stdout line may be this long (a large result is one line).
MAX_LINE_BYTES = 16 * 1024 * 1024
# How much of stderr's end a failure message quotes.
STDERR_TAIL_CHARS = 2000
# After SIGTERM, how long the process gets before SIGKILL.
KILL_GRACE_SECONDS = 2.0
# Variables the agent inherits from the worker; nothing else (the worker's secrets stay out).
INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")

_EXPECTED = 'expected {"progress": "..."} or {"result": ...}'


def _quote(text: str, limit: int = 200) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


class CommandRuntime(AgentRuntime):
    """Run `argv` as the agent.

    Args:
        argv: The command and its arguments (no shell).
        env: Extra environment variables; the agent otherwise inherits only INHERITED_ENV.
        cwd: Working directory.
        kill_grace: Seconds between SIGTERM and SIGKILL when the agent is stopped.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        kill_grace: float = KILL_GRACE_SECONDS,
    ) -> None:
        if not argv:
            raise ValueError("a command runtime needs a command")
        self.argv = list(argv)
        self.env = dict(env or {})
        self.cwd = cwd
        self.kill_grace = kill_grace

    @property
    def description(self) -> str:
        return f"command {' '.join(self.argv)}"

    def _environment(self) -> dict[str, str]:
        inherited = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
        return {**inherited, **self.env}

    async def run(self, request: RuntimeRequest, io: RuntimeIO) -> Any:
        stdin = json.dumps(
            {"session_id": request.session_id, "prompt": request.prompt, "context": request.context}
        )
        io.transcript.add("stdin", stdin)
        proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self._environment(),
            cwd=self.cwd,
            start_new_session=True,
            limit=MAX_LINE_BYTES,
        )
        stderr = _StderrReader(proc, io)
        writer = asyncio.create_task(_write_stdin(proc, stdin))
        try:
            try:
                async with asyncio.timeout(request.timeout_seconds):
                    result = await self._read(proc, io)
                    await writer
                    code = await proc.wait()
                    await stderr.done()
            except TimeoutError:
                await self._stop(proc, writer)
                await stderr.done()
                raise AgentTimedOut(
                    f"the agent did not finish within {request.timeout_seconds:g} s and was "
                    f"stopped{stderr.quoted()}"
                ) from None
            except BaseException:  # cancelled, or its output was unreadable: stop it
                await self._stop(proc, writer)
                await stderr.done()
                raise
        finally:
            _kill_now(proc)
        if code != 0:
            raise AgentRuntimeError(f"the agent exited with status {code}{stderr.quoted()}")
        if result is _MISSING:
            raise AgentRuntimeError(
                f'the agent exited without printing a result line ({{"result": ...}}) on '
                f"stdout{stderr.quoted()}"
            )
        return result

    async def _read(self, proc: asyncio.subprocess.Process, io: RuntimeIO) -> Any:
        assert proc.stdout is not None
        result: Any = _MISSING
        number = 0
        while True:
            try:
                raw = await proc.stdout.readline()
            except (ValueError, asyncio.LimitOverrunError):
                raise AgentRuntimeError(
                    f"the agent printed a stdout line longer than {MAX_LINE_BYTES} bytes"
                ) from None
            if not raw:
                return result
            number += 1
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            io.transcript.add("stdout", line)
            if not line.strip():
                continue
            message = _message(line, number)
            if "progress" in message:
                await io.progress(str(message["progress"]))
            if "result" in message:
                if result is not _MISSING:
                    raise AgentRuntimeError(f"the agent printed a second result on line {number}")
                result = message["result"]

    async def _stop(self, proc: asyncio.subprocess.Process, writer: asyncio.Task[None]) -> None:
        writer.cancel()
        if proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), self.kill_grace)
        except TimeoutError:
            _kill_now(proc)
            await proc.wait()


_MISSING: Any = object()


def _message(line: str, number: int) -> dict[str, Any]:
    try:
        message = json.loads(line)
    except json.JSONDecodeError:
        raise AgentRuntimeError(
            f"the agent printed something that is not JSON on stdout line {number}: "
            f"{_quote(line)} ({_EXPECTED})"
        ) from None
    if not isinstance(message, dict) or not ({"progress", "result"} & message.keys()):
        raise AgentRuntimeError(
            f"the agent printed JSON that is not a message on stdout line {number}: "
            f"{_quote(line)} ({_EXPECTED})"
        )
    return message


def _kill_now(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL the agent's process group if the agent still runs (a last resort that needs no
    event loop, for a cancellation that interrupted the graceful stop)."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


async def _write_stdin(proc: asyncio.subprocess.Process, text: str) -> None:
    assert proc.stdin is not None
    # The agent may exit (or close stdin) without reading it all; that is its business.
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        proc.stdin.write(text.encode() + b"\n")
        await proc.stdin.drain()
        proc.stdin.close()
        await proc.stdin.wait_closed()


class _StderrReader:
    """Reads stderr as it comes (so a chatty agent never blocks on a full pipe) into the
    transcript, keeping its tail for failure messages."""

    def __init__(self, proc: asyncio.subprocess.Process, io: RuntimeIO) -> None:
        self._tail = ""
        self._task = asyncio.create_task(self._pump(proc, io))

    async def _pump(self, proc: asyncio.subprocess.Process, io: RuntimeIO) -> None:
        assert proc.stderr is not None
        while chunk := await proc.stderr.read(65536):
            text = chunk.decode("utf-8", errors="replace")
            io.transcript.add("stderr", text)
            self._tail = (self._tail + text)[-STDERR_TAIL_CHARS:]

    async def done(self) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(self._task), KILL_GRACE_SECONDS)
        except TimeoutError:  # a grandchild holds stderr open: stop reading
            self._task.cancel()

    def quoted(self) -> str:
        tail = self._tail.strip()
        return f"; stderr ends: {tail}" if tail else "; stderr was empty"

"""Serve the API inside a process that owns its own signal handling (`durable dev`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Generator

import uvicorn
from starlette.applications import Starlette


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # Ctrl-C belongs to the process that runs us; it stops us with `stop`.


class ApiServer:
    def __init__(self, app: Starlette, port: int) -> None:
        self.port = port
        self._server = _Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
        )
        self._task: asyncio.Task[None] | None = None

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve())
        for _ in range(100):
            if self._server.started:
                return
            if self._task.done():
                self._task.result()  # raise why it could not start
            await asyncio.sleep(0.05)
        raise TimeoutError(f"the HTTP API did not start on port {self.port}")

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task

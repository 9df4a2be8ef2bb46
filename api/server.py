"""Serve the API inside a process that owns its own signal handling (`durable dev`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Generator

import uvicorn
from starlette.applications import Starlette


class Server(uvicorn.Server):
    """uvicorn, leaving signals to the process: it stops when `should_exit` is set."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # Ctrl-C belongs to the process that runs us; it stops us with `stop`.


class ApiServer:
    def __init__(self, app: Starlette, port: int, host: str = "127.0.0.1") -> None:
        self.port, self.host = port, host
        self._server = Server(
            uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
        )
        self._task: asyncio.Task[None] | None = None

    @property
    def address(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

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

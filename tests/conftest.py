"""Session-wide real infrastructure: a Temporal dev server, the time-skipping test server and an
embedded PostgreSQL, all on 127.0.0.1 (Postgres on a Unix socket), stopped at session end."""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from adapters.temporal import data_converter
from store import create_pool, migrate
from workers.embedded import EmbeddedPostgres, EmbeddedTemporal, free_port

BIN = Path(sys.executable).parent


@pytest.fixture(scope="session", autouse=True)
def private_state_home() -> Iterator[None]:
    """XDG_STATE_HOME in a folder of this session's: the records `durable dev` keeps of its
    stack (workers/locate.py) never land in the user's, and the CLI in a test never finds a
    developer's running stack through one."""
    before = os.environ.get("XDG_STATE_HOME")
    with tempfile.TemporaryDirectory(prefix="durable-state-") as tmp:
        os.environ["XDG_STATE_HOME"] = tmp
        try:
            yield
        finally:
            if before is None:
                os.environ.pop("XDG_STATE_HOME", None)
            else:
                os.environ["XDG_STATE_HOME"] = before


@pytest.fixture(scope="session")
async def dev_server() -> AsyncIterator[EmbeddedTemporal]:
    with tempfile.TemporaryDirectory(prefix="durable-temporal-") as tmp:
        server = EmbeddedTemporal(port=free_port(), log_file=Path(tmp) / "temporal.log")
        await server.start()
        try:
            yield server
        finally:
            await server.stop()


@pytest.fixture(scope="session")
async def dev_client(dev_server: EmbeddedTemporal) -> Client:
    return await dev_server.connect()


@pytest.fixture(scope="session")
async def time_skipping() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=data_converter(),
        test_server_existing_path=str(BIN / "temporal-test-server"),
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    with tempfile.TemporaryDirectory(prefix="durable-pg-") as tmp:
        postgres = EmbeddedPostgres(Path(tmp) / "pg", delete_on_stop=True)
        url = await postgres.start()
        try:
            yield url
        finally:
            await postgres.stop()


@pytest.fixture(scope="session")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url)
    await migrate(pool)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
def task_queue() -> str:
    return f"test-{uuid.uuid4()}"

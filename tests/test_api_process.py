"""`durable api`: the HTTP API as a process of its own, as compose and an operator run it. It
needs a credential like the in-process one, says on /readyz whether PostgreSQL and Temporal
answer, and stops gracefully on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from store import create_pool, migrate
from tests.events.test_outage import RestartablePostgres
from tests.keys import make_key
from workers.embedded import EmbeddedTemporal, free_port

DURABLE = str(Path(sys.executable).parent / "durable")


def get(url: str, key: str | None = None, body: Any = None) -> tuple[int, dict[str, Any]]:
    headers = {"content-type": "application/json"}
    if key:
        headers["authorization"] = f"Bearer {key}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@asynccontextmanager
async def api_process(env: dict[str, str]) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    port = free_port()
    # Production refuses to keep the fleet's signing key in clear in the (shared) database:
    # give it one of its own, as configuration.
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    env = {"DURABLE_FLEET_SIGNING_KEY": pem.decode(), **env}
    process = await asyncio.create_subprocess_exec(
        DURABLE,
        "api",
        "--port",
        str(port),
        env={**os.environ, **env},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    address = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if (await asyncio.to_thread(get, f"{address}/healthz"))[0] == 200:
                    break
            except OSError:
                await asyncio.sleep(0.1)
        else:
            raise AssertionError("durable api did not come up")
        yield address, process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_the_api_process_serves_principals_and_stops_on_sigterm(
    dev_server: EmbeddedTemporal, database_url: str, pool: asyncpg.Pool, task_queue: str
) -> None:
    key = await make_key(pool, "org-api", "approve")
    env = {
        "TEMPORAL_ADDRESS": dev_server.address,
        "DATABASE_URL": database_url,
        "DURABLE_TASK_QUEUE": task_queue,
    }
    async with api_process(env) as (address, process):
        ready = await asyncio.to_thread(get, f"{address}/readyz")
        assert ready == (200, {"ready": True, "postgres": "ok", "temporal": "ok"})
        approval = {
            "type": "rensei/approval.resolved",
            "data": {"workflow_id": "nope", "decision": "approve"},
        }
        anonymous = await asyncio.to_thread(get, f"{address}/events", None, approval)
        assert anonymous[0] == 401
        status, answer = await asyncio.to_thread(get, f"{address}/events", key, approval)
        assert (status, answer["error"]) == (404, "no run with workflow id 'nope'"), (
            "it asked Temporal"
        )
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0, "a graceful stop"


async def test_readyz_says_when_postgresql_stops_answering(dev_server: EmbeddedTemporal) -> None:
    with tempfile.TemporaryDirectory(prefix="durable-api-") as tmp:
        postgres = RestartablePostgres(Path(tmp))
        url = await postgres.start()
        try:
            own = await create_pool(url)
            await migrate(own)
            await own.close()
            env = {"TEMPORAL_ADDRESS": dev_server.address, "DATABASE_URL": url}
            async with api_process(env) as (address, process):
                assert (await asyncio.to_thread(get, f"{address}/readyz"))[0] == 200
                await postgres.crash()
                status, body = await asyncio.to_thread(get, f"{address}/readyz")
                assert (status, body) == (
                    503,
                    {"ready": False, "postgres": "unreachable", "temporal": "ok"},
                ), "the reason goes to the log, not to the caller"
                assert (await asyncio.to_thread(get, f"{address}/healthz"))[0] == 200
                await postgres.start_again()
                assert (await asyncio.to_thread(get, f"{address}/readyz"))[0] == 200
                process.send_signal(signal.SIGTERM)
                await asyncio.wait_for(process.wait(), 30)
        finally:
            await postgres.close()


async def test_without_a_database_it_says_what_to_set() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    process = await asyncio.create_subprocess_exec(
        DURABLE, "api", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 2
    assert "DATABASE_URL is not set" in err.decode()

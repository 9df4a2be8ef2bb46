"""The fleet under test: the product's own worker (it runs session workflows and the route step)
and the HTTP API with the fleet endpoints, in this process; worker host daemons as real
`durable fleet worker` processes with no database access, registered with real tokens. Each
test gets its own org, so pools, routes and workers never meet another test's."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client

from adapters.temporal import EventIngress, TemporalDurableClient, build_worker
from api import create_app
from api.fleet import FleetApi
from api.server import ApiServer
from store import EventStore, FleetStore, SessionRecord, SessionStore
from workers.embedded import EmbeddedTemporal, free_port
from workers.fleet import RuntimeKeys
from workers.fleet.admin import create_registration_token
from workers.runtime import worker_registry
from workflows import registry

# A worker silent this long is offline. As long as in production's defaults (90 s) as far as the
# tests go: a lost worker's session must move at once, not after the grace period.
GRACE = timedelta(seconds=60)
HEARTBEAT_SECONDS = 0.5


@dataclass
class Daemon:
    process: asyncio.subprocess.Process
    worker_id: str
    pool: str
    registration_id: str
    log: list[str] = field(default_factory=list, repr=False)

    def kill(self) -> None:
        self.process.kill()

    async def stop(self) -> int:
        """SIGTERM: drain, deregister, exit."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), 60)


@dataclass
class Fleet:
    server: EmbeddedTemporal
    temporal: Client
    pool: asyncpg.Pool
    database_url: str
    task_queue: str
    org: str = field(default_factory=lambda: f"org-{uuid.uuid4().hex[:8]}")
    project: str = "atlas"
    api: ApiServer | None = None
    client: TemporalDurableClient | None = None
    daemons: list[Daemon] = field(default_factory=list)
    jwt_ttl: timedelta = timedelta(minutes=15)

    @property
    def store(self) -> FleetStore:
        return FleetStore(self.pool)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[TemporalDurableClient]:
        shipped = registry()
        ingress = EventIngress(self.temporal, EventStore(self.pool), shipped, self.task_queue)
        client = TemporalDurableClient(self.temporal, shipped, self.task_queue, events=ingress)
        worker = build_worker(
            self.temporal,
            worker_registry(self.pool, client, heartbeat_grace=GRACE),
            self.task_queue,
            events=ingress,
        )
        keys = RuntimeKeys.generate(issuer="durable", audience="durable-workers", ttl=self.jwt_ttl)
        fleet_api = FleetApi(
            self.store,
            SessionStore(self.pool),
            keys,
            heartbeat_grace=GRACE,
            heartbeat_seconds=HEARTBEAT_SECONDS,
        )
        self.api = ApiServer(
            create_app(client, shipped, EventStore(self.pool), fleet=fleet_api), free_port()
        )
        await self.api.start()
        self.client = client
        try:
            async with worker:
                yield client
        finally:
            for daemon in self.daemons:
                if daemon.process.returncode is None:
                    daemon.kill()
                    await daemon.process.wait()
            await self.api.stop()

    async def daemon(self, pool: str, *, slots: int = 1) -> Daemon:
        """A `durable fleet worker` process on `pool` for the project, once it serves."""
        assert self.api is not None
        created = await create_registration_token(self.store, self.org, self.project, pool)
        env = {
            k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DURABLE_TASK_QUEUE")
        }
        env.update(
            TEMPORAL_ADDRESS=self.server.address,
            DURABLE_REGISTRATION_TOKEN=created.token.plaintext,
            DURABLE_LOG_FORMAT="text",
            DURABLE_GRACEFUL_SHUTDOWN_SECONDS="5",
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "from cli.main import main; main()",
            "fleet",
            "worker",
            "--api",
            self.api.address,
            "--max-concurrency",
            str(slots),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        daemon = Daemon(process, "", pool, created.id)
        self.daemons.append(daemon)
        assert process.stdout is not None
        while True:
            raw = await asyncio.wait_for(process.stdout.readline(), 60)
            if not raw:
                raise AssertionError(f"the daemon exited: {daemon.log}")
            line = raw.decode().rstrip()
            daemon.log.append(line)
            if line.startswith("worker wkr_"):
                daemon.worker_id = line.split()[1]
                break
        asyncio.get_running_loop().create_task(self._drain(daemon))
        return daemon

    async def _drain(self, daemon: Daemon) -> None:
        assert daemon.process.stdout is not None
        async for raw in daemon.process.stdout:
            daemon.log.append(raw.decode().rstrip())

    async def dispatch(self, work_seconds: float = 0.0, **fields: Any) -> str:
        """Start the agent demo for the project; returns its run id."""
        assert self.client is not None
        from durable import Tenancy

        handle = await self.client.start(
            "rensei/pm.agent-demo.run",
            {"project": self.project, "work_seconds": work_seconds, **fields},
            tenancy=Tenancy(org_id=self.org),
        )
        return handle.workflow_id

    async def session_of(self, run_id: str) -> str:
        """The session a demo run dispatched (once it has)."""
        for _ in range(200):
            found = await self.pool.fetchval(
                "SELECT session_id FROM agent_sessions WHERE requested_by = $1", run_id
            )
            if found:
                return str(found)
            await asyncio.sleep(0.1)
        raise AssertionError(f"{run_id} dispatched no session")

    async def session(self, session_id: str) -> SessionRecord:
        found = await SessionStore(self.pool).get(session_id, org_id=self.org)
        assert found is not None
        return found

    async def until(self, session_id: str, what: str, timeout: float = 60) -> SessionRecord:
        """Wait until the session's placement starts with `what`."""
        record = await self.session(session_id)
        for _ in range(int(timeout * 10)):
            record = await self.session(session_id)
            if record.placement.startswith(what):
                return record
            await asyncio.sleep(0.1)
        logs = "\n".join(
            f"[{d.pool} {d.worker_id}] {line}"
            for d in self.daemons
            for line in d.log[-20:]
            if "HTTP Request" not in line
        )
        raise AssertionError(
            f"{session_id}: placement is {record.placement!r}, not {what!r}; daemons:\n{logs}"
        )


@pytest.fixture
def fleet(
    dev_server: EmbeddedTemporal, dev_client: Client, pool: asyncpg.Pool, database_url: str
) -> Fleet:
    return Fleet(dev_server, dev_client, pool, database_url, f"fleet-{uuid.uuid4().hex[:8]}")

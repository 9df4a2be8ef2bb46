"""The HTTP API served for real (a worker on the dev server, PostgreSQL, uvicorn on 127.0.0.1),
and a way to call it as a principal."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client

from adapters.temporal import EventIngress, TemporalDurableClient, build_worker
from api import create_app
from api.auth import Authenticator
from api.server import ApiServer
from store import EventStore, KeyStore
from tests.events.test_http import call
from tests.keys import bearer
from workers.embedded import free_port

from .workflows import REGISTRY


@dataclass
class Api:
    address: str
    client: TemporalDurableClient
    pool: asyncpg.Pool

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        raw = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        sent = {**(bearer(key) if key else {}), **(headers or {})}
        return await asyncio.to_thread(call, method, f"{self.address}{path}", raw, sent)

    async def events(self) -> int:
        return int(await self.pool.fetchval("SELECT count(*) FROM events"))


@asynccontextmanager
async def serving(
    dev_client: Client, pool: asyncpg.Pool, task_queue: str, **options: Any
) -> AsyncIterator[Api]:
    """A worker for REGISTRY and the API over it; `options` go to `create_app`."""
    ingress = EventIngress(dev_client, EventStore(pool), REGISTRY, task_queue)
    client = TemporalDurableClient(dev_client, REGISTRY, task_queue, events=ingress)
    server = ApiServer(create_app(client, REGISTRY, ingress.store, **options), free_port())
    async with build_worker(dev_client, REGISTRY, task_queue, events=ingress):
        await server.start()
        try:
            yield Api(server.address, client, pool)
        finally:
            await server.stop()


@pytest.fixture
async def api(dev_client: Client, pool: asyncpg.Pool, task_queue: str) -> AsyncIterator[Api]:
    # Verified keys are kept a short time here, so a revocation shows within a test.
    auth = Authenticator(KeyStore(pool), cache_seconds=0.5)
    async with serving(dev_client, pool, task_queue, auth=auth) as served:
        yield served

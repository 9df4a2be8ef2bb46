"""The whole HTTP API served for real (uvicorn on 127.0.0.1, as `durable api` serves it): events,
reads, the codec endpoint, the Linear webhook and the fleet, with an org, its keys, a pool and
a registered worker, for tests that attack it from outside."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
import httpx
from pydantic import SecretStr
from temporalio.client import Client

from adapters.temporal import AesGcmCodec, parse_codec_keys
from api.auth import Authenticator
from api.codec import codec_routes
from api.fleet import FleetApi
from store import FleetStore, KeyStore, SessionStore
from tests.keys import make_key
from workers.fleet import RuntimeKeys
from workers.fleet.admin import create_registration_token

from .conftest import serving

LINEAR_SECRET = "lin_wh_hardening"


@dataclass
class Served:
    http: httpx.AsyncClient  # to the served address, no credential
    pool: asyncpg.Pool
    org: str
    member: dict[str, str]  # headers with a key of every scope but admin
    admin: dict[str, str]
    fleet: FleetStore
    worker_id: str
    worker: dict[str, str]  # headers with the worker's runtime JWT

    async def registration(self, project: str = "atlas") -> dict[str, str]:
        made = await create_registration_token(self.fleet, self.org, project, "local-a")
        return bearer(made.token.plaintext)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@asynccontextmanager
async def served(dev_client: Client, pool: asyncpg.Pool, task_queue: str) -> AsyncIterator[Served]:
    org = f"org-{uuid.uuid4().hex[:8]}"
    fleet = FleetStore(pool)
    await fleet.create_pool(org, "local-a", "local")
    keys = RuntimeKeys.generate(issuer="durable", audience="durable-workers")
    api = FleetApi(fleet, SessionStore(pool), keys)
    codec = AesGcmCodec(parse_codec_keys(f"k1:{base64.b64encode(os.urandom(32)).decode()}"))
    options = {
        "auth": Authenticator(KeyStore(pool), cache_seconds=0.5),
        "fleet": api,
        "codec_routes": codec_routes(codec),
        "linear_webhook_secrets": [SecretStr(LINEAR_SECRET)],
    }
    async with (
        serving(dev_client, pool, task_queue, **options) as running,
        httpx.AsyncClient(base_url=running.address, timeout=60) as http,
    ):
        made = await create_registration_token(fleet, org, "atlas", "local-a")
        registered = await http.post(
            "/api/workers/register",
            headers=bearer(made.token.plaintext),
            json={"maxConcurrency": 2, "capabilities": ["local"]},
        )
        assert registered.status_code == 201, registered.text
        yield Served(
            http,
            pool,
            org,
            bearer(await make_key(pool, org)),
            bearer(await make_key(pool, org, "admin")),
            fleet,
            registered.json()["workerId"],
            bearer(registered.json()["runtimeJwt"]),
        )

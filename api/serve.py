"""The HTTP API as settings configure it, for `durable dev` (in its process) and `durable api`
(a process of its own: host, port, proxy headers, graceful shutdown on SIGTERM).

`/healthz` says the process answers; `/readyz` says whether PostgreSQL and Temporal answer now
(503 naming which does not; the reason goes to the log), which is what a load balancer or a
container healthcheck should ask before sending traffic.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Mapping
from datetime import timedelta

import uvicorn
from starlette.applications import Starlette

from adapters.temporal import EventIngress, TemporalDurableClient
from durable import DurableClient
from store import EventStore
from workers.runtime import agent_route, connect_temporal, open_pool
from workers.settings import Settings
from workflows import registry

from .app import create_app
from .codec import codec_routes_for, open_codec_refusal
from .fleet import FleetApi, fleet_api
from .health import Check
from .oidc import OidcVerifier, config_from_env
from .server import Server

log = logging.getLogger("durable.api")


class NotStarting(ValueError):
    """The API must not start as configured; the message says why and what to set."""


def check_config(settings: Settings) -> OidcVerifier | None:
    """The OIDC verifier the settings ask for. Raises NotStarting for an open codec endpoint
    beyond loopback or an incomplete OIDC configuration."""
    refusal = open_codec_refusal(settings)
    if refusal is not None:
        raise NotStarting(refusal)
    try:
        config = config_from_env(os.environ)
    except ValueError as err:
        raise NotStarting(f"bad OIDC configuration: {err}") from None
    return OidcVerifier(config) if config else None


async def _fleet(settings: Settings, store: EventStore) -> FleetApi:
    try:
        return await fleet_api(settings, store.pool)
    except ValueError as err:  # no signing key configured, a wrong encryption key, ...
        raise NotStarting(str(err)) from None


async def build_app(
    settings: Settings,
    client: DurableClient,
    store: EventStore,
    oidc: OidcVerifier | None,
    readiness: Mapping[str, Check] | None = None,
) -> Starlette:
    return create_app(
        client,
        registry(),
        store,
        codec_routes=codec_routes_for(settings),
        linear_webhook_secrets=settings.linear_webhook_secret_list(),
        fleet=await _fleet(settings, store),
        oidc=oidc,
        readiness=readiness,
    )


async def run_api(settings: Settings, oidc: OidcVerifier | None) -> None:
    """Serve the API on DURABLE_API_HOST:DURABLE_API_PORT until SIGINT or SIGTERM; requests in
    flight get DURABLE_GRACEFUL_SHUTDOWN_SECONDS to finish."""
    pool = await open_pool(settings)
    try:
        temporal = await connect_temporal(settings)
        store = EventStore(pool)
        shipped = registry()
        ingress = EventIngress(
            temporal, store, shipped, settings.task_queue, route=agent_route(settings)
        )
        client = TemporalDurableClient(temporal, shipped, settings.task_queue, events=ingress)

        async def postgres() -> object:
            return await pool.fetchval("SELECT 1")

        async def temporal_health() -> object:
            return await temporal.service_client.check_health(timeout=timedelta(seconds=3))

        app = await build_app(
            settings,
            client,
            store,
            oidc,
            readiness={"postgres": postgres, "temporal": temporal_health},
        )
        config = uvicorn.Config(
            app,
            host=settings.api_host,
            port=settings.api_port,
            proxy_headers=True,
            forwarded_allow_ips=settings.api_forwarded_allow_ips,
            timeout_graceful_shutdown=int(settings.graceful_shutdown_seconds),
            log_level="warning",
            lifespan="off",
        )
        server = Server(config)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):  # stop taking requests, finish the others
            loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
        log.info("API serving", extra={"host": settings.api_host, "port": settings.api_port})
        await server.serve()
        log.info("API stopped")
    finally:
        if oidc is not None:
            await oidc.aclose()
        await pool.close()

"""Build the product's clients and worker from settings, and run a worker until a signal."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

import asyncpg
from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.envconfig import ClientConfig
from temporalio.worker import Worker

from activities.agents import (
    AgentActivities,
    AgentRuntime,
    ChatCompletionsRuntime,
    CommandRuntime,
    ProgressHook,
    ProjectRoutes,
    SessionControl,
    SessionFinisher,
    local_agent_command,
)
from activities.example import NoteActivities
from activities.fleet import FleetActivities
from activities.linear.steps import LinearCredentials, LinearSteps
from activities.memory import MemoryActivities
from activities.pm import PmActivities
from adapters.temporal import (
    AesGcmCodec,
    EventIngress,
    StartRoute,
    TemporalDurableClient,
    build_worker,
    data_converter,
    parse_codec_keys,
)
from durable import DurableClient, Registry
from store import (
    DatabaseUnreachable,
    EventStore,
    FleetStore,
    MemoryStore,
    PmStore,
    SessionStore,
    StepAudit,
    create_pool,
)
from workflows import registry as shipped_registry
from workflows.agents import SESSION_WORKFLOW

from .embedded import embedded_url
from .locate import locate_data_dir
from .settings import Settings
from .telemetry import Telemetry, start_telemetry

log = logging.getLogger("durable.worker")


class TemporalUnreachable(RuntimeError):
    pass


def payload_codec(settings: Settings) -> AesGcmCodec | None:
    """The codec DURABLE_CODEC_KEYS configures; None when unset (no encryption, no cost)."""
    if settings.codec_keys is None:
        return None
    return AesGcmCodec(parse_codec_keys(settings.codec_keys.get_secret_value()))


def settings_data_converter(settings: Settings) -> DataConverter:
    """The data converter of every client (and so every worker): with the codec if configured."""
    codec = payload_codec(settings)
    if codec is None:
        return data_converter()
    return dataclasses.replace(data_converter(), payload_codec=codec)


def temporal_connect_config(settings: Settings, *, embedded: bool = False) -> dict[str, Any]:
    """Where and how to connect, as Temporal's own tools read it (`temporalio.envconfig`):
    TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_* and TEMPORAL_PROFILE
    over the profile file the `temporal` CLI shares (TEMPORAL_CONFIG_FILE, default
    ~/.config/temporalio/temporal.toml), so one profile serves Temporal Cloud (API key or mTLS)
    and a self-hosted cluster alike. An address given in `settings` wins; `embedded` (the dev
    stack's own server) reads no profile at all."""
    if embedded:
        return {
            "target_host": settings.effective_temporal_address,
            "namespace": settings.temporal_namespace,
        }
    try:
        config: dict[str, Any] = dict(ClientConfig.load_client_connect_config())
    except (OSError, ValueError, RuntimeError) as err:
        raise TemporalUnreachable(
            f"cannot read Temporal's client configuration (TEMPORAL_* variables, profile file):"
            f" {err}"
        ) from err
    if settings.temporal_address is not None:
        config["target_host"] = settings.temporal_address
    config.setdefault("target_host", settings.effective_temporal_address)
    config["namespace"] = config.get("namespace") or settings.temporal_namespace
    return config


async def connect_temporal(
    settings: Settings,
    telemetry: Telemetry | None = None,
    *,
    rpc_metadata: Mapping[str, str] | None = None,
    embedded: bool = False,
) -> Client:
    """A client with `telemetry`'s tracing interceptor and metrics runtime (workers inherit
    both), connected as `temporal_connect_config` says. Without `telemetry`, tracing as the
    settings ask and no metrics (a call site). `rpc_metadata` goes with every call (a fleet
    worker's runtime JWT)."""
    config = temporal_connect_config(settings, embedded=embedded)
    address = config.pop("target_host")
    metadata = {**(config.pop("rpc_metadata", None) or {}), **(rpc_metadata or {})}
    if telemetry is None:
        telemetry = start_telemetry(settings)
    try:
        return await Client.connect(
            address,
            **config,
            data_converter=settings_data_converter(settings),
            interceptors=telemetry.client_interceptors(),
            runtime=telemetry.runtime,
            rpc_metadata=metadata,
        )
    except RuntimeError as err:
        hint = (
            "start the embedded stack with `durable dev`"
            if settings.temporal_address is None and "tls" not in config
            else "check TEMPORAL_ADDRESS and the TLS or API key settings of your profile"
        )
        raise TemporalUnreachable(f"cannot reach Temporal at {address}: {err}; {hint}") from err


def agent_runtimes(settings: Settings | None = None) -> dict[str, AgentRuntime]:
    """The agent runtimes sessions may name: `local` (the shipped deterministic agent) always,
    `http` when AGENT_HTTP_BASE_URL is set."""
    runtimes: dict[str, AgentRuntime] = {"local": CommandRuntime(local_agent_command())}
    if settings is not None and settings.agent_http_base_url:
        runtimes["http"] = ChatCompletionsRuntime(
            settings.agent_http_base_url,
            settings.agent_http_model,
            api_key=settings.agent_http_api_key,
        )
    return runtimes


def agent_route(settings: Settings) -> StartRoute | None:
    """Start each agent session on the task queue its project routes to (DURABLE_AGENT_ROUTES);
    None when no route is configured."""
    routes = ProjectRoutes.parse(settings.agent_routes)
    if not routes.table:
        return None

    def route(workflow_id: str, event: dict[str, Any]) -> str | None:
        if workflow_id != SESSION_WORKFLOW:
            return None
        return routes.task_queue(str(event.get("data", {}).get("project", "")))

    return route


def worker_registry(
    pool: asyncpg.Pool | None,
    client: DurableClient | None = None,
    runtimes: Mapping[str, AgentRuntime] | None = None,
    on_progress: ProgressHook | None = None,
    orgs: Sequence[str] = (),
    heartbeat_grace: timedelta = timedelta(seconds=90),
) -> Registry:
    """The shipped workflows, with the activities that need clients bound to them. Agent
    sessions announce their end and are cancelled through `client` (one with events);
    scheduled PM runs act for `orgs`; a fleet worker silent for `heartbeat_grace` is offline."""
    registry = shipped_registry()
    if pool is not None:
        registry.bind(NoteActivities(pool))
        sessions = SessionStore(pool)
        registry.bind(PmActivities(PmStore(pool), sessions, orgs))
        registry.bind(MemoryActivities(MemoryStore(pool)))
        registry.bind(FleetActivities(FleetStore(pool), sessions, heartbeat_grace=heartbeat_grace))
        registry.bind(SessionFinisher(sessions))
        registry.bind(
            AgentActivities(
                sessions,
                agent_runtimes() if runtimes is None else runtimes,
                on_progress=on_progress,
            )
        )
    if client is not None:
        registry.bind(SessionControl(client))
    return registry


def database_url(settings: Settings) -> str:
    """DATABASE_URL, or the socket of the embedded PostgreSQL of the running `durable dev`, as
    its app login, in the data dir found as `workers.locate` says, from any directory.

    Raises:
        DatabaseUnreachable: DATABASE_URL is not set and no embedded PostgreSQL runs there;
            the message names the folder and the setting it came from.
    """
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    found = locate_data_dir(settings)
    socket_dir = found.socket_dir
    if socket_dir is None:
        raise DatabaseUnreachable(found.not_running())
    return embedded_url(socket_dir)


def database_unreachable(err: DatabaseUnreachable, settings: Settings) -> str:
    """`err` for a CLI user: which setting led to the database it could not reach."""
    if not err.shown:  # not a connection attempt: `database_url` said why already
        return str(err)
    if settings.database_url is not None:
        return (
            f"cannot connect to PostgreSQL at {err.shown} (from DATABASE_URL): {err.why};"
            " check DATABASE_URL, or unset it to use the embedded stack of `durable dev`"
        )
    found = locate_data_dir(settings)
    return (
        f"cannot connect to PostgreSQL at {err.shown}: {err.why}; DATABASE_URL is not set, so"
        f" the CLI used the embedded stack of `durable dev` in {found.path} ({found.source}),"
        " which did not take the connection: is `durable dev` still starting?"
    )


async def durable_client(settings: Settings, *, events: bool = False) -> TemporalDurableClient:
    """A client for call sites (CLI, API); with `events`, one that can send events."""
    client = await connect_temporal(settings)
    registry = shipped_registry()
    ingress = None
    if events:
        pool = await create_pool(database_url(settings), max_size=2)
        ingress = EventIngress(
            client, EventStore(pool), registry, settings.task_queue, route=agent_route(settings)
        )
    return TemporalDurableClient(client, registry, settings.task_queue, events=ingress)


async def open_pool(settings: Settings) -> asyncpg.Pool:
    if settings.database_url is None:
        raise ValueError("DATABASE_URL is not set (or run `durable dev` for the embedded stack)")
    return await create_pool(settings.database_url.get_secret_value())


def linear_steps(settings: Settings) -> LinearSteps | None:
    """The Linear steps for the configured credentials, or None when none are configured."""
    if not settings.linear_configured:
        return None
    keys, tokens = settings.linear_api_keys, settings.linear_oauth_tokens
    credentials = LinearCredentials(
        api_keys=keys.get_secret_value() if keys else None,
        oauth_tokens=tokens.get_secret_value() if tokens else None,
    )
    return LinearSteps(credentials, settings.linear_api_url)


def make_worker(
    client: Client, settings: Settings, pool: asyncpg.Pool, linear: LinearSteps | None = None
) -> tuple[Worker, EventIngress]:
    """The worker, and the event ingress whose dispatcher should run beside it. `linear`
    overrides the Linear steps made from settings (the dev stack's local Linear)."""
    shipped = shipped_registry()
    ingress = EventIngress(
        client, EventStore(pool), shipped, settings.task_queue, route=agent_route(settings)
    )
    sessions_client = TemporalDurableClient(client, shipped, settings.task_queue, events=ingress)
    steps = linear or linear_steps(settings)
    registry = worker_registry(
        pool,
        sessions_client,
        agent_runtimes(settings),
        on_progress=steps.post_progress if steps is not None else None,
        orgs=steps.orgs if steps is not None else (),
        heartbeat_grace=settings.fleet_heartbeat_grace,
    )
    if steps is not None:
        registry.bind(steps)
    worker = build_worker(
        client,
        registry,
        settings.task_queue,
        max_concurrent_activities=settings.max_concurrent_activities,
        graceful_shutdown_timeout=timedelta(seconds=settings.graceful_shutdown_seconds),
        events=ingress,
        audit=StepAudit(pool) if settings.step_audit else None,
    )
    return worker, ingress


async def run_until_signalled(
    worker: Worker,
    on_ready: Callable[[], Awaitable[None]] | None = None,
    dispatcher: EventIngress | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run `worker` until SIGINT or SIGTERM, then shut it down gracefully: running steps get the
    graceful-shutdown window to finish, then are cancelled and retried elsewhere. Given `stop`,
    run until it is set instead: the caller handles the signals (`durable dev` does)."""
    own_signals = stop is None
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    if own_signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(worker.run())
    redelivery = asyncio.create_task(dispatcher.run_dispatcher()) if dispatcher else None
    try:
        log.info("worker started", extra={"task_queue": worker.task_queue})
        if on_ready is not None:
            await on_ready()
        done, _ = await asyncio.wait(
            [task, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED
        )
        if task in done:
            task.result()  # the worker died on its own: surface why
            return
        log.info(
            "shutting down: waiting for running steps", extra={"task_queue": worker.task_queue}
        )
        await worker.shutdown()
        await task
        log.info("worker stopped")
    finally:
        if redelivery is not None:
            redelivery.cancel()
        if own_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

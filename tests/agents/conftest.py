"""Workers with the agent-session steps bound (the shipped local agent as the `local` runtime),
the event ingress with a project route table, on the dev server and a real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta

import asyncpg
import pytest
from temporalio.client import Client

from activities.agents import (
    AgentActivities,
    AgentRuntime,
    CommandRuntime,
    ProgressHook,
    SessionControl,
    SessionFinisher,
    local_agent_command,
)
from activities.fleet import FleetActivities
from adapters.temporal import EventIngress, TemporalDurableClient, build_worker
from durable import Registry
from store import EventStore, FleetStore, SessionStore
from workers.runtime import agent_route
from workers.settings import Settings

from .workflows import REGISTRY


@dataclass
class Agents:
    client: Client
    pool: asyncpg.Pool
    task_queue: str
    runtimes: dict[str, AgentRuntime] = field(
        default_factory=lambda: {"local": CommandRuntime(local_agent_command(), kill_grace=1.0)}
    )
    on_progress: ProgressHook | None = None

    @property
    def sessions(self) -> SessionStore:
        return SessionStore(self.pool)

    def ingress(self, routes: str | None = None) -> EventIngress:
        # The composition root's route, from the same setting a deployment uses.
        settings = Settings.model_validate({"DURABLE_AGENT_ROUTES": routes})
        return EventIngress(
            self.client,
            EventStore(self.pool),
            REGISTRY,
            self.task_queue,
            route=agent_route(settings),
        )

    @asynccontextmanager
    async def running(
        self, *, routes: Mapping[str, str] | None = None, pools: tuple[str, ...] = ()
    ) -> AsyncIterator[TemporalDurableClient]:
        """Workers on the test's queue and on each of `pools`, sessions routed by `routes`."""
        text = ",".join(f"{project}={queue}" for project, queue in (routes or {}).items())
        ingress = self.ingress(text or None)
        client = TemporalDurableClient(self.client, REGISTRY, self.task_queue, events=ingress)
        registry = REGISTRY.merged(Registry())
        registry.bind(AgentActivities(self.sessions, self.runtimes, on_progress=self.on_progress))
        registry.bind(SessionFinisher(self.sessions))
        registry.bind(
            FleetActivities(
                FleetStore(self.pool), self.sessions, heartbeat_grace=timedelta(seconds=90)
            )
        )
        registry.bind(SessionControl(client))
        async with AsyncExitStack() as stack:
            for queue in (self.task_queue, *pools):
                await stack.enter_async_context(
                    build_worker(self.client, registry, queue, events=ingress)
                )
            yield client


@pytest.fixture
def agents(dev_client: Client, pool: asyncpg.Pool, task_queue: str) -> Agents:
    return Agents(dev_client, pool, task_queue)

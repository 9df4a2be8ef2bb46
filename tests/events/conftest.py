"""A worker and client with the event ingress, on the dev server or the time-skipping server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from adapters.temporal import EventIngress, TemporalDurableClient, build_worker
from store import EventStore

from .workflows import REGISTRY


@dataclass
class Events:
    client: Client
    pool: asyncpg.Pool
    task_queue: str
    search_attributes: bool = True

    @property
    def ingress(self) -> EventIngress:
        return EventIngress(
            self.client,
            EventStore(self.pool),
            REGISTRY,
            self.task_queue,
            search_attributes=self.search_attributes,
        )

    @asynccontextmanager
    async def running(self) -> AsyncIterator[TemporalDurableClient]:
        ingress = self.ingress
        async with build_worker(self.client, REGISTRY, self.task_queue, events=ingress):
            yield TemporalDurableClient(
                self.client,
                REGISTRY,
                self.task_queue,
                events=ingress,
                search_attributes=self.search_attributes,
            )


@pytest.fixture
def events(dev_client: Client, pool: asyncpg.Pool, task_queue: str) -> Events:
    return Events(dev_client, pool, task_queue)


@pytest.fixture
def skipping_events(
    time_skipping: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> Events:
    return Events(time_skipping.client, pool, task_queue, search_attributes=False)

"""The provider under test. The conformance tests use only `durable`; this file is the one place
that says which provider runs them (Temporal: the dev server, and the time-skipping server for
long timers). A second provider would add its own `Provider` here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from adapters.temporal import TemporalDurableClient, build_worker, ensure_search_attributes
from durable import DurableClient, Registry


@dataclass
class Provider:
    """Runs a registry's workflows and hands the test a `DurableClient` for them."""

    client: Client
    task_queue: str
    search_attributes: bool

    @asynccontextmanager
    async def running(self, registry: Registry) -> AsyncIterator[DurableClient]:
        async with build_worker(self.client, registry, self.task_queue):
            yield TemporalDurableClient(
                self.client, registry, self.task_queue, search_attributes=self.search_attributes
            )


@pytest.fixture
async def provider(dev_client: Client, task_queue: str) -> Provider:
    await ensure_search_attributes(dev_client, create=True)
    return Provider(dev_client, task_queue, search_attributes=True)


@pytest.fixture
def skipping_provider(time_skipping: WorkflowEnvironment, task_queue: str) -> Provider:
    return Provider(time_skipping.client, task_queue, search_attributes=False)

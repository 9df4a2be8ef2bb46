"""A step whose error is huge (an agent's whole output) fails with a readable message that fits
Temporal's limits: its kind, its start and its end, not "Failure exceeds size limit"."""

from __future__ import annotations

from temporalio.client import Client

from adapters.temporal import TemporalDurableClient, build_worker
from durable import Registry

from . import stubborn

REGISTRY = Registry([stubborn.verbose], [stubborn.verbose_failure])


async def test_a_huge_step_error_arrives_readable(dev_client: Client, task_queue: str) -> None:
    async with build_worker(dev_client, REGISTRY, task_queue):
        client = TemporalDurableClient(dev_client, REGISTRY, task_queue)
        out = await (await client.start(stubborn.verbose, {})).result()
    assert out.cause_type == "RuntimeError"
    assert out.cause.startswith("RuntimeError: the agent said: blah")
    assert out.cause.endswith("and then it gave up")
    assert "characters left out" in out.cause and len(out.cause) < 2_200

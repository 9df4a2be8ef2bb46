"""Step failures as Temporal carries them. A step whose error is huge (an agent's whole output)
fails with a readable message that fits
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


async def test_a_step_waits_out_an_outage_inside_its_one_attempt(
    dev_client: Client, task_queue: str
) -> None:
    """Its policy allows one attempt; the service is away for four calls: the attempt runs the
    body again, with backoff, and the step completes on that same attempt."""
    registry = Registry([stubborn.outlast], [stubborn.service_down_for_a_while])
    async with build_worker(dev_client, registry, task_queue):
        client = TemporalDurableClient(dev_client, registry, task_queue)
        out = await (await client.start(stubborn.outlast, {})).result()
    assert (out.attempt, out.calls) == (1, 5)

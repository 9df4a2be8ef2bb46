"""The baseline: the workload written with plain temporalio, as the SDK's samples do."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

from .models import Inp, Out, RawEvent, Received, WaitInp

TIMEOUT = timedelta(minutes=1)
RETRY = RetryPolicy(maximum_attempts=5)
WAIT_TIMEOUT = timedelta(hours=1)


@activity.defn(name="raw.step")
async def raw_step(input: Inp) -> Out:
    return Out(n=input.n + 1)


@workflow.defn(name="raw/steps.run")
class RawSteps:
    @workflow.run
    async def run(self, input: Inp) -> Out:
        value = input
        out = Out(n=input.n)
        for _ in range(input.steps):
            if input.fast:
                out = await workflow.execute_local_activity(
                    raw_step, value, start_to_close_timeout=TIMEOUT, retry_policy=RETRY
                )
            else:
                out = await workflow.execute_activity(
                    raw_step, value, start_to_close_timeout=TIMEOUT, retry_policy=RETRY
                )
            value = Inp(n=out.n, steps=input.steps, fast=input.fast)
        return out


@workflow.defn(name="raw/wait.run")
class RawWait:
    """The events baseline: wait for one signal, as the SDK's samples do."""

    def __init__(self) -> None:
        self.event: RawEvent | None = None

    @workflow.signal(name="approval")
    def approval(self, event: RawEvent) -> None:
        if self.event is None:
            self.event = event

    @workflow.run
    async def run(self, input: WaitInp) -> Received:
        try:
            await workflow.wait_condition(lambda: self.event is not None, timeout=WAIT_TIMEOUT)
        except TimeoutError:
            return Received(event_id="")
        assert self.event is not None
        return Received(event_id=self.event.id)


@workflow.defn(name="raw/agent.run")
class RawAgent:
    """One activity on another task queue (a pool's): `raw.agent`, defined in bench/fleet.py."""

    @workflow.run
    async def run(self, queue: str) -> str:
        result: str = await workflow.execute_activity(
            "raw.agent",
            "Triage these issues",
            task_queue=queue,
            start_to_close_timeout=timedelta(minutes=1),
            result_type=str,
        )
        return result

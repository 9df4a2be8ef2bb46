"""The events workload written against `durable`: a run waits for its own approval event."""

from __future__ import annotations

from typing import ClassVar

import durable

from .models import Approval, Received, WaitInp


class Approved(durable.Event[Approval]):
    type: ClassVar[str] = "bench/approval.resolved"


@durable.workflow("bench/wait.run")
async def wait_run(ctx: durable.WorkflowContext, input: WaitInp) -> Received:
    answer = await ctx.step.wait_for_event(
        "approval", Approved, where={"data.workflow_id": ctx.workflow_id}, timeout="1h"
    )
    return Received(event_id=answer.id if answer is not None else "")


REGISTRY = durable.Registry([wait_run], events=[Approved])

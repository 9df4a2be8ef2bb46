"""A workflow that breaks the rules: it reads the wall clock instead of `ctx.now()`."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

import durable


class Empty(BaseModel):
    pass


class When(BaseModel):
    at: str


@durable.workflow("tests/wall-clock.run")
async def wall_clock(ctx: durable.WorkflowContext, input: Empty) -> When:
    return When(at=datetime.now().isoformat())  # not allowed in a workflow

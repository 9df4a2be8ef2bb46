"""`DurableWorkflow[In, Out]`: a workflow written once against the provider-neutral interface."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from ._context import WorkflowContext
from ._errors import InvalidDefinition
from ._models import io_models
from ._trigger import Trigger, parse_trigger

In = TypeVar("In", bound=BaseModel)
Out = TypeVar("Out", bound=BaseModel)

WORKFLOW_ID = re.compile(r"^[a-z][a-z0-9-]*/[a-z][a-z0-9-]*(?:\.[a-z][a-z0-9-]*)+$")

RunFn = Callable[[WorkflowContext, In], Awaitable[Out]]


@dataclass(frozen=True)
class DurableWorkflow(Generic[In, Out]):
    """A durable workflow.

    Attributes:
        id: Stable id such as `rensei/example.run`. It is the provider's workflow type (the
            Temporal workflow type) and the key everywhere else; never rename a workflow with
            runs in flight.
        input_type, output_type: The pydantic models of its input and output.
        fn: The body, `async def run(ctx, input) -> output`.
        trigger: A cron expression, an event type, or None for manual starts only.
        description: One line shown in listings and the UI.
    """

    id: str
    input_type: type[In]
    output_type: type[Out]
    fn: RunFn[In, Out] = field(compare=False)
    trigger: Trigger | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if not WORKFLOW_ID.match(self.id):
            raise InvalidDefinition(
                f"workflow id {self.id!r} must read '{{source}}/{{name}}.{{verb}}' in lower case, "
                f"e.g. 'rensei/example.run'"
            )

    async def run(self, ctx: WorkflowContext, input: In) -> Out:
        return await self.fn(ctx, input)

    @property
    def module(self) -> str:
        return str(self.fn.__module__)

    @property
    def qualname(self) -> str:
        return str(self.fn.__qualname__)


def workflow(
    id: str, *, trigger: str | Trigger | None = None, description: str = ""
) -> Callable[[RunFn[In, Out]], DurableWorkflow[In, Out]]:
    """Define a durable workflow from `async def run(ctx, input: In) -> Out`.

    The function must be defined at module top level, so a provider can re-import it (the
    Temporal sandbox does).
    """

    def wrap(fn: RunFn[In, Out]) -> DurableWorkflow[In, Out]:
        if "<locals>" in fn.__qualname__:
            raise InvalidDefinition(f"workflow {id!r} must be defined at module top level")
        input_type, output_type = io_models(fn, f"workflow {id!r}", skip=1)
        doc = description or (fn.__doc__ or "").strip().splitlines()[0:1]
        return DurableWorkflow(
            id=id,
            input_type=input_type,
            output_type=output_type,
            fn=fn,
            trigger=parse_trigger(trigger),
            description=doc if isinstance(doc, str) else "".join(doc),
        )

    return wrap


def check_workflow(obj: Any) -> DurableWorkflow[Any, Any]:
    if not isinstance(obj, DurableWorkflow):
        raise InvalidDefinition(f"expected a DurableWorkflow, got {type(obj).__name__}")
    return obj

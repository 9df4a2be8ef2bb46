"""`DurableWorkflow[In, Out]`: a workflow written once against the provider-neutral interface."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from ._context import WorkflowContext
from ._errors import InvalidDefinition
from ._events import Event, Wait, event_type_name, path_exists
from ._limits import (
    Concurrency,
    ConcurrencySpec,
    Throttle,
    ThrottleSpec,
    check_concurrency,
    check_throttle,
)
from ._models import io_models
from ._trigger import EventTrigger, Trigger, parse_trigger

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
        trigger_event: The event type that starts it, if any (the run's input is that event).
        waits: Declared `Wait`s, checked against the trigger event.
        throttle: Starts allowed per key per period, for event-triggered starts.
        concurrency: Runs allowed per key at once, for event-triggered starts.
    """

    id: str
    input_type: type[In]
    output_type: type[Out]
    fn: RunFn[In, Out] = field(compare=False)
    trigger: Trigger | None = None
    description: str = ""
    trigger_event: type[Event[Any]] | None = None
    waits: tuple[Wait, ...] = ()
    throttle: Throttle | None = None
    concurrency: Concurrency | None = None
    approvers: Approvers = field(default_factory=lambda: Approvers())

    @property
    def event_types(self) -> list[type[Event[Any]]]:
        """The event types this workflow is triggered by or waits for."""
        found = [w.event for w in self.waits]
        return [self.trigger_event, *found] if self.trigger_event else found

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


@dataclass(frozen=True)
class Approvers:
    """Who may answer a workflow's approvals through the HTTP API.

    Attributes:
        scope: The scope an approving principal needs (default `approve`).
        principals: When not empty, only these principals may approve, by name as the API
            records them: `key:<key name>` or `oidc:<subject>`.
    """

    scope: str = "approve"
    principals: tuple[str, ...] = ()

    def allow(self, name: str, scopes: frozenset[str]) -> bool:
        if self.principals and name not in self.principals:
            return False
        return self.scope in scopes or "admin" in scopes


def _check_waits(id: str, trigger_event: type[Event[Any]] | None, waits: tuple[Wait, ...]) -> None:
    for wait in waits:
        awaited = event_type_name(wait.event)
        if trigger_event is None:
            raise InvalidDefinition(
                f"workflow {id!r} waits for {awaited!r} with match={wait.match!r}, but has no "
                f"trigger event to match against; use where={{...}} instead"
            )
        missing = [
            name
            for name, model in ((awaited, wait.event), (trigger_event.type, trigger_event))
            if not path_exists(model, wait.match)
        ]
        if missing:
            raise InvalidDefinition(
                f"workflow {id!r}: match path {wait.match!r} must exist on both the awaited "
                f"event {awaited!r} and the trigger event {trigger_event.type!r}; it is missing "
                f"on {' and '.join(repr(m) for m in missing)}"
            )


def workflow(
    id: str,
    *,
    trigger: str | Trigger | type[Event[Any]] | None = None,
    waits: tuple[Wait, ...] | list[Wait] = (),
    description: str = "",
    throttle: ThrottleSpec | None = None,
    concurrency: ConcurrencySpec | None = None,
    approvers: Approvers | None = None,
) -> Callable[[RunFn[In, Out]], DurableWorkflow[In, Out]]:
    """Define a durable workflow from `async def run(ctx, input: In) -> Out`.

    The function must be defined at module top level, so a provider can re-import it (the
    Temporal sandbox does).

    Args:
        id: The stable id, e.g. `rensei/example.run`.
        trigger: A cron expression, an event type name or `Event` subclass (the run's input is
            then that event), or None for manual starts.
        waits: The `Wait(event, match=...)` the body uses with `match`; each match path is
            checked here against the awaited and the trigger event types.
        description: One line for listings.
        throttle: `Throttle(key, limit, period, excess="delay"|"skip")` or a tuple
            `(key, limit, period)`: at most `limit` event-triggered starts per key per period;
            the key is a path on the trigger event such as `data.conversation_id`.
        concurrency: `Concurrency(key, limit)` or `(key, limit)`: at most `limit` runs per key
            at once; later runs wait for a slot.
        approvers: `Approvers(scope=..., principals=(...))`: who may answer its approvals
            through the API (default: any principal of the run's org with scope `approve`).
    """
    trigger_event = trigger if isinstance(trigger, type) and issubclass(trigger, Event) else None
    if trigger_event is not None:
        trigger = EventTrigger(event_type_name(trigger_event))
    declared = tuple(waits)
    _check_waits(id, trigger_event, declared)
    throttled = check_throttle(id, throttle, trigger_event)
    limited = check_concurrency(id, concurrency, trigger_event)

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
            trigger=parse_trigger(trigger),  # type: ignore[arg-type]
            description=doc if isinstance(doc, str) else "".join(doc),
            trigger_event=trigger_event,
            waits=declared,
            throttle=throttled,
            concurrency=limited,
            approvers=approvers or Approvers(),
        )

    return wrap


def check_workflow(obj: Any) -> DurableWorkflow[Any, Any]:
    if not isinstance(obj, DurableWorkflow):
        raise InvalidDefinition(f"expected a DurableWorkflow, got {type(obj).__name__}")
    return obj

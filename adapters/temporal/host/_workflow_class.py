"""Build the Temporal workflow class for a `DurableWorkflow`.

The sandbox imports a workflow class by module and name, then re-imports that module in
isolation. So each class is served by `adapters.temporal._generated`, a module whose attribute
names encode where the `DurableWorkflow` is defined; inside the sandbox, reading the attribute
re-imports the user's workflow module there, so its code runs under the sandbox's rules.
"""

from __future__ import annotations

import asyncio
import importlib
from typing import Any

from pydantic import ValidationError
from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError, FailureError

from durable import DurableError, DurableWorkflow, InputValidationError, WorkflowCancelled
from durable._limits import key_of

from ._context import Inbox, TemporalContext
from ._ingress import EVENT_SIGNAL, EventDelivery
from ._progress import DESCRIBE_QUERY, SEARCH_ATTRIBUTES_MEMO, RunProgress

GENERATED_MODULE = "adapters.temporal._generated"
_PREFIX = "DurableWorkflow_"


def class_name(wf: DurableWorkflow[Any, Any]) -> str:
    """An identifier that encodes `module:qualname` of the workflow definition."""
    return _PREFIX + f"{wf.module}:{wf.qualname}".encode().hex()


def locate(name: str) -> DurableWorkflow[Any, Any]:
    """Import the `DurableWorkflow` that `class_name` encoded into `name`."""
    if not name.startswith(_PREFIX):
        raise AttributeError(name)
    module_name, qualname = bytes.fromhex(name[len(_PREFIX) :]).decode().split(":", 1)
    target: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    if isinstance(target, DurableWorkflow):
        return target
    # The decorator replaced the function by the definition under the same name.
    raise AttributeError(f"{module_name}.{qualname} is not a DurableWorkflow")


def _as_failure(err: DurableError) -> ApplicationError:
    details = [{"step_id": v} for v in [getattr(err, "step_id", None)] if v is not None]
    return ApplicationError(str(err), *details, type=type(err).__name__, non_retryable=True)


async def _run_limited(wf: DurableWorkflow[Any, Any], ctx: TemporalContext, arg: Any) -> Any:
    """Run the body, inside a concurrency slot when the workflow declares a limit. The slot
    is released when the run ends: completed, failed or cancelled (a terminated run's slot is
    reclaimed by the event dispatcher). An exception that only fails the workflow task (a bug;
    the task is retried) keeps the slot."""
    limit = wf.concurrency
    if limit is None:
        return await wf.run(ctx, arg)
    key = key_of(arg.model_dump(mode="json"), limit.key)
    try:
        await ctx.step.hold_slot(wf.id, key, limit.limit)
        result = await wf.run(ctx, arg)
    except (DurableError, FailureError, asyncio.CancelledError):
        await ctx.step.release_slot(wf.id, key, limit.limit)
        raise
    await ctx.step.release_slot(wf.id, key, limit.limit)
    return result


def build_class(wf: DurableWorkflow[Any, Any], name: str) -> type:
    """The Temporal workflow class for `wf`; its workflow type is `wf.id`."""

    def init(self: Any) -> None:
        self._durable_inbox = Inbox()

    init.__name__ = "__init__"

    def on_event(self: Any, delivery: EventDelivery) -> None:
        if delivery.run_id and delivery.run_id != workflow.info().run_id:
            return  # meant for an execution before a continue-as-new: it moved on
        self._durable_inbox.deliver(delivery.step_id, delivery.event)

    async def run(self: Any, raw: RawValue) -> Any:
        ctx = TemporalContext(
            search_attributes=workflow.memo_value(SEARCH_ATTRIBUTES_MEMO, True, type_hint=bool),
            inbox=self._durable_inbox,
            definition=wf,
        )
        self._durable_ctx = ctx
        try:
            data = workflow.payload_converter().from_payload(raw.payload)
            try:
                arg = wf.input_type.model_validate(data)
            except ValidationError as err:
                raise InputValidationError(f"workflow {wf.id!r}", str(err)) from None
            ctx.step.trigger = arg
            result = await _run_limited(wf, ctx, arg)
        except WorkflowCancelled as err:
            raise asyncio.CancelledError(str(err)) from err
        except DurableError as err:
            raise _as_failure(err) from err
        return result

    def describe(self: Any) -> RunProgress:
        ctx: TemporalContext | None = getattr(self, "_durable_ctx", None)
        return ctx.progress.state if ctx is not None else RunProgress()

    run.__annotations__ = {"raw": RawValue, "return": wf.output_type}
    describe.__annotations__ = {"return": RunProgress}
    on_event.__annotations__ = {"delivery": EventDelivery, "return": None}
    # Temporal wants handlers that look defined on the class, in the class's module.
    for fn in (run, describe, on_event, init):
        fn.__module__ = GENERATED_MODULE
        fn.__qualname__ = f"{name}.{fn.__name__}"
    cls = type(
        name,
        (),
        {
            "__module__": GENERATED_MODULE,
            "__qualname__": name,
            "__doc__": wf.description or None,
            "run": workflow.run(run),
            "describe": workflow.query(name=DESCRIBE_QUERY)(describe),
            "on_event": workflow.signal(name=EVENT_SIGNAL)(on_event),
            "__init__": init,
        },
    )
    return workflow.defn(name=wf.id)(cls)

"""Build the Temporal workflow class for a `DurableWorkflow`.

The sandbox imports a workflow class by module and name, then re-imports that module in
isolation. So each class is served by `adapters.temporal._generated`, a module whose attribute
names encode where the `DurableWorkflow` is defined; inside the sandbox, reading the attribute
re-imports the user's workflow module there, so its code runs under the sandbox's rules.
"""

from __future__ import annotations

import asyncio
import importlib
import json
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError, FailureError

from durable import (
    MAX_JSON_DEPTH,
    DurableError,
    DurableWorkflow,
    InputValidationError,
    RunStatus,
    WorkflowCancelled,
    validation_message,
)
from durable._events import json_depth
from durable._limits import key_of

from ._context import Inbox, TemporalContext
from ._ingress import EVENT_SIGNAL, EventDelivery
from ._progress import DESCRIBE_QUERY, SEARCH_ATTRIBUTES_MEMO, RunProgress
from ._resolve import RESOLVE_UPDATE, Resolved

# Runs recorded before DurableStatus said "timed-out" replay without its timer.
TIMED_OUT_PATCH = "durable.timed-out-status"

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


def _input_hint(wf: DurableWorkflow[Any, Any]) -> str:
    fields = wf.input_type.model_json_schema().get("required", [])
    shown = ", ".join(f'"{name}": ...' for name in fields)
    return f"pass a JSON object for {wf.input_type.__name__}, e.g. --input '{{{shown}}}'"


def _decode(wf: DurableWorkflow[Any, Any], raw: RawValue | None) -> Any:
    """The run's input as the workflow's input model; a missing or unreadable input fails
    the run at once, saying what to pass."""
    if raw is None:
        raise InputValidationError(f"workflow {wf.id!r}", f"no input was given; {_input_hint(wf)}")
    encoding = raw.payload.metadata.get("encoding", b"").decode(errors="replace")
    if encoding != "json/plain":
        raise InputValidationError(
            f"workflow {wf.id!r}",
            f"the input is not JSON (encoding {encoding!r}); {_input_hint(wf)}",
        )
    try:
        data = json.loads(raw.payload.data)  # plain JSON: depth is checked before models
    except Exception as err:
        raise InputValidationError(
            f"workflow {wf.id!r}",
            f"the input is not JSON ({type(err).__name__}); {_input_hint(wf)}",
        ) from None
    if json_depth(data) > MAX_JSON_DEPTH:
        raise InputValidationError(
            f"workflow {wf.id!r}", f"the input nests deeper than {MAX_JSON_DEPTH} levels"
        )
    try:
        return wf.input_type.model_validate(data)
    except ValidationError as err:
        raise InputValidationError(f"workflow {wf.id!r}", validation_message(err)) from None


def _deadline(ctx: TemporalContext) -> None:
    """Say "timed-out" just before the server times the run out (it runs no code then)."""
    info = workflow.info()
    limit = min((t for t in (info.run_timeout, info.execution_timeout) if t), default=None)
    if limit is None or not ctx.progress.search_attributes:
        return
    margin = min(max(limit * 0.01, timedelta(seconds=2)), timedelta(seconds=30))
    left = info.workflow_start_time + limit - margin - workflow.now()
    if left <= timedelta(0) or not workflow.patched(TIMED_OUT_PATCH):
        return

    async def mark() -> None:
        await workflow.sleep(left, summary="durable: mark timed-out")
        ctx.progress.finish(RunStatus.TIMED_OUT)

    ctx.background.append(asyncio.create_task(mark()))  # ends with the run


def build_class(wf: DurableWorkflow[Any, Any], name: str) -> type:
    """The Temporal workflow class for `wf`; its workflow type is `wf.id`."""

    def init(self: Any) -> None:
        self._durable_inbox = Inbox()
        self._durable_ctx = TemporalContext(
            search_attributes=workflow.memo_value(SEARCH_ATTRIBUTES_MEMO, True, type_hint=bool),
            inbox=self._durable_inbox,
            definition=wf,
        )

    init.__name__ = "__init__"

    async def on_event(self: Any, payload: dict[str, Any]) -> None:
        ctx: TemporalContext = self._durable_ctx
        if "step_id" not in payload:  # an event for the run to route: type, id, data
            await ctx.resolver.on_signal(payload)
            return
        delivery = EventDelivery.model_validate(payload)  # from the event ingress
        if delivery.run_id and delivery.run_id != workflow.info().run_id:
            return  # meant for an execution before a continue-as-new: it moved on
        if not ctx.step.claimed(delivery.step_id.split("[")[0]):
            event_id = delivery.event.get("id", "?")
            ctx.resolver.ignore(
                f"signal durable.event for step {delivery.step_id!r} (event {event_id}): this "
                f'run has no such step; send {{"type", "id", "data"}} without a step id'
            )
            return
        self._durable_inbox.deliver(delivery.step_id, delivery.event)

    async def resolve(self: Any, event: dict[str, Any]) -> Resolved:
        ctx: TemporalContext = self._durable_ctx
        return await ctx.resolver.take(event, "update")

    def validate_resolve(self: Any, event: dict[str, Any]) -> None:
        ctx: TemporalContext = self._durable_ctx
        ctx.resolver.check(event)

    async def run(self: Any, raw: RawValue | None = None) -> Any:
        ctx: TemporalContext = self._durable_ctx
        try:
            arg = _decode(wf, raw)
            ctx.begin(arg)
            _deadline(ctx)
            ctx.step.trigger = arg
            result = await _run_limited(wf, ctx, arg)
        except WorkflowCancelled as err:
            ctx.progress.finish(RunStatus.CANCELLED)
            raise asyncio.CancelledError(str(err)) from err
        except asyncio.CancelledError:
            ctx.progress.finish(RunStatus.CANCELLED)
            raise
        except DurableError as err:
            ctx.progress.finish(RunStatus.FAILED)
            raise _as_failure(err) from err
        except FailureError:
            ctx.progress.finish(RunStatus.FAILED)
            raise
        except ValidationError as err:
            # Data the run made that its own models refuse (a bad duration in its input, say):
            # retrying the workflow task cannot help, so the run fails, saying what is wrong.
            ctx.progress.finish(RunStatus.FAILED)
            raise ApplicationError(
                f"workflow {wf.id!r} built data its models refuse: {validation_message(err)}",
                type="InvalidData",
                non_retryable=True,
            ) from None
        ctx.progress.finish(RunStatus.COMPLETED)
        return result

    def describe(self: Any) -> RunProgress:
        ctx: TemporalContext = self._durable_ctx
        return ctx.progress.state

    # A missing input arrives as the default (None): the SDK converts what was given.
    run.__annotations__ = {"raw": RawValue, "return": wf.output_type}
    describe.__annotations__ = {"return": RunProgress}
    on_event.__annotations__ = {"payload": dict[str, Any], "return": None}
    resolve.__annotations__ = {"event": dict[str, Any], "return": Resolved}
    validate_resolve.__annotations__ = {"event": dict[str, Any], "return": None}
    # Temporal wants handlers that look defined on the class, in the class's module.
    for fn in (run, describe, on_event, init, resolve, validate_resolve):
        fn.__module__ = GENERATED_MODULE
        fn.__qualname__ = f"{name}.{fn.__name__}"
    update = workflow.update(name=RESOLVE_UPDATE)(resolve)
    update.validator(validate_resolve)
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
            "resolve": update,
            "__init__": init,
        },
    )
    return workflow.defn(name=wf.id)(cls)

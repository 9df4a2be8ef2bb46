"""Run a `durable.Activity` as a Temporal activity: background heartbeats so cancellation
reaches every step, the neutral activity context, and failures the workflow can read."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from durable import Activity, ActivityContext, NonRetryableError, RetryAfter, StepInfo
from durable._activity_context import reset_activity_context, set_activity_context

from ._interceptor import current_tenancy
from ._outage import Outage

# A step's own code may stay silent; this loop proves it alive and picks up cancellation.
HEARTBEAT_EVERY = timedelta(seconds=1)


class _TemporalActivityContext(ActivityContext):
    def __init__(self, info: activity.Info) -> None:
        self.info = StepInfo(
            workflow_id=info.workflow_id or "",
            run_id=info.workflow_run_id or "",
            workflow=info.workflow_type or "",
            step_id=info.activity_id,
            attempt=info.attempt,
            tenancy=current_tenancy.get(),
        )
        self._details: tuple[Any, ...] = ()

    def heartbeat(self, *details: Any) -> None:
        self._details = details
        activity.heartbeat(*details)

    def beat(self) -> None:
        activity.heartbeat(*self._details)

    def heartbeat_details(self) -> tuple[Any, ...]:
        return tuple(activity.info().heartbeat_details)

    @property
    def is_cancelled(self) -> bool:
        return activity.is_cancelled()


async def _heartbeat_forever(ctx: _TemporalActivityContext) -> None:
    while True:
        await asyncio.sleep(HEARTBEAT_EVERY.total_seconds())
        ctx.beat()


def _failure(err: BaseException, attempt: int) -> ApplicationError:
    if isinstance(err, NonRetryableError):
        return ApplicationError(str(err), {"attempt": attempt}, type=err.kind, non_retryable=True)
    if isinstance(err, RetryAfter):
        return ApplicationError(
            str(err), {"attempt": attempt}, type="RetryAfter", next_retry_delay=err.delay
        )
    return ApplicationError(
        f"{type(err).__name__}: {err}" if str(err) else type(err).__name__,
        {"attempt": attempt},
        type=type(err).__name__,
    )


def temporal_activity(act: Activity[Any, Any]) -> Callable[[BaseModel], Awaitable[BaseModel]]:
    """Wrap an implemented activity as a Temporal activity named `act.name`."""
    impl = act.fn
    if impl is None:
        raise ValueError(f"activity {act.name!r} has no implementation")

    async def execute(input: BaseModel) -> BaseModel:
        info = activity.info()
        ctx = _TemporalActivityContext(info)
        token = set_activity_context(ctx)
        beats = None if info.is_local else asyncio.create_task(_heartbeat_forever(ctx))
        outage = Outage(info, None if info.is_local else ctx.heartbeat)
        try:
            while True:
                try:
                    result: BaseModel = await impl(input)
                    return result
                except (asyncio.CancelledError, ApplicationError):
                    raise
                except Exception as err:
                    if await outage.wait(err):
                        continue  # the service may be back: run the body again
                    raise _failure(err, info.attempt) from err
        finally:
            if beats is not None:
                beats.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beats
            reset_activity_context(token)

    execute.__annotations__ = {"input": act.input_type, "return": act.output_type}
    execute.__name__ = execute.__qualname__ = act.name.replace(".", "_").replace("-", "_")
    return activity.defn(name=act.name)(execute)

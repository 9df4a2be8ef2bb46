"""The worker interceptor: tenancy travels from a run to its steps and child runs in a Temporal
header, and every step attempt is written to the step audit before it reports.

The workflow side runs in the sandbox and only adds a header; the activity side reads it, makes
the tenancy available to the step (`StepInfo.tenancy`) and writes one `step_executions` row per
attempt, in one commit, after the attempt and before Temporal hears of its outcome. A replay
runs no activity, so it writes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, NoReturn

from temporalio import activity, workflow
from temporalio.api.common.v1 import Payload
from temporalio.converter import default as default_converter
from temporalio.exceptions import ApplicationError, CancelledError, FailureError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    StartActivityInput,
    StartChildWorkflowInput,
    StartLocalActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

from durable import Tenancy
from durable._tenancy import NO_TENANCY
from store import StepAttempt, StepAudit

from ._progress import run_scope

log = logging.getLogger("durable.audit")

TENANCY_HEADER = "durable-tenancy"
# The store calls behind waits and slots are part of their wait steps, not steps of their own.
BOOKKEEPING = frozenset(
    {
        "durable.register-wait",
        "durable.close-wait",
        "durable.settle-any",
        "durable.acquire-slot",
        "durable.release-slot",
    }
)
ERROR_LIMIT = 2000
# A step failure larger than this (message, causes and tracebacks, in characters) is sent as
# its kind and the start and end of its message (MESSAGE_LIMIT), well inside Temporal's limits.
FAILURE_LIMIT = 16_000
MESSAGE_LIMIT = 2_000

current_tenancy: ContextVar[Tenancy] = ContextVar("durable_tenancy", default=NO_TENANCY)


class DurableInterceptor(Interceptor):
    """Tenancy headers always; the step audit when `audit` is given."""

    def __init__(self, audit: StepAudit | None = None) -> None:
        self._audit = audit

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _AuditedActivity(next, self._audit)

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        return _TenancyWorkflowInbound


class _TenancyWorkflowInbound(WorkflowInboundInterceptor):
    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_TenancyWorkflowOutbound(outbound))


def _with_tenancy(headers: Any) -> dict[str, Payload]:
    scope = run_scope()
    if not any(scope.values()):
        return dict(headers)
    return {**headers, TENANCY_HEADER: workflow.payload_converter().to_payload(scope)}


class _TenancyWorkflowOutbound(WorkflowOutboundInterceptor):
    def start_activity(self, input: StartActivityInput) -> workflow.ActivityHandle[Any]:
        input.headers = _with_tenancy(input.headers)
        return super().start_activity(input)

    def start_local_activity(self, input: StartLocalActivityInput) -> workflow.ActivityHandle[Any]:
        input.headers = _with_tenancy(input.headers)
        return super().start_local_activity(input)

    async def start_child_workflow(
        self, input: StartChildWorkflowInput
    ) -> workflow.ChildWorkflowHandle[Any, Any]:
        input.headers = _with_tenancy(input.headers)
        return await super().start_child_workflow(input)


def _tenancy_of(headers: Any) -> Tenancy:
    payload = headers.get(TENANCY_HEADER)
    if payload is None:
        return NO_TENANCY
    return Tenancy.model_validate(default_converter().payload_converter.from_payload(payload))


class _AuditedActivity(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, audit: StepAudit | None) -> None:
        super().__init__(next)
        self._audit = audit

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        tenancy = _tenancy_of(input.headers)
        token = current_tenancy.set(tenancy)
        try:
            info = activity.info()
            if self._audit is None or info.activity_type in BOOKKEEPING:
                return await super().execute_activity(input)
            return await self._audited(input, info, tenancy)
        except Exception as err:
            cancelled = isinstance(err, FailureError) and not isinstance(err, ApplicationError)
            if cancelled or not _too_big(err):
                raise
            raise _within_limits(err) from None
        finally:
            current_tenancy.reset(token)

    async def _audited(
        self, input: ExecuteActivityInput, info: activity.Info, tenancy: Tenancy
    ) -> Any:
        started = datetime.now(UTC)
        try:
            result = await super().execute_activity(input)
        except BaseException as err:
            cancelled = isinstance(err, asyncio.CancelledError | CancelledError)
            status = "cancelled" if cancelled else "failed"
            try:
                await self._record(info, tenancy, started, status, _summary(err))
            except Exception as audit_err:  # the attempt fails anyway; say what is missing
                log.error(
                    "could not audit a %s step attempt: %s",
                    status,
                    audit_err,
                    extra={"step_id": info.activity_id, "attempt": info.attempt},
                )
            raise
        try:
            await self._record(info, tenancy, started, "completed", None)
        except Exception as audit_err:
            _unaudited(info, audit_err)
        return result

    async def _record(
        self,
        info: activity.Info,
        tenancy: Tenancy,
        started: datetime,
        status: str,
        error: str | None,
    ) -> None:
        assert self._audit is not None
        await self._audit.record(
            StepAttempt(
                org_id=tenancy.org_id,
                workspace_id=tenancy.workspace_id,
                project_id=tenancy.project_id,
                run_id=info.workflow_run_id or "",
                workflow_id=info.workflow_id or "",
                workflow_type=info.workflow_type or "",
                step_id=info.activity_id,
                action=info.activity_type,
                attempt=info.attempt,
                status=status,
                started_at=started,
                ended_at=datetime.now(UTC),
                error=error,
            )
        )


def _too_big(err: BaseException) -> bool:
    """Whether the failure, with its causes, would pass Temporal's failure size limit (then
    the UI shows only "Failure exceeds size limit")."""
    total, hops = 0, 0
    seen: BaseException | None = err
    while seen is not None and hops < 20:  # a cause chain could loop
        total += len(str(seen)) + len("".join(traceback.format_tb(seen.__traceback__)))
        seen, hops = seen.__cause__ or seen.__context__, hops + 1
    return total > FAILURE_LIMIT


def _kind_and_message(err: BaseException) -> tuple[str, str]:
    """What a failure is (its ApplicationError type, else its class) and what it says."""
    if isinstance(err, ApplicationError):
        return err.type or type(err).__name__, err.message
    return type(err).__name__, str(err)


def _within_limits(err: BaseException) -> ApplicationError:
    """The failure, readable and small: its kind and the start and end of its message."""
    kind, message = _kind_and_message(err)
    if len(message) > MESSAGE_LIMIT:
        half = MESSAGE_LIMIT // 2
        left_out = len(message) - 2 * half
        message = f"{message[:half]} ... ({left_out} characters left out) ... {message[-half:]}"
    return ApplicationError(
        message,
        *(err.details if isinstance(err, ApplicationError) else ()),
        type=kind,
        non_retryable=isinstance(err, ApplicationError) and err.non_retryable,
        next_retry_delay=err.next_retry_delay if isinstance(err, ApplicationError) else None,
    )


def _summary(err: BaseException) -> str:
    kind, message = _kind_and_message(err)
    text = f"{kind}: {message}" if message else kind
    return text[:ERROR_LIMIT]


def _unaudited(info: activity.Info, err: Exception) -> NoReturn:
    """No step completes unaudited: the attempt fails (and is retried) instead."""
    log.error(
        "step attempt completed but its audit row could not be written; failing the attempt",
        extra={"step_id": info.activity_id, "attempt": info.attempt, "error": str(err)},
    )
    raise ApplicationError(
        f"step {info.activity_id!r} attempt {info.attempt} completed, but its audit row could "
        f"not be written ({type(err).__name__}: {err}); the attempt is retried",
        type="StepAuditUnavailable",
    ) from err

"""`DurableClient` on Temporal."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any, Generic, TypeVar, overload

from pydantic import BaseModel
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import (
    ApplicationError,
    CancelledError,
    FailureError,
    TerminatedError,
    TimeoutError,
    WorkflowAlreadyStartedError,
)
from temporalio.service import RPCError, RPCStatusCode

from durable import (
    DurableWorkflow,
    Event,
    EventError,
    EventReceipt,
    Registry,
    RunAlreadyStarted,
    RunCancelled,
    RunDescription,
    RunStatus,
    StuckRun,
    Tenancy,
    UnknownRun,
    WorkflowFailed,
)

from ._context import coerce_input
from ._ingress import EventIngress
from ._progress import (
    DESCRIBE_QUERY,
    STATUS_ATTRIBUTE,
    STEP_ATTRIBUTE,
    TENANCY_MEMO,
    RunProgress,
    start_details,
    start_options,
)
from ._stuck import find_stuck

Out = TypeVar("Out", bound=BaseModel)

_CLOSED = {
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_COMPLETED: RunStatus.COMPLETED,
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_FAILED: RunStatus.FAILED,
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_CANCELED: RunStatus.CANCELLED,
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TERMINATED: RunStatus.TERMINATED,
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TIMED_OUT: RunStatus.TIMED_OUT,
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW: RunStatus.CONTINUED,
}
# A query needs a worker; if none answers this fast, describe falls back to search attributes.
QUERY_TIMEOUT = timedelta(seconds=3)


def status_of(attribute: str | None) -> RunStatus:
    """The run status a DurableStatus search attribute stands for (it says what a run waits
    for: `waiting-for-event`, `waiting-for-child`, ...)."""
    if not attribute:
        return RunStatus.RUNNING
    if attribute.startswith("waiting"):
        return RunStatus.WAITING
    try:
        return RunStatus(attribute)
    except ValueError:
        return RunStatus.RUNNING


def _failure_message(err: BaseException) -> tuple[str, str]:
    if isinstance(err, ApplicationError):
        return err.message, err.type or "ApplicationError"
    if isinstance(err, TerminatedError):
        return f"terminated: {err.message}", "Terminated"
    if isinstance(err, TimeoutError):
        return "the run timed out", "Timeout"
    if isinstance(err, FailureError):
        return err.message, type(err).__name__
    return str(err), type(err).__name__


class TemporalRunHandle(Generic[Out]):
    def __init__(
        self,
        client: Client,
        handle: WorkflowHandle[Any, Any],
        registry: Registry,
        output_type: type[Out] | None,
    ) -> None:
        self._client = client
        self._handle = handle
        self._registry = registry
        self._output_type = output_type

    @property
    def workflow_id(self) -> str:
        return self._handle.id

    @property
    def run_id(self) -> str | None:
        return self._handle.result_run_id or self._handle.run_id

    @property
    def temporal(self) -> WorkflowHandle[Any, Any]:
        """The underlying Temporal handle, for adapter-aware code (tests, tools)."""
        return self._handle

    async def result(self) -> Out:
        output_type = self._output_type
        if output_type is None:
            workflow_type = (await self._describe_raw()).workflow_type
            output_type = self._registry.workflow(workflow_type).output_type
        handle = self._handle
        if self._output_type is None:
            handle = self._client.get_workflow_handle(
                handle.id, run_id=handle.run_id, result_type=output_type
            )
        try:
            result: Out = await handle.result()
        except WorkflowFailureError as err:
            if isinstance(err.cause, CancelledError):
                raise RunCancelled(self.workflow_id) from None
            message, kind = _failure_message(err.cause)
            raise WorkflowFailed(self.workflow_id, message, cause_type=kind) from None
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise UnknownRun(self.workflow_id) from None
            raise
        return result

    async def cancel(self, reason: str = "") -> None:
        try:
            await self._handle.cancel(reason=reason)
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise UnknownRun(self.workflow_id) from None
            raise

    async def _describe_raw(self) -> WorkflowExecutionDescription:
        try:
            return await self._handle.describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise UnknownRun(self.workflow_id) from None
            raise

    async def describe(self) -> RunDescription:
        raw = await self._describe_raw()
        status = _CLOSED.get(raw.raw_description.workflow_execution_info.status)
        progress: RunProgress | None = None
        failure: str | None = None
        if status is None:
            try:
                progress = await self._handle.query(
                    DESCRIBE_QUERY, result_type=RunProgress, rpc_timeout=QUERY_TIMEOUT
                )
            except RPCError:
                attrs = raw.typed_search_attributes
                step = attrs.get(STEP_ATTRIBUTE)
                progress = RunProgress(
                    status=status_of(attrs.get(STATUS_ATTRIBUTE)),
                    current_steps=[step] if step else [],
                    waiting_on="(no worker answered; showing the last recorded state)",
                )
            status = progress.status
        elif status is RunStatus.FAILED:
            try:
                await self._handle.result()
            except WorkflowFailureError as err:
                failure = _failure_message(err.cause)[0]
        scope = (await raw.memo()).get(TENANCY_MEMO)
        return RunDescription(
            tenancy=Tenancy.model_validate(scope) if scope else None,
            workflow_id=raw.id,
            run_id=raw.run_id,
            workflow=raw.workflow_type,
            status=status,
            current_steps=progress.current_steps if progress else [],
            waiting_on=progress.waiting_on if progress else None,
            completed_steps=progress.completed_steps if progress else None,
            resolve_with=progress.resolve_with if progress else [],
            ignored=progress.ignored if progress else [],
            started_at=raw.start_time,
            closed_at=raw.close_time,
            failure=failure,
            retrying=[
                f"{a.activity_id} (attempt {a.attempt}): {a.last_failure.message}"
                for a in raw.raw_description.pending_activities
                if a.attempt > 1 and a.HasField("last_failure")
            ],
        )


class TemporalDurableClient:
    """Starts and inspects durable runs on a Temporal cluster."""

    def __init__(
        self,
        client: Client,
        registry: Registry,
        task_queue: str,
        *,
        eager_start: bool = False,
        search_attributes: bool = True,
        events: EventIngress | None = None,
    ) -> None:
        """Args:
        client: A connected Temporal client with the pydantic data converter.
        registry: The workflows call sites may name.
        task_queue: Where runs are started; a worker must poll it.
        eager_start: Ask the server to hand the first workflow task straight to a worker in
            this process (saves a round trip when the client and worker share a process).
        search_attributes: Keep DurableStatus/DurableStep current; off for servers without
            custom search attributes (the time-skipping test server).
        events: The event ingress (needs Postgres); without it `send_event` is refused.
        """
        self.events = events
        self.temporal = client
        self.registry = registry
        self.task_queue = task_queue
        self._eager_start = eager_start
        self._search_attributes_on = search_attributes

    @overload
    async def start(
        self,
        workflow: DurableWorkflow[Any, Out],
        input: BaseModel | dict[str, Any],
        id: str | None = None,
        *,
        tenancy: Tenancy | None = None,
    ) -> TemporalRunHandle[Out]: ...

    @overload
    async def start(
        self,
        workflow: str,
        input: BaseModel | dict[str, Any],
        id: str | None = None,
        *,
        tenancy: Tenancy | None = None,
    ) -> TemporalRunHandle[Any]: ...

    async def start(
        self,
        workflow: DurableWorkflow[Any, Any] | str,
        input: BaseModel | dict[str, Any],
        id: str | None = None,
        *,
        tenancy: Tenancy | None = None,
    ) -> TemporalRunHandle[Any]:
        wf = self.registry.workflow(workflow if isinstance(workflow, str) else workflow.id)
        arg = coerce_input(wf.input_type, input, f"workflow {wf.id!r}")
        workflow_id = id or f"{wf.id}-{uuid.uuid4()}"
        memo, search_attributes = start_options(self._search_attributes_on, tenancy)
        try:
            handle = await self.temporal.start_workflow(
                wf.id,
                arg,
                id=workflow_id,
                task_queue=self.task_queue,
                result_type=wf.output_type,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                static_summary=f"{wf.id}" + (f": {wf.description}" if wf.description else ""),
                static_details=start_details(tenancy, "manual"),
                request_eager_start=self._eager_start,
                memo=memo,
                search_attributes=search_attributes,
            )
        except WorkflowAlreadyStartedError:
            raise RunAlreadyStarted(workflow_id) from None
        return TemporalRunHandle(self.temporal, handle, self.registry, wf.output_type)

    async def send_event(self, event: Event[Any]) -> EventReceipt:
        if self.events is None:
            raise EventError("events need a database: configure DATABASE_URL (or run durable dev)")
        return await self.events.send(event)

    async def stuck(self, *, org_id: str | None = None, limit: int = 500) -> list[StuckRun]:
        store = self.events.store if self.events is not None else None
        return await find_stuck(self.temporal, store, org_id=org_id, limit=limit)

    def get(self, workflow_id: str) -> TemporalRunHandle[Any]:
        return TemporalRunHandle(
            self.temporal, self.temporal.get_workflow_handle(workflow_id), self.registry, None
        )

"""`ctx` and `ctx.step` on Temporal. Runs inside the workflow sandbox."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, NoReturn, TypeVar

from pydantic import BaseModel, ValidationError
from temporalio import workflow
from temporalio.common import SearchAttributePair, SearchAttributeUpdate, TypedSearchAttributes
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    ChildWorkflowError,
    FailureError,
    TimeoutError,
)
from temporalio.workflow import ActivityCancellationType

from durable import (
    DEFAULT_RETRY,
    Activity,
    DurableWorkflow,
    Duration,
    InputValidationError,
    InvalidDefinition,
    RetryPolicy,
    RunStatus,
    StepFailed,
    Steps,
    Tenancy,
    WorkflowCancelled,
    WorkflowContext,
    parse_duration,
    validation_message,
)
from durable._events import (
    Event,
    On,
    derived_event_id,
    event_type_name,
    merge,
    nest,
    path_exists,
    value_at,
)
from durable._limits import SLOT_GRANTED
from durable._tenancy import NO_TENANCY

from ._event_activities import (
    CloseWait,
    Held,
    MaybeEvent,
    RegisterWait,
    SendEvent,
    SettleAny,
    Settled,
    Slot,
    TakeEvent,
    Taken,
    acquire_slot,
    close_wait,
    register_wait,
    release_slot,
    send_event,
    settle_any,
    take_event,
)
from ._progress import (
    SEARCH_ATTRIBUTES_MEMO,
    STARTED_MEMO,
    STATUS_ATTRIBUTE,
    STEP_ATTRIBUTE,
    TENANCY_MEMO,
    TRIGGER_ATTRIBUTE,
    WAITING_ON_ATTRIBUTE,
    RunProgress,
    start_details,
    start_options,
    start_tenancy,
)
from ._resolve import OpenWait, Resolver, Waits
from ._retry import ALWAYS_NON_RETRYABLE, to_temporal

# Runs started before DurableStatus told how a run ended replay without that last upsert.
FINAL_STATUS_PATCH = "durable.final-status"

# The store calls behind waits and slots are idempotent: while PostgreSQL is away they retry
# (every 30 s at most) until it is back, rather than fail the run.
STORE_RETRY = RetryPolicy(max_attempts=0, max_interval=timedelta(seconds=30))

# The step a run with a concurrency limit takes its slot in.
SLOT_STEP = "durable.concurrency-slot"

E = TypeVar("E", bound=Event[Any])
In = TypeVar("In", bound=BaseModel)
Out = TypeVar("Out", bound=BaseModel)
T = TypeVar("T")


def coerce_input(model: type[In], value: Any, what: str) -> In:
    """Validate `value` (a model or a dict) as `model`, or raise InputValidationError."""
    if type(value) is model:
        return value
    try:
        raw = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
        return model.model_validate(raw)
    except ValidationError as err:
        raise InputValidationError(what, validation_message(err)) from None


class _Progress:
    """Tracks status and running steps. Mirrors them into search attributes, but only when the
    status changes: DurableStatus says running, sleeping or waiting-for-event (-child, -slot),
    DurableStep names the step a run sleeps or waits in and DurableWaitingOn what it waits for
    (an event type, a child workflow), both empty while steps run (the UI shows running
    activities), so an ordinary step adds no history event."""

    def __init__(self, search_attributes: bool) -> None:
        self.state = RunProgress()
        self.search_attributes = search_attributes
        # What else the details say: how to resolve each open wait, what the run ignored.
        self.hints: Callable[[], list[str]] = list
        self.ignored: Callable[[], list[str]] = list
        self._kind: str | None = None  # the detailed status while waiting
        self._waiting_for = ""
        # What the run was started with (our client starts runs as "running"): no upsert needed.
        started = workflow.info().typed_search_attributes
        self._published = (
            started.get(STATUS_ATTRIBUTE) or "",
            started.get(STEP_ATTRIBUTE) or "",
            started.get(WAITING_ON_ATTRIBUTE) or "",
        )

    def _publish(self) -> None:
        if not workflow.in_workflow():  # a run's coroutines closed at eviction: nothing to say
            return
        state = self.state
        step = state.current_steps[-1] if state.current_steps else ""
        details = state.waiting_on or (f"running {', '.join(state.current_steps)}" if step else "")
        state.resolve_with, state.ignored = self.hints(), self.ignored()
        lines = [details, *(f"resolve it: {h}" for h in state.resolve_with)]
        lines += [f"ignored: {line}" for line in state.ignored[-3:]]
        workflow.set_current_details("\n".join(line for line in lines if line))
        running = state.status is RunStatus.RUNNING
        current = (
            state.status.value if running else (self._kind or state.status.value),
            "" if running else step,
            "" if running else self._waiting_for,
        )
        if self.search_attributes and current != self._published:
            self._published = current
            workflow.upsert_search_attributes(
                [
                    STATUS_ATTRIBUTE.value_set(current[0]),
                    STEP_ATTRIBUTE.value_set(current[1]),
                    WAITING_ON_ATTRIBUTE.value_set(current[2]),
                ]
            )

    def begin(self) -> None:
        """A run started without DurableStatus (from Temporal's own CLI or SDK) says
        "running", and without DurableTrigger "temporal"."""
        started = workflow.info().typed_search_attributes
        status: str | None = started.get(STATUS_ATTRIBUTE)
        if not self.search_attributes or status:
            return
        updates: list[SearchAttributeUpdate[Any]] = [
            STATUS_ATTRIBUTE.value_set(RunStatus.RUNNING.value)
        ]
        if not started.get(TRIGGER_ATTRIBUTE):
            updates.append(TRIGGER_ATTRIBUTE.value_set("temporal"))
        self._published = (RunStatus.RUNNING.value, "", "")
        workflow.upsert_search_attributes(updates)

    def finish(self, status: RunStatus) -> None:
        """DurableStatus says how the run ended (completed, failed, cancelled, continued;
        timed-out just before its deadline). Runs recorded before this have no such upsert."""
        self.state.status = status
        workflow.set_current_details(status.value)
        if not self.search_attributes or not workflow.patched(FINAL_STATUS_PATCH):
            return
        self._published = (status.value, "", "")
        workflow.upsert_search_attributes(
            [
                STATUS_ATTRIBUTE.value_set(status.value),
                STEP_ATTRIBUTE.value_set(""),
                WAITING_ON_ATTRIBUTE.value_set(""),
            ]
        )

    def next_run_attributes(self) -> TypedSearchAttributes | None:
        """A continue-as-new's search attributes: this run's, beginning "running" again."""
        if not self.search_attributes:
            return None
        afresh = {STATUS_ATTRIBUTE.name, STEP_ATTRIBUTE.name, WAITING_ON_ATTRIBUTE.name}
        kept = [
            pair for pair in workflow.info().typed_search_attributes if pair.key.name not in afresh
        ]
        return TypedSearchAttributes(
            [*kept, SearchAttributePair(STATUS_ATTRIBUTE, RunStatus.RUNNING.value)]
        )

    def refresh(self) -> None:
        """Say anew what the run waits for (the details; search attributes change only with
        the status)."""
        self._publish()

    async def track(
        self,
        step_id: str,
        status: RunStatus,
        waiting_on: str | None,
        body: Awaitable[T],
        *,
        kind: str | None = None,
        waiting_for: str = "",
    ) -> T:
        state = self.state
        state.current_steps.append(step_id)
        state.status, state.waiting_on = status, waiting_on
        self._kind, self._waiting_for = kind, waiting_for
        self._publish()
        try:
            result = await body
            state.completed_steps += 1
            return result
        finally:
            state.current_steps.remove(step_id)
            if not state.current_steps:
                state.status, state.waiting_on = RunStatus.RUNNING, None
                self._kind, self._waiting_for = None, ""
            self._publish()


def _attempts_of(err: ApplicationError, fallback: int) -> int:
    details = err.details
    if details and isinstance(details[0], dict) and isinstance(details[0].get("attempt"), int):
        return int(details[0]["attempt"])
    return fallback


def _step_failed(step_id: str, err: FailureError, policy: RetryPolicy) -> StepFailed:
    cause = err.cause
    if isinstance(cause, ApplicationError):
        return StepFailed(
            step_id,
            _attempts_of(cause, policy.max_attempts),
            cause.message,
            cause_type=cause.type or "",
            non_retryable=cause.non_retryable
            or (cause.type or "") in (*ALWAYS_NON_RETRYABLE, *policy.non_retryable),
        )
    if isinstance(cause, TimeoutError):
        kind = cause.type.name.lower().replace("_", "-") if cause.type else "timeout"
        return StepFailed(
            step_id, policy.max_attempts or 1, f"timed out ({kind})", cause_type="Timeout"
        )
    message = cause.message if isinstance(cause, FailureError) else str(err)
    return StepFailed(step_id, 1, message, cause_type=type(cause).__name__)


def _is_cancel(err: BaseException) -> bool:
    return isinstance(err, asyncio.CancelledError | CancelledError) or isinstance(
        getattr(err, "cause", None), CancelledError
    )


class TemporalSteps(Steps):
    def __init__(self, progress: _Progress, inbox: Inbox, waits: Waits) -> None:
        super().__init__()
        self._progress = progress
        self._inbox = inbox
        self.waits = waits
        self.trigger: BaseModel | None = None  # the run's input, for `match`
        # When the run began: its first execution's start, across continue-as-new. Waits
        # count events received since then.
        self.started_at: datetime = workflow.info().workflow_start_time
        self.tenancy: Tenancy = NO_TENANCY  # set by the context from the memo

    def _child_options(self) -> tuple[dict[str, Any], TypedSearchAttributes]:
        """A child run inherits the tenancy; its trigger reads `invoke`."""
        return start_options(self._progress.search_attributes, self.tenancy, "invoke")

    async def _guard(
        self, step_id: str, policy: RetryPolicy, call: Callable[[], Awaitable[T]]
    ) -> T:
        try:
            return await call()
        except (ActivityError, ChildWorkflowError) as err:
            if _is_cancel(err):
                raise WorkflowCancelled(f"the run was cancelled during step {step_id!r}") from err
            raise _step_failed(step_id, err, policy) from None
        except asyncio.CancelledError as err:
            raise WorkflowCancelled(f"the run was cancelled during step {step_id!r}") from err

    async def run(
        self,
        step_id: str,
        activity: Activity[In, Out],
        input: In,
        *,
        retry: RetryPolicy | None = None,
        timeout: Duration | None = None,
        fast: bool | None = None,
        queue: str | None = None,
        queue_timeout: Duration | None = None,
    ) -> Out:
        self.claim(step_id)
        arg = coerce_input(activity.input_type, input, f"step {step_id!r}")
        policy = retry or activity.retry or DEFAULT_RETRY
        per_attempt = parse_duration(timeout) if timeout is not None else activity.default_timeout
        short = activity.fast if fast is None else fast
        if short and queue is not None:
            raise ValueError(
                f"step {step_id!r}: a fast (local) step runs in place, not on {queue!r}"
            )

        async def call() -> Out:
            result: Out
            if short:
                result = await workflow.execute_local_activity(
                    activity.name,
                    arg,
                    result_type=activity.output_type,
                    start_to_close_timeout=per_attempt,
                    retry_policy=to_temporal(policy),
                    activity_id=step_id,
                    summary=step_id,
                )
                return result
            result = await workflow.execute_activity(
                activity.name,
                arg,
                result_type=activity.output_type,
                start_to_close_timeout=per_attempt,
                heartbeat_timeout=min(activity.heartbeat_timeout, per_attempt),
                retry_policy=to_temporal(policy),
                cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                activity_id=step_id,
                summary=step_id if queue is None else f"{step_id} on {queue}",
                task_queue=queue,
                schedule_to_start_timeout=(
                    parse_duration(queue_timeout) if queue_timeout is not None else None
                ),
            )
            return result

        return await self._progress.track(
            step_id, RunStatus.RUNNING, None, self._guard(step_id, policy, call)
        )

    async def sleep(self, step_id: str, duration: Duration) -> None:
        self.claim(step_id)
        await self._sleep(step_id, parse_duration(duration))

    async def sleep_until(self, step_id: str, when: datetime) -> None:
        self.claim(step_id)
        if when.tzinfo is None:
            raise ValueError(f"sleep_until({step_id!r}) needs a timezone-aware datetime")
        remaining = when - workflow.now()
        if remaining > timedelta(0):
            await self._sleep(step_id, remaining)

    async def _sleep(self, step_id: str, duration: timedelta) -> None:
        wake = workflow.now() + duration
        try:
            await self._progress.track(
                step_id,
                RunStatus.SLEEPING,
                f"sleeping in {step_id!r} until {wake.isoformat(timespec='seconds')}",
                workflow.sleep(duration, summary=step_id),
            )
        except asyncio.CancelledError as err:
            raise WorkflowCancelled(f"the run was cancelled during sleep {step_id!r}") from err

    async def _bookkeeping(
        self, act: Activity[Any, Any], arg: BaseModel, result: type[T], step_id: str, what: str
    ) -> T:
        """A short store call of a wait, as a local activity named after its step."""
        out: T = await workflow.execute_local_activity(
            act.name,
            arg,
            result_type=result,
            start_to_close_timeout=act.default_timeout,
            retry_policy=to_temporal(STORE_RETRY),
            activity_id=f"{step_id}/{what}",
            summary=f"{step_id}: {what}",
        )
        return out

    def _match_document(
        self, event: type[Event[Any]], match: str | None, where: dict[str, Any] | None
    ) -> dict[str, Any]:
        docs = [nest(path, value) for path, value in (where or {}).items()]
        if match is not None:
            trigger = self.trigger
            if not isinstance(trigger, Event) or not path_exists(type(trigger), match):
                raise InvalidDefinition(
                    f"match={match!r} needs a run started by an event that has that field; "
                    f"use where={{{match!r}: value}} instead"
                )
            if not path_exists(event, match):
                raise InvalidDefinition(f"match path {match!r} does not exist on {event.type!r}")
            docs.append(nest(match, value_at(trigger.model_dump(mode="json"), match)))
        return merge(docs)

    async def wait_for_event(
        self,
        step_id: str,
        event: type[E],
        *,
        match: str | None = None,
        where: dict[str, Any] | None = None,
        timeout: Duration = "24h",
    ) -> E | None:
        self.claim(step_id)
        name = event_type_name(event)
        limit = parse_duration(timeout)
        doc = self._match_document(event, match, where)

        async def wait() -> E | None:
            found = await self._wait_for(step_id, name, doc, limit, event)
            return None if found is None else event.model_validate(found)

        return await self._progress.track(
            step_id,
            RunStatus.WAITING,
            f"waiting in {step_id!r} for {name} matching {doc or 'anything'}",
            self._guard(step_id, DEFAULT_RETRY, wait),
            kind="waiting-for-event",
            waiting_for=name,
        )

    async def _wait_for(
        self,
        step_id: str,
        name: str,
        doc: dict[str, Any],
        limit: timedelta | None,
        event: type[Event[Any]] | None = None,
    ) -> dict[str, Any] | None:
        """Register a wait (claiming a matching stored event at once) and await its signal;
        with a limit, time it out in the store, where an event may have won the race. A wait
        for an `event` type is open to the run's Update and signal meanwhile."""
        if event is None:
            return await self._wait_in_store(step_id, name, doc, limit)
        self.waits.open[step_id] = OpenWait(step_id, step_id, event, doc)
        self._progress.refresh()
        try:
            found = await self._wait_in_store(step_id, name, doc, limit)
        finally:
            self.waits.open.pop(step_id, None)
            self._progress.refresh()
        if found is not None:
            self.waits.taken[step_id] = str(found.get("id", ""))
        return found

    async def _wait_in_store(
        self, step_id: str, name: str, doc: dict[str, Any], limit: timedelta | None
    ) -> dict[str, Any] | None:
        info = workflow.info()
        ids = {"workflow_id": info.workflow_id, "run_id": info.run_id, "step_id": step_id}
        claimed = await self._bookkeeping(
            register_wait,
            RegisterWait(
                **ids,
                event_type=name,
                match=doc,
                not_before=self.started_at,
                expires_at=workflow.now() + limit if limit else None,
            ),
            MaybeEvent,
            step_id,
            "register",
        )
        if claimed.event is not None:
            return claimed.event
        if step_id in self.waits.open:
            self.waits.open[step_id].registered = True
        try:
            await workflow.wait_condition(
                lambda: step_id in self._inbox,
                timeout=limit,
                timeout_summary=f"{step_id}: timeout" if limit else None,
            )
            return self._inbox[step_id]
        except builtins.TimeoutError:  # (temporalio.exceptions.TimeoutError is another)
            # An event may have resolved the wait just now: then it is ours.
            closed = await self._bookkeeping(
                close_wait, CloseWait(**ids), MaybeEvent, step_id, "time out"
            )
            return closed.event

    async def hold_slot(self, workflow_type: str, key: str, limit: int) -> None:
        """Take a concurrency slot for `key`, waiting (visibly) for one if all are held."""
        step_id = self.claim(SLOT_STEP)
        slot = Slot(
            workflow_type=workflow_type,
            key=key,
            limit=limit,
            workflow_id=workflow.info().workflow_id,
        )
        acquired = await self._bookkeeping(acquire_slot, slot, Held, step_id, "acquire")
        if acquired.held:
            return
        doc = {"data": {"workflow_id": slot.workflow_id}}
        await self._progress.track(
            step_id,
            RunStatus.WAITING,
            f"waiting for a concurrency slot: at most {limit} runs of {workflow_type} "
            f"with key {key!r} at once",
            self._guard(
                step_id, DEFAULT_RETRY, lambda: self._wait_for(step_id, SLOT_GRANTED, doc, None)
            ),
            kind="waiting-for-slot",
            waiting_for=f"{workflow_type}:{key}",
        )

    async def release_slot(self, workflow_type: str, key: str, limit: int) -> None:
        slot = Slot(
            workflow_type=workflow_type,
            key=key,
            limit=limit,
            workflow_id=workflow.info().workflow_id,
        )
        await self._bookkeeping(release_slot, slot, Held, SLOT_STEP, "release")

    async def wait_for_any(
        self,
        step_id: str,
        options: list[On],
        *,
        timeout: Duration = "24h",
    ) -> Event[Any] | None:
        self.claim(step_id)
        limit = parse_duration(timeout)
        info = workflow.info()
        subs = [f"{step_id}[{i}]" for i in range(len(options))]
        docs = [self._match_document(o.event, o.match, o.where) for o in options]
        names = [event_type_name(o.event) for o in options]

        async def wait() -> Event[Any] | None:
            keep: str | None = None
            for sub_id, name, doc in zip(subs, names, docs, strict=True):
                claimed = await self._bookkeeping(
                    register_wait,
                    RegisterWait(
                        workflow_id=info.workflow_id,
                        run_id=info.run_id,
                        step_id=sub_id,
                        event_type=name,
                        match=doc,
                        not_before=self.started_at,
                        expires_at=workflow.now() + limit,
                    ),
                    MaybeEvent,
                    step_id,
                    f"register {sub_id}",
                )
                if claimed.event is not None:
                    keep = sub_id
                    break
            if keep is None:
                for sub_id, option, doc in zip(subs, options, docs, strict=True):
                    self.waits.open[sub_id] = OpenWait(sub_id, step_id, option.event, doc, True)
                self._progress.refresh()
                with contextlib.suppress(builtins.TimeoutError):
                    await workflow.wait_condition(
                        lambda: any(s in self._inbox for s in subs),
                        timeout=limit,
                        timeout_summary=f"{step_id}: timeout",
                    )
                keep = next((s for s in self._inbox if s in subs), None)
            try:
                settled = await self._bookkeeping(
                    settle_any,
                    SettleAny(
                        workflow_id=info.workflow_id, run_id=info.run_id, step_ids=subs, keep=keep
                    ),
                    Settled,
                    step_id,
                    "withdraw the others",
                )
            finally:
                for sub_id in subs:
                    self.waits.open.pop(sub_id, None)
                self._progress.refresh()
            if settled.step_id is None or settled.event is None:
                return None
            self.waits.taken[settled.step_id] = str(settled.event.get("id", ""))
            return options[subs.index(settled.step_id)].event.model_validate(settled.event)

        return await self._progress.track(
            step_id,
            RunStatus.WAITING,
            f"waiting in {step_id!r} for the first of {', '.join(names)}",
            self._guard(step_id, DEFAULT_RETRY, wait),
            kind="waiting-for-event",
            waiting_for=",".join(names),
        )

    async def send_event(self, step_id: str, event: Event[Any]) -> str:
        info = workflow.info()
        update: dict[str, Any] = {"id": derived_event_id(info.workflow_id, info.run_id, step_id)}
        if event.tenancy is None and self.tenancy != NO_TENANCY:
            update["tenancy"] = self.tenancy  # an event from a run belongs to its org
        sent = event.model_copy(update=update)
        result = await self.run(
            step_id, send_event, SendEvent(type=event.type, event=sent.model_dump(mode="json"))
        )
        return result.id

    async def invoke(
        self,
        step_id: str,
        workflow_def: DurableWorkflow[In, Out],
        input: In,
        *,
        timeout: Duration | None = None,
    ) -> Out:
        self.claim(step_id)
        arg = coerce_input(workflow_def.input_type, input, f"step {step_id!r}")
        info = workflow.info()
        child_id = f"{info.workflow_id}:{info.run_id}:{step_id}"

        memo, search_attributes = self._child_options()

        async def call() -> Out:
            result: Out = await workflow.execute_child_workflow(
                workflow_def.id,
                arg,
                id=child_id,
                result_type=workflow_def.output_type,
                task_queue=info.task_queue,
                execution_timeout=parse_duration(timeout) if timeout is not None else None,
                static_summary=step_id,
                static_details=start_details(self.tenancy, f"invoke from {info.workflow_id}"),
                memo=memo,
                search_attributes=search_attributes,
            )
            return result

        return await self._progress.track(
            step_id,
            RunStatus.WAITING,
            f"waiting for child run {child_id} ({workflow_def.id})",
            self._guard(step_id, DEFAULT_RETRY, call),
            kind="waiting-for-child",
            waiting_for=workflow_def.id,
        )


class Inbox(dict[str, dict[str, Any]]):
    """Events delivered by signal, by waiting step id; each event id is taken once."""

    def __init__(self) -> None:
        super().__init__()

    def deliver(self, step_id: str, event: dict[str, Any]) -> None:
        if step_id in self:
            return  # a redelivery: each wait takes one event
        self[step_id] = event


class TemporalContext(WorkflowContext):
    step: TemporalSteps

    def __init__(
        self, search_attributes: bool, inbox: Inbox, definition: DurableWorkflow[Any, Any]
    ) -> None:
        self.progress = _Progress(search_attributes)
        self.background: list[asyncio.Task[None]] = []  # the run's own timers, not steps
        waits = Waits()
        self.step = TemporalSteps(self.progress, inbox, waits)
        self.definition = definition
        started = workflow.memo_value(STARTED_MEMO, None, type_hint=str)
        if started:
            self.step.started_at = datetime.fromisoformat(started)
        self.resolver = Resolver(
            waits, inbox, lambda: self.step.tenancy, self._take, self.progress.refresh
        )
        self.progress.hints = self.resolver.hints
        self.progress.ignored = lambda: waits.ignored

    async def _take(self, wait: OpenWait, request: TakeEvent) -> Taken:
        return await self.step._bookkeeping(
            take_event, request, Taken, wait.shown, f"take {request.type}"
        )

    def begin(self, arg: BaseModel) -> None:
        """Take the run's tenancy (the memo our starts set, else the DurableOrgId,
        DurableWorkspaceId and DurableProjectId search attributes a Temporal user sets), and
        make DurableStatus and DurableTrigger say what they should for a run started without
        them. Raises InputValidationError for a tenancy that cannot be."""
        self.step.tenancy = start_tenancy(arg)
        self.progress.begin()

    @property
    def tenancy(self) -> Tenancy:
        return self.step.tenancy

    def continue_as_new(self, input: BaseModel | dict[str, Any]) -> NoReturn:
        arg = coerce_input(
            self.definition.input_type, input, f"continue_as_new of {self.definition.id!r}"
        )
        self.progress.finish(RunStatus.CONTINUED)
        workflow.continue_as_new(
            arg,
            search_attributes=self.progress.next_run_attributes(),
            memo={
                SEARCH_ATTRIBUTES_MEMO: self.progress.search_attributes,
                STARTED_MEMO: self.step.started_at.isoformat(),
                TENANCY_MEMO: self.step.tenancy.model_dump(),
            },
        )

    @property
    def continued(self) -> bool:
        return workflow.info().continued_run_id is not None

    @property
    def continue_as_new_suggested(self) -> bool:
        return workflow.info().is_continue_as_new_suggested()

    @property
    def workflow_id(self) -> str:
        return workflow.info().workflow_id

    @property
    def run_id(self) -> str:
        return workflow.info().run_id

    @property
    def logger(self) -> logging.LoggerAdapter[Any]:
        return workflow.logger

    def now(self) -> datetime:
        return workflow.now()

    def uuid(self) -> str:
        return str(workflow.uuid4())

    def patched(self, change_id: str) -> bool:
        return workflow.patched(change_id)

    def deprecate_patch(self, change_id: str) -> None:
        workflow.deprecate_patch(change_id)

"""What a workflow body sees: `ctx` and `ctx.step`. Implemented by each provider adapter."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from pydantic import BaseModel

from ._duration import Duration
from ._errors import DuplicateStepId
from ._retry import RetryPolicy
from ._tenancy import Tenancy

if TYPE_CHECKING:
    from ._activity import Activity
    from ._events import Event, On
    from ._workflow import DurableWorkflow

E = TypeVar("E", bound="Event[Any]")
In = TypeVar("In", bound=BaseModel)
Out = TypeVar("Out", bound=BaseModel)


class Steps(ABC):
    """The step API. Every step has an id unique within the run; it names the step in the UI,
    memoises its result, and derives its idempotency key."""

    def __init__(self) -> None:
        self._used: set[str] = set()
        self._indexes: dict[str, int] = {}

    def claim(self, step_id: str) -> str:
        """Reserve a step id for this run; raises DuplicateStepId if it was used before."""
        if not step_id or not isinstance(step_id, str):
            raise ValueError("a step id must be a non-empty string")
        if step_id in self._used:
            raise DuplicateStepId(step_id)
        self._used.add(step_id)
        return step_id

    def claimed(self, step_id: str) -> bool:
        """Whether this run has used `step_id`."""
        return step_id in self._used

    def indexed(self, step_id: str) -> str:
        """Return a fresh id `step_id#N` for a step that repeats in a loop (N counts from 1)."""
        n = self._indexes.get(step_id, 0) + 1
        self._indexes[step_id] = n
        return f"{step_id}#{n}"

    @abstractmethod
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
        """Run an activity as a step, once. A completed step is never run again.

        Args:
            step_id: Unique id of the step in this run.
            activity: The activity to run.
            input: Its input model.
            retry: Retry policy; defaults to the activity's, then to `DEFAULT_RETRY`.
            timeout: Per-attempt timeout; defaults to the activity's.
            fast: Run as a short (local) step; defaults to the activity's `fast`.
            queue: Run it on another worker's queue (an execution pool's), not the run's own.
            queue_timeout: With `queue`: fail the step (a `Timeout`, "schedule-to-start") when
                no worker has picked it up by then, instead of waiting on a queue nobody polls.

        Raises:
            StepFailed: every allowed attempt failed, or a non-retryable error was raised.
            WorkflowCancelled: the run was cancelled while the step ran.
        """

    @abstractmethod
    async def sleep(self, step_id: str, duration: Duration) -> None:
        """Sleep durably: the run survives restarts while it sleeps."""

    @abstractmethod
    async def sleep_until(self, step_id: str, when: datetime) -> None:
        """Sleep durably until `when` (timezone-aware); returns at once if it has passed."""

    @abstractmethod
    async def wait_for_event(
        self,
        step_id: str,
        event: type[E],
        *,
        match: str | None = None,
        where: dict[str, Any] | None = None,
        timeout: Duration = "24h",
    ) -> E | None:
        """Wait for an event of type `event` and return it, or None after `timeout`.

        An event received since the run started and not consumed by an earlier wait of this run
        counts, so an event that arrives before the wait is not lost.

        Args:
            match: A path such as `data.workflow_id`: the awaited event's value there must equal the
                run's trigger event's value at the same path.
            where: Explicit values, e.g. `{"data.workflow_id": ctx.workflow_id}`.
        """

    @abstractmethod
    async def wait_for_any(
        self, step_id: str, options: list[On], *, timeout: Duration = "24h"
    ) -> Event[Any] | None:
        """Wait for the first of several events (e.g. approved, rejected, cancelled); returns it,
        or None after `timeout`. The other waits are withdrawn and give back any event they had
        claimed, so a later wait can still take it."""

    @abstractmethod
    async def send_event(self, step_id: str, event: Event[Any]) -> str:
        """Send an event from the run, once: its id is derived from the run and step, so a
        retried step does not send it twice. Returns the event id."""

    @abstractmethod
    async def invoke(
        self,
        step_id: str,
        workflow: DurableWorkflow[In, Out],
        input: In,
        *,
        timeout: Duration | None = None,
    ) -> Out:
        """Run another durable workflow as a child of this run and return its output.

        Raises:
            StepFailed: the child run failed.
            WorkflowCancelled: this run was cancelled.
        """


class WorkflowContext(ABC):
    """The run's view of the world. Time, ids and randomness come from here, never from the
    standard library, so that a replayed run takes the same path."""

    step: Steps

    @property
    @abstractmethod
    def workflow_id(self) -> str:
        """The run's stable id (the business key, e.g. derived from an event id)."""

    @property
    @abstractmethod
    def run_id(self) -> str:
        """The provider's id of this execution."""

    @property
    @abstractmethod
    def tenancy(self) -> Tenancy:
        """The org, workspace and project the run belongs to (empty fields when none)."""

    @property
    @abstractmethod
    def logger(self) -> logging.LoggerAdapter[Any] | logging.Logger:
        """A logger that stays quiet during replay."""

    @abstractmethod
    def now(self) -> datetime:
        """The current time as the run sees it (UTC, timezone-aware)."""

    @abstractmethod
    def uuid(self) -> str:
        """A random UUID that is the same on replay."""

    @abstractmethod
    def patched(self, change_id: str) -> bool:
        """Branch safely on a code change: True for runs that reach this point after the change
        shipped, False for runs already past it in their history."""

    @abstractmethod
    def deprecate_patch(self, change_id: str) -> None:
        """Mark a change as present in every run still open, once old branches are removed."""

    @abstractmethod
    def continue_as_new(self, input: BaseModel | dict[str, Any]) -> NoReturn:
        """End this execution and go on as a fresh one of the same workflow, under the same
        workflow id, with `input` and an empty history (what a long loop does before its history
        grows too large). Step ids start afresh. Waits keep their guarantees across it: an event
        consumed before is not consumed again, one that arrived earlier and was not consumed can
        still be claimed, and a late delivery meant for the old execution is ignored. Never
        returns."""

    @property
    @abstractmethod
    def continued(self) -> bool:
        """Whether this execution is one a `continue_as_new` began (not the run's first). An
        input that carries state across executions should be trusted only then: the first
        execution's input comes from whoever started the run."""

    @property
    @abstractmethod
    def continue_as_new_suggested(self) -> bool:
        """Whether the provider suggests continuing as new now (Temporal: the history nears
        its suggested size)."""

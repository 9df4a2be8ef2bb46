"""`DurableClient`: what call sites (CLI, API, webhooks) use to start and inspect runs."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, Protocol, TypeVar, overload

from pydantic import BaseModel

from ._events import Event, EventReceipt
from ._tenancy import Tenancy
from ._workflow import DurableWorkflow

In = TypeVar("In", bound=BaseModel)
Out = TypeVar("Out", bound=BaseModel)
Out_co = TypeVar("Out_co", bound=BaseModel, covariant=True)


class RunStatus(StrEnum):
    RUNNING = "running"  # a step is running or about to
    SLEEPING = "sleeping"
    WAITING = "waiting"  # on a child run, an event or a human
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TERMINATED = "terminated"
    TIMED_OUT = "timed-out"
    CONTINUED = "continued"

    @property
    def is_open(self) -> bool:
        return self in (RunStatus.RUNNING, RunStatus.SLEEPING, RunStatus.WAITING)


class RunDescription(BaseModel):
    """What a run is doing now. `workflow_id` and `run_id` are Temporal's: the id the run was
    started under, and the execution (a continue-as-new starts a new run id)."""

    workflow_id: str
    run_id: str
    workflow: str
    status: RunStatus
    current_steps: list[str] = []
    waiting_on: str | None = None
    completed_steps: int | None = None  # known while the run is open
    started_at: datetime | None = None
    closed_at: datetime | None = None
    failure: str | None = None
    # Steps being retried, with their last error: "route (attempt 4): waiting for capacity ..."
    retrying: list[str] = []
    # Who the run belongs to, as it was started (None: no org).
    tenancy: Tenancy | None = None
    # How to resolve each open wait from Temporal's CLI (the `durable.resolve` Update).
    resolve_with: list[str] = []
    # Events handed to the run (by signal) that it could not use, and why; the latest last.
    ignored: list[str] = []

    @property
    def current_step(self) -> str | None:
        return self.current_steps[0] if self.current_steps else None


StuckKind = Literal[
    "workflow-task-failing", "step-retrying", "waiting-for-capacity", "wait-overdue"
]


class StuckRun(BaseModel):
    """An open run that will not move on by itself, why, and what an operator can do."""

    workflow_id: str
    run_id: str = ""
    workflow: str = ""
    org_id: str = ""
    kind: StuckKind
    detail: str  # what is wrong, with the last error where there is one
    remedy: str  # what to do about it
    since: datetime | None = None


class RunHandle(Protocol[Out_co]):
    """A started run, named by its workflow id (the id given at start)."""

    @property
    def workflow_id(self) -> str: ...

    @property
    def run_id(self) -> str | None:
        """The execution this handle was started as; None for `get(workflow_id)` (the
        latest)."""
        ...

    async def result(self) -> Out_co:
        """Wait for the run to finish and return its output.

        Raises:
            WorkflowFailed: the run failed.
            RunCancelled: the run was cancelled.
        """
        ...

    async def cancel(self, reason: str = "") -> None:
        """Ask the run to stop; running steps see the cancellation and can clean up."""
        ...

    async def describe(self) -> RunDescription: ...


class DurableClient(Protocol):
    @overload
    async def start(
        self,
        workflow: DurableWorkflow[In, Out],
        input: In | dict[str, Any],
        id: str | None = None,
        *,
        tenancy: Tenancy | None = None,
    ) -> RunHandle[Out]: ...

    @overload
    async def start(
        self,
        workflow: str,
        input: BaseModel | dict[str, Any],
        id: str | None = None,
        *,
        tenancy: Tenancy | None = None,
    ) -> RunHandle[Any]: ...

    async def start(
        self,
        workflow: DurableWorkflow[Any, Any] | str,
        input: BaseModel | dict[str, Any],
        id: str | None = None,
        *,
        tenancy: Tenancy | None = None,
    ) -> RunHandle[Any]:
        """Start a run. `workflow` is a definition or a registered workflow id; `input` a model
        or a dict validated against the workflow's input model; `tenancy` the org, workspace
        and project it runs for (its steps, audit rows and search attributes carry it).

        Raises:
            UnknownWorkflow: no workflow is registered under that id.
            InputValidationError: the input does not fit the input model; nothing is started.
            RunAlreadyStarted: a run with that id is open.
        """
        ...

    async def send_event(self, event: Event[Any]) -> EventReceipt:
        """The event ingress: store the event once (by id), start the workflows it triggers,
        and resolve the waits it matches.

        Raises:
            EventError: the event is malformed or over 256 KiB; nothing was stored.
        """
        ...

    async def stuck(self, *, org_id: str | None = None, limit: int = 500) -> list[StuckRun]:
        """Open runs that need an operator (of `org_id`, or of every org): a workflow task that
        keeps failing, a step retrying past its threshold, a session waiting for capacity, a
        wait open past its timeout."""
        ...

    def get(self, workflow_id: str) -> RunHandle[Any]:
        """A handle to the latest run of a workflow id (`describe` raises UnknownRun if there
        is none)."""
        ...

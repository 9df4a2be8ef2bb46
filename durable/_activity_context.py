"""What a running activity can ask: who called it, which attempt this is, and whether it was
cancelled. Installed by the provider adapter around every attempt."""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from ._tenancy import NO_TENANCY, Tenancy


@dataclass(frozen=True)
class StepInfo:
    """Identity of the step an activity attempt runs for.

    Attributes:
        workflow_id, run_id: The run that scheduled the step.
        workflow: The workflow's id (type), e.g. `rensei/example.run`.
        step_id: The step id in that run.
        attempt: 1 for the first attempt.
        tenancy: The org, workspace and project of the run (from the run, via the provider's
            headers: a step cannot lose it).
        idempotency_key: Stable across attempts of this step in this run; pass it to any
            external system that can deduplicate, so a retried attempt does not repeat an effect.
    """

    workflow_id: str
    run_id: str
    workflow: str
    step_id: str
    attempt: int
    tenancy: Tenancy = NO_TENANCY

    @property
    def idempotency_key(self) -> str:
        return f"{self.workflow_id}/{self.run_id}/{self.step_id}"


class ActivityContext(ABC):
    info: StepInfo

    @abstractmethod
    def heartbeat(self, *details: Any) -> None:
        """Report progress. The adapter already heartbeats in the background; call this to
        record progress details that a retried attempt can resume from."""

    @abstractmethod
    def heartbeat_details(self) -> tuple[Any, ...]:
        """Details the previous attempt last reported with `heartbeat`, or ()."""

    @property
    @abstractmethod
    def is_cancelled(self) -> bool:
        """True once the run asked this step to stop."""


_current: ContextVar[ActivityContext | None] = ContextVar("durable_activity_context", default=None)


def activity_context() -> ActivityContext:
    """The context of the activity attempt running in this task.

    Raises:
        RuntimeError: called outside an activity.
    """
    ctx = _current.get()
    if ctx is None:
        raise RuntimeError("activity_context() was called outside a running step")
    return ctx


def set_activity_context(ctx: ActivityContext | None) -> object:
    """For provider adapters: install the context of the current attempt; returns a token."""
    return _current.set(ctx)


def reset_activity_context(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]

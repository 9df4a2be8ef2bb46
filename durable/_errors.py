"""Errors a workflow author or operator can act on."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError

# A validation message keeps at most this much: it goes into run failures and history.
MAX_VALIDATION_MESSAGE = 2000


def validation_message(err: ValidationError) -> str:
    """What pydantic found wrong, field by field, without the input values: a run's failure is
    kept in its history in clear, even when its input is encrypted."""
    text = "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}"
        for e in err.errors(include_input=False, include_url=False)
    )
    if len(text) > MAX_VALIDATION_MESSAGE:
        text = text[: MAX_VALIDATION_MESSAGE - 3] + "..."
    return text


class DurableError(Exception):
    """Base class of every error this package raises on purpose."""


class InvalidDuration(DurableError, ValueError):
    """A duration could not be read."""


class InvalidTrigger(DurableError, ValueError):
    """A workflow's trigger is neither a cron expression nor an event type name."""


class InvalidDefinition(DurableError, TypeError):
    """A workflow or activity definition is malformed (missing models, bad id, ...)."""


class UnknownWorkflow(DurableError, LookupError):
    """No workflow is registered under the given id."""

    def __init__(self, workflow_id: str, known: list[str] | None = None) -> None:
        self.workflow_id = workflow_id
        self.known = sorted(known or [])
        hint = f"; registered workflows: {', '.join(self.known)}" if self.known else ""
        super().__init__(f"unknown workflow {workflow_id!r}{hint}")


class UnknownActivity(DurableError, LookupError):
    """A step names an activity that no worker registered."""


class UnknownRun(DurableError, LookupError):
    """No run exists under the given workflow id."""

    def __init__(self, workflow_id: str) -> None:
        self.workflow_id = workflow_id
        super().__init__(f"no run with workflow id {workflow_id!r}")


class DuplicateStepId(DurableError):
    """The same step id was used twice in one run."""

    def __init__(self, step_id: str) -> None:
        self.step_id = step_id
        super().__init__(
            f"step id {step_id!r} was already used in this run; step ids must be unique. "
            f"In a loop, use ctx.step.indexed({step_id!r}) or put the index in the id."
        )


class InputValidationError(DurableError, ValueError):
    """Input to a workflow or step failed pydantic validation."""

    def __init__(self, what: str, detail: str) -> None:
        self.what = what
        self.detail = detail
        super().__init__(f"input for {what} failed validation: {detail}")


class NonRetryableError(DurableError):
    """Raise from an activity for a business error that retrying cannot fix.

    The step fails at once, without further attempts, and the workflow sees `StepFailed`.
    """

    def __init__(self, message: str, *, kind: str | None = None) -> None:
        self.kind = kind or type(self).__name__
        super().__init__(message)


class ServiceUnavailable(DurableError):
    """Raise from an activity when a service it needs cannot be reached (a network failure, a
    server error): the step waits for it inside its attempt, with backoff, heartbeating what
    it waits for, instead of spending its retries on the outage."""

    def __init__(self, message: str, *, service: str = "") -> None:
        self.service = service
        super().__init__(message)


class RetryAfter(DurableError):
    """Raise from an activity when the other side said when to come back (a rate limit's
    reset): the step is retried after `delay`, not after its policy's next interval. It still
    counts as an attempt."""

    def __init__(self, message: str, delay: timedelta) -> None:
        self.delay = max(delay, timedelta(0))
        super().__init__(message)


class StepFailed(DurableError):
    """A step failed every attempt it was allowed (or failed with a non-retryable error)."""

    def __init__(
        self,
        step_id: str,
        attempts: int,
        cause: str,
        *,
        cause_type: str = "",
        non_retryable: bool = False,
    ) -> None:
        self.step_id = step_id
        self.attempts = attempts
        self.cause = cause
        self.cause_type = cause_type
        self.non_retryable = non_retryable  # the step said so (NonRetryableError), not a timeout
        plural = "attempt" if attempts == 1 else "attempts"
        super().__init__(f"step {step_id!r} failed after {attempts} {plural}: {cause}")


class WorkflowCancelled(DurableError):
    """The run was cancelled. Catch it to run clean-up steps, then re-raise."""

    def __init__(self, message: str = "the run was cancelled") -> None:
        super().__init__(message)


class WorkflowFailed(DurableError):
    """A run ended in failure; raised by `RunHandle.result()` at the call site."""

    def __init__(self, workflow_id: str, message: str, *, cause_type: str = "") -> None:
        self.workflow_id = workflow_id
        self.cause_type = cause_type
        self.message = message
        super().__init__(f"run {workflow_id!r} failed: {message}")


class RunCancelled(DurableError):
    """A run ended cancelled; raised by `RunHandle.result()` at the call site."""

    def __init__(self, workflow_id: str) -> None:
        self.workflow_id = workflow_id
        super().__init__(f"run {workflow_id!r} was cancelled")


class RunAlreadyStarted(DurableError):
    """A run with this workflow id is already open."""

    def __init__(self, workflow_id: str) -> None:
        self.workflow_id = workflow_id
        super().__init__(f"a run with workflow id {workflow_id!r} is already running")

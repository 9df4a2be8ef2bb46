"""Activities: the functions a step runs, outside the workflow, where I/O is allowed."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from ._duration import Duration, parse_duration
from ._errors import InvalidDefinition
from ._models import io_models
from ._retry import RetryPolicy

In = TypeVar("In", bound=BaseModel)
Out = TypeVar("Out", bound=BaseModel)

ACTIVITY_NAME = re.compile(r"^[a-z][a-z0-9_.-]*[a-z0-9]$")

# A step of an ordinary activity may take this long per attempt unless it says otherwise.
DEFAULT_STEP_TIMEOUT = timedelta(minutes=10)
# Short steps run as local activities; they must finish well within this.
DEFAULT_FAST_STEP_TIMEOUT = timedelta(seconds=10)
# A running step proves it is alive this often; a silent one is retried after this long.
DEFAULT_HEARTBEAT_TIMEOUT = timedelta(seconds=30)


@dataclass(frozen=True)
class Activity(Generic[In, Out]):
    """A named step implementation with one input and one output model.

    Workflows pass an `Activity` to `ctx.step.run`; workers run its implementation. An activity
    can be declared without an implementation (`declare_activity`) and bound later to a method
    of a class that holds its clients (see `implements`).

    Attributes:
        name: Stable name; the Temporal activity type.
        input_type, output_type: The pydantic models.
        fn: The implementation, if bound at definition.
        fast: Run as a short step (a Temporal local activity): far less overhead, no heartbeat.
            For steps that finish well under a few seconds.
        retry: Default retry policy of steps that run this activity.
        timeout: Default per-attempt timeout.
        heartbeat_timeout: How long a running attempt may be silent before it is retried.
    """

    name: str
    input_type: type[In]
    output_type: type[Out]
    fn: Callable[[In], Awaitable[Out]] | None = field(default=None, compare=False)
    fast: bool = False
    retry: RetryPolicy | None = None
    timeout: timedelta | None = None
    heartbeat_timeout: timedelta = DEFAULT_HEARTBEAT_TIMEOUT

    def __post_init__(self) -> None:
        if not ACTIVITY_NAME.match(self.name):
            raise InvalidDefinition(
                f"activity name {self.name!r} must be lower case letters, digits, '.', '-', '_'"
            )

    @property
    def default_timeout(self) -> timedelta:
        if self.timeout is not None:
            return self.timeout
        return DEFAULT_FAST_STEP_TIMEOUT if self.fast else DEFAULT_STEP_TIMEOUT

    def with_implementation(self, fn: Callable[[In], Awaitable[Out]]) -> Activity[In, Out]:
        return replace(self, fn=fn)


def declare_activity(
    name: str,
    input_type: type[In],
    output_type: type[Out],
    *,
    fast: bool = False,
    retry: RetryPolicy | None = None,
    timeout: Duration | None = None,
    heartbeat_timeout: Duration = DEFAULT_HEARTBEAT_TIMEOUT,
) -> Activity[In, Out]:
    """Declare an activity whose implementation is bound later with `@implements`."""
    return Activity(
        name=name,
        input_type=input_type,
        output_type=output_type,
        fast=fast,
        retry=retry,
        timeout=parse_duration(timeout) if timeout is not None else None,
        heartbeat_timeout=parse_duration(heartbeat_timeout),
    )


def activity(
    name: str,
    *,
    fast: bool = False,
    retry: RetryPolicy | None = None,
    timeout: Duration | None = None,
    heartbeat_timeout: Duration = DEFAULT_HEARTBEAT_TIMEOUT,
) -> Callable[[Callable[[In], Awaitable[Out]]], Activity[In, Out]]:
    """Define an activity from an async function `async def f(input: In) -> Out`."""

    def wrap(fn: Callable[[In], Awaitable[Out]]) -> Activity[In, Out]:
        input_type, output_type = io_models(fn, f"activity {name!r}", skip=0)
        declared: Activity[Any, Any] = declare_activity(
            name,
            input_type,
            output_type,
            fast=fast,
            retry=retry,
            timeout=timeout,
            heartbeat_timeout=heartbeat_timeout,
        )
        return declared.with_implementation(fn)

    return wrap


_IMPLEMENTS = "__durable_implements__"


def implements(
    declaration: Activity[In, Out],
) -> Callable[[Callable[[Any, In], Awaitable[Out]]], Callable[[Any, In], Awaitable[Out]]]:
    """Mark a method as the implementation of a declared activity.

    The class holding it is given to `Registry.bind(instance)`, which binds every marked method.
    """

    def mark(method: Callable[[Any, In], Awaitable[Out]]) -> Callable[[Any, In], Awaitable[Out]]:
        setattr(method, _IMPLEMENTS, declaration)
        return method

    return mark


def implemented_by(method: object) -> Activity[Any, Any] | None:
    found = getattr(method, _IMPLEMENTS, None)
    return found if isinstance(found, Activity) else None

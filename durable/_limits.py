"""Flow control for event-triggered starts: throttle (and dedupe) and concurrency, by key.

Both read a key from the trigger event, e.g. `data.conversation_id`, so one noisy
conversation or project cannot crowd out the others. The key path is checked against the
trigger event's model when the workflow is defined: a path that does not exist is an error
then, not a limit that silently never applies.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from ._duration import Duration, parse_duration
from ._errors import InvalidDefinition
from ._events import Event, path_exists, value_at


@dataclass(frozen=True)
class Throttle:
    """At most `limit` runs are started per key in any window of `period`.

    Attributes:
        key: A path on the trigger event, e.g. `data.conversation_id`.
        limit: Starts allowed per key per period.
        period: The window, e.g. "10s", "1h".
        excess: What happens to a start over the limit. "delay" (the default) starts it when
            the window has room (a Temporal start delay; nothing is dropped). "skip" does not
            start it: the event is still stored, and its delivery is recorded as `throttled`
            (that is dedupe by key: `Throttle(key, 1, "10s", excess="skip")`).
    """

    key: str
    limit: int
    period: Duration
    excess: Literal["delay", "skip"] = "delay"

    @property
    def window(self) -> timedelta:
        return parse_duration(self.period)


@dataclass(frozen=True)
class Concurrency:
    """At most `limit` runs per key at once. A run over the limit starts, and waits (visibly,
    as "waiting for a concurrency slot") until an earlier run with that key finishes; runs
    get their slots in the order they asked.

    Attributes:
        key: A path on the trigger event, e.g. `data.project_id`.
        limit: Runs per key at once.
    """

    key: str
    limit: int


# The event that hands a queued run its concurrency slot; `data.workflow_id` names the run.
SLOT_GRANTED = "durable/slot.granted"

ThrottleSpec = Throttle | tuple[str, int, Duration]
ConcurrencySpec = Concurrency | tuple[str, int]


def _check_key(id: str, what: str, key: str, trigger_event: type[Event[Any]] | None) -> None:
    if trigger_event is None:
        raise InvalidDefinition(
            f"workflow {id!r}: {what} by key {key!r} applies to event-triggered starts; "
            f"give the workflow an event trigger"
        )
    if not path_exists(trigger_event, key):
        raise InvalidDefinition(
            f"workflow {id!r}: {what} key {key!r} does not exist on the trigger event "
            f"{trigger_event.type!r}"
        )


def check_throttle(
    id: str, spec: ThrottleSpec | None, trigger_event: type[Event[Any]] | None
) -> Throttle | None:
    if spec is None:
        return None
    throttle = spec if isinstance(spec, Throttle) else Throttle(*spec)
    _check_key(id, "throttle", throttle.key, trigger_event)
    if not isinstance(throttle.limit, int) or throttle.limit < 1:
        raise InvalidDefinition(f"workflow {id!r}: throttle limit must be at least 1")
    if throttle.excess not in ("delay", "skip"):
        raise InvalidDefinition(
            f"workflow {id!r}: throttle excess must be 'delay' or 'skip', got {throttle.excess!r}"
        )
    throttle.window  # noqa: B018 - raises InvalidDuration for a bad period
    return throttle


def check_concurrency(
    id: str, spec: ConcurrencySpec | None, trigger_event: type[Event[Any]] | None
) -> Concurrency | None:
    if spec is None:
        return None
    limit = spec if isinstance(spec, Concurrency) else Concurrency(*spec)
    _check_key(id, "concurrency", limit.key, trigger_event)
    if not isinstance(limit.limit, int) or limit.limit < 1:
        raise InvalidDefinition(f"workflow {id!r}: concurrency limit must be at least 1")
    return limit


def key_of(event: dict[str, Any], path: str) -> str:
    """The throttle or concurrency key of an event document (`{"id": ..., "data": {...}}`)."""
    value = value_at(event, path)
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)

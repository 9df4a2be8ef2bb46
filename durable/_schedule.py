"""Schedules beyond a workflow's own cron trigger: a workflow started on a cron with a fixed
input (one schedule per PM agent, say), declared in the registry."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ._errors import InvalidDefinition
from ._trigger import CronTrigger, parse_trigger

_SCHEDULE_ID = re.compile(r"^[a-z][a-z0-9-]*(?:[./:][a-z0-9-]+)*$")


@dataclass(frozen=True)
class Schedule:
    """Start `workflow` with `input` on `cron` (UTC).

    Attributes:
        id: Stable name of the schedule, e.g. `pm.backlog-triage`; the provider's schedule is
            named after it (Temporal: `durable:{id}`), and its runs `{id}:scheduled-<time>`.
        workflow: The id of the registered workflow it starts.
        cron: A five-field cron expression or a macro such as `@daily`.
        input: The input of every run it starts (must fit the workflow's input model).
    """

    id: str
    workflow: str
    cron: str
    input: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _SCHEDULE_ID.match(self.id):
            raise InvalidDefinition(
                f"schedule id {self.id!r} must be lower case words joined by '.', '-', '/' or "
                "':', e.g. 'pm.backlog-triage'"
            )
        trigger = parse_trigger(CronTrigger(self.cron))
        assert isinstance(trigger, CronTrigger)

"""Workflow triggers: a cron schedule or an event type."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ._errors import InvalidTrigger

# {source}/{entity}.{action}, e.g. rensei/approval.resolved or rensei/pm.agent-session.completed
EVENT_NAME = re.compile(r"^[a-z][a-z0-9-]*/[a-z][a-z0-9-]*(?:\.[a-z][a-z0-9-]*)+$")
_CRON_FIELD = re.compile(
    r"^(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*$|^[A-Za-z]{3}(-[A-Za-z]{3})?$"
)
_CRON_MACROS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
_CRON_RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]


@dataclass(frozen=True)
class CronTrigger:
    """Start the workflow on a cron schedule (UTC)."""

    cron: str


@dataclass(frozen=True)
class EventTrigger:
    """Start the workflow whenever an event of this type is sent."""

    event: str


Trigger = CronTrigger | EventTrigger


def validate_event_name(name: str) -> str:
    """Return the name if it reads `{source}/{entity}.{action}`, else raise InvalidTrigger."""
    if not EVENT_NAME.match(name):
        raise InvalidTrigger(
            f"event type {name!r} must read '{{source}}/{{entity}}.{{action}}' in lower case, "
            f"e.g. 'rensei/approval.resolved'"
        )
    return name


def _validate_cron(expr: str) -> str:
    text = expr.strip()
    if text in _CRON_MACROS:
        return text
    fields = text.split()
    if len(fields) != 5:
        raise InvalidTrigger(
            f"cron {expr!r} must have 5 fields (minute hour day-of-month month day-of-week) "
            f"or be one of {', '.join(sorted(_CRON_MACROS))}"
        )
    for field, (low, high), label in zip(
        fields,
        _CRON_RANGES,
        ["minute", "hour", "day-of-month", "month", "day-of-week"],
        strict=True,
    ):
        if not _CRON_FIELD.match(field):
            raise InvalidTrigger(f"cron {expr!r}: cannot read {label} field {field!r}")
        for number in re.findall(r"(?<![/\d])\d+", field):
            if not low <= int(number) <= high:
                raise InvalidTrigger(
                    f"cron {expr!r}: {label} value {number} is outside {low}-{high}"
                )
    return text


def parse_trigger(value: str | Trigger | None) -> Trigger | None:
    """Read a trigger: an event type name (one word), a cron expression, or None (manual).

    Raises:
        InvalidTrigger: the value is neither.
    """
    if value is None or isinstance(value, CronTrigger | EventTrigger):
        if isinstance(value, CronTrigger):
            _validate_cron(value.cron)
        if isinstance(value, EventTrigger):
            validate_event_name(value.event)
        return value
    if not isinstance(value, str) or not value.strip():
        raise InvalidTrigger(f"trigger must be a cron string or an event type, got {value!r}")
    text = value.strip()
    if not text.startswith("@") and len(text.split()) == 1:
        return EventTrigger(validate_event_name(text))
    return CronTrigger(_validate_cron(value))

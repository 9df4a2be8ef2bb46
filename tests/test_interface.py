"""The interface's own checks: durations, triggers, definitions and the registry. These run
with no server: they are what a workflow author meets before anything starts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import BaseModel

import durable
from durable import CronTrigger, EventTrigger, parse_duration, parse_trigger


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("30m", timedelta(minutes=30)),
        ("24h", timedelta(hours=24)),
        ("7d", timedelta(days=7)),
        ("1h30m", timedelta(minutes=90)),
        ("250ms", timedelta(milliseconds=250)),
        (" 2W ", timedelta(weeks=2)),
        (timedelta(seconds=5), timedelta(seconds=5)),
    ],
)
def test_durations_read_as_people_write_them(text: str | timedelta, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("bad", ["", "30", "thirty minutes", "3 fortnights", "5y", "-5m", "0s"])
def test_bad_durations_say_what_is_accepted(bad: str) -> None:
    with pytest.raises(durable.InvalidDuration) as err:
        parse_duration(bad)
    assert "duration" in str(err.value)
    assert bad.strip() == "0s" or "e.g. '30s'" in str(err.value)


def test_zero_and_negative_timedeltas_are_refused() -> None:
    with pytest.raises(durable.InvalidDuration, match="positive"):
        parse_duration(timedelta(0))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0 9 * * 1", CronTrigger("0 9 * * 1")),
        ("*/15 * * * *", CronTrigger("*/15 * * * *")),
        ("@daily", CronTrigger("@daily")),
        ("rensei/approval.resolved", EventTrigger("rensei/approval.resolved")),
        ("rensei/pm.agent-session.completed", EventTrigger("rensei/pm.agent-session.completed")),
        (None, None),
    ],
)
def test_triggers_are_cron_or_event_names(value: str | None, expected: object) -> None:
    assert parse_trigger(value) == expected


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("0 9 * *", "must have 5 fields"),
        ("61 * * * *", "minute value 61 is outside 0-59"),
        ("0 25 * * *", "hour value 25"),
        ("Rensei/Approval", "must read '{source}/{entity}.{action}'"),
        ("rensei/approval", "must read '{source}/{entity}.{action}'"),
        ("", "cron string or an event type"),
    ],
)
def test_bad_triggers_are_refused_when_the_workflow_is_defined(bad: str, message: str) -> None:
    with pytest.raises(durable.InvalidTrigger) as err:
        durable.workflow("rensei/bad.run", trigger=bad)(_body)
    assert message in str(err.value)


class A(BaseModel):
    x: int = 0


def test_workflow_ids_and_models_are_checked_at_definition() -> None:
    with pytest.raises(durable.InvalidDefinition, match="must read"):
        durable.workflow("NotAnId")(_body)
    with pytest.raises(durable.InvalidDefinition, match="module top level"):

        @durable.workflow("rensei/local.run")
        async def local(ctx: durable.WorkflowContext, input: A) -> A:
            return input

    with pytest.raises(durable.InvalidDefinition, match="pydantic BaseModel"):

        @durable.activity("bad.output")  # type: ignore[type-var]
        async def untyped(input: A) -> int:
            return 1


async def _body(ctx: durable.WorkflowContext, input: A) -> A:
    return input


def test_registry_finds_workflows_and_names_the_known_ones_when_it_cannot() -> None:
    wf = durable.workflow("rensei/unit.run")(_body)
    registry = durable.Registry([wf])
    assert registry.workflow("rensei/unit.run") is wf
    with pytest.raises(durable.UnknownWorkflow, match=r"registered workflows: rensei/unit\.run"):
        registry.workflow("rensei/other.run")


def test_declared_activities_are_bound_to_an_instance() -> None:
    declared = durable.declare_activity("unit.declared", A, A)

    class Impl:
        @durable.implements(declared)
        async def run(self, input: A) -> A:
            return A(x=input.x + 1)

    registry = durable.Registry(activities=[declared])
    assert registry.unimplemented() == ["unit.declared"]
    registry.bind(Impl())
    assert registry.unimplemented() == []
    assert [a.name for a in registry.activities] == ["unit.declared"]
    with pytest.raises(durable.InvalidDefinition, match="implements no declared activity"):
        registry.bind(object())


def test_retry_policy_accepts_durations() -> None:
    policy = durable.RetryPolicy(max_attempts=3, initial_interval="500ms", max_interval="1m")
    assert policy.initial_interval == timedelta(milliseconds=500)
    assert policy.max_interval == timedelta(minutes=1)


def test_derived_event_ids_stay_within_the_limit_and_stable() -> None:
    short = durable.derived_event_id("run-1", "exec-1", "announce")
    assert short == "run-1/exec-1/announce"
    nested = "rensei/pm.agent-session.run:" + "x" * 300
    long_id = durable.derived_event_id(nested, "exec-1", "completed")
    assert len(long_id) == durable.MAX_EVENT_ID and long_id.startswith(nested[:100])
    assert long_id == durable.derived_event_id(nested, "exec-1", "completed"), "the same every time"
    assert long_id != durable.derived_event_id(nested, "exec-2", "completed")

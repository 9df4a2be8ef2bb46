"""Cron workflows for the schedule tests: two versions of one workflow's trigger."""

from __future__ import annotations

from pydantic import BaseModel

import durable


class Nightly(BaseModel):
    team: str = "all"


@durable.workflow("tests/nightly.run", trigger="0 3 * * *")
async def nightly(ctx: durable.WorkflowContext, input: Nightly) -> Nightly:
    return input


@durable.workflow("tests/nightly.run", trigger="30 4 * * 1-5")
async def nightly_moved(ctx: durable.WorkflowContext, input: Nightly) -> Nightly:
    return input


class Needs(BaseModel):
    team: str


@durable.workflow("tests/needs-input.run", trigger="@daily")
async def needs_input(ctx: durable.WorkflowContext, input: Needs) -> Needs:
    return input


@durable.workflow("tests/report.run")
async def report(ctx: durable.WorkflowContext, input: Needs) -> Needs:
    return input


# A manual workflow started on a cron with a fixed input, as the PM agents' ticks are.
REPORT_SCHEDULE = durable.Schedule(
    "tests.report-eng", "tests/report.run", "0 6 * * *", {"team": "eng"}
)

"""The example workflow: one of every step kind. Start it with `durable start rensei/example.run`.

plan (short step) -> research each part (parallel steps) -> cool-down (durable sleep)
-> summarise (a child workflow) -> settle (sleep until) -> record (writes a note to Postgres).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from pydantic import BaseModel

import durable
from activities.example import (
    ComposeInput,
    Finding,
    NoteInput,
    PlanInput,
    ResearchInput,
    Summary,
    compose,
    plan,
    record_note,
    research,
)


class ExampleInput(BaseModel):
    topic: str = "durable workflows for agents"
    # How long each research step works, and how long the run sleeps; raise them to watch a run
    # in the Temporal UI, or to cancel or kill it mid-step.
    work_seconds: float = 0.0
    cool_down: durable.DurationText = "2s"


class ExampleOutput(BaseModel):
    summary: str
    parts: int
    note_key: str


class SummariseInput(BaseModel):
    topic: str
    findings: list[Finding]


@durable.workflow("rensei/example.summarise", description="Compose a summary of findings")
async def summarise(ctx: durable.WorkflowContext, input: SummariseInput) -> Summary:
    return await ctx.step.run(
        "compose", compose, ComposeInput(topic=input.topic, findings=input.findings)
    )


@durable.workflow("rensei/example.run", description="Example: one of every step kind")
async def example(ctx: durable.WorkflowContext, input: ExampleInput) -> ExampleOutput:
    planned = await ctx.step.run("plan", plan, PlanInput(topic=input.topic))
    findings = await asyncio.gather(
        *(
            ctx.step.run(
                f"research-{i}", research, ResearchInput(part=part, work_seconds=input.work_seconds)
            )
            for i, part in enumerate(planned.parts, start=1)
        )
    )
    await ctx.step.sleep("cool-down", input.cool_down)
    summary = await ctx.step.invoke(
        "summarise", summarise, SummariseInput(topic=input.topic, findings=list(findings))
    )
    await ctx.step.sleep_until("settle", ctx.now() + timedelta(seconds=1))
    note = await ctx.step.run(
        "record", record_note, NoteInput(topic=input.topic, body=summary.text)
    )
    ctx.logger.info("example run recorded note %s", note.idempotency_key)
    return ExampleOutput(summary=summary.text, parts=len(findings), note_key=note.idempotency_key)

"""Two later versions of the example workflow, for the replay tests: one changes the order of
steps (incompatible with runs in flight), one adds a step behind `ctx.patched` (compatible)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import durable
from activities.example import (
    ComposeInput,
    NoteInput,
    PlanInput,
    ResearchInput,
    Summary,
    compose,
    plan,
    record_note,
    research,
)
from workflows.example import ExampleInput, ExampleOutput, SummariseInput, summarise


@durable.workflow("rensei/example.run")
async def reordered(ctx: durable.WorkflowContext, input: ExampleInput) -> ExampleOutput:
    await ctx.step.sleep("cool-down", input.cool_down)  # moved before planning: incompatible
    planned = await ctx.step.run("plan", plan, PlanInput(topic=input.topic))
    findings = [
        await ctx.step.run(f"research-{i}", research, ResearchInput(part=p))
        for i, p in enumerate(planned.parts, start=1)
    ]
    summary = await ctx.step.invoke(
        "summarise", summarise, SummariseInput(topic=input.topic, findings=findings)
    )
    note = await ctx.step.run(
        "record", record_note, NoteInput(topic=input.topic, body=summary.text)
    )
    return ExampleOutput(summary=summary.text, parts=len(findings), note_key=note.idempotency_key)


@durable.workflow("rensei/example.run")
async def patched(ctx: durable.WorkflowContext, input: ExampleInput) -> ExampleOutput:
    planned = await ctx.step.run("plan", plan, PlanInput(topic=input.topic))
    if ctx.patched("example-proofread"):
        # New in this version; runs recorded before it skip it on replay.
        await ctx.step.run("proofread", compose, ComposeInput(topic=input.topic, findings=[]))
    findings = await asyncio.gather(
        *(
            ctx.step.run(
                f"research-{i}", research, ResearchInput(part=p, work_seconds=input.work_seconds)
            )
            for i, p in enumerate(planned.parts, start=1)
        )
    )
    await ctx.step.sleep("cool-down", input.cool_down)
    summary: Summary = await ctx.step.invoke(
        "summarise", summarise, SummariseInput(topic=input.topic, findings=list(findings))
    )
    await ctx.step.sleep_until("settle", ctx.now() + timedelta(seconds=1))
    note = await ctx.step.run(
        "record", record_note, NoteInput(topic=input.topic, body=summary.text)
    )
    return ExampleOutput(summary=summary.text, parts=len(findings), note_key=note.idempotency_key)

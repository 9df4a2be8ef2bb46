"""Steps of the example workflow (`workflows/example.py`)."""

from __future__ import annotations

import asyncio

import asyncpg
from pydantic import BaseModel

import durable
from store import as_org


class PlanInput(BaseModel):
    topic: str
    max_parts: int = 3


class Plan(BaseModel):
    parts: list[str]


class ResearchInput(BaseModel):
    part: str
    # Seconds the step works for; long enough to see it running in the UI, or to cancel it.
    work_seconds: float = 0.0


class Finding(BaseModel):
    part: str
    finding: str


class ComposeInput(BaseModel):
    topic: str
    findings: list[Finding]


class Summary(BaseModel):
    text: str


class NoteInput(BaseModel):
    topic: str
    body: str


class Note(BaseModel):
    idempotency_key: str
    created: bool  # False when a retried attempt found the note an earlier attempt wrote


@durable.activity("example.plan", fast=True)
async def plan(input: PlanInput) -> Plan:
    """Split the topic into the parts to research (a short step: a local activity)."""
    words = [w for w in input.topic.replace(",", " ").split() if w]
    return Plan(parts=words[: input.max_parts] or [input.topic])


@durable.activity("example.research")
async def research(input: ResearchInput) -> Finding:
    """Stand-in for a model or tool call; cancellable while it works."""
    await asyncio.sleep(input.work_seconds)
    return Finding(part=input.part, finding=f"{input.part}: {len(input.part)} letters")


@durable.activity("example.compose", fast=True)
async def compose(input: ComposeInput) -> Summary:
    lines = "; ".join(f.finding for f in input.findings)
    return Summary(text=f"{input.topic} -> {lines}")


record_note = durable.declare_activity("example.record-note", NoteInput, Note)


class NoteActivities:
    """Steps that write to Postgres; the pool is injected by the worker."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @durable.implements(record_note)
    async def record_note(self, input: NoteInput) -> Note:
        info = durable.activity_context().info
        org_id = info.tenancy.org_id
        async with as_org(self._pool, org_id) as conn:  # the run's org, under its policy
            inserted = await conn.fetchval(
                """INSERT INTO notes (idempotency_key, workflow_id, topic, body, attempt, org_id)
                   VALUES ($1, $2, $3, $4, $5, $6)
                   ON CONFLICT (idempotency_key) DO NOTHING
                   RETURNING true""",
                info.idempotency_key,
                info.workflow_id,
                input.topic,
                input.body,
                info.attempt,
                org_id,
            )
        return Note(idempotency_key=info.idempotency_key, created=bool(inserted))

"""Throttle, dedupe and concurrency by key for event-triggered starts, on a real dev server and a
real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

import durable
from adapters.temporal import TemporalDurableClient
from durable._limits import SLOT_GRANTED

from .conftest import Events
from .test_events import until_closed
from .workflows import Job, JobFinished, JobQueued, Message, MessageReceived


def conversation(cid: str) -> MessageReceived:
    return MessageReceived(data=Message(conversation_id=cid))


async def backoff(client: TemporalDurableClient, run_id: str) -> timedelta:
    """How long the server holds a run before its first workflow task (its start delay)."""
    history = await client.get(run_id).temporal.fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    return started.first_workflow_task_backoff.ToTimedelta()


async def test_throttle_delays_or_skips_starts_over_the_limit_per_key(events: Events) -> None:
    a, b = f"conv-{uuid.uuid4()}", f"conv-{uuid.uuid4()}"
    async with events.running() as client:
        sent = [conversation(a) for _ in range(3)] + [conversation(b)]
        receipts = [await client.send_event(e) for e in sent]
        dedupe = [f"tests/dedupe.run:{e.id}" for e in sent]
        delayed = [f"tests/throttled.run:{e.id}" for e in sent]

        # Dedupe (limit 1 per hour, excess skipped): one run per conversation.
        assert [r.throttled for r in receipts] == [[], [dedupe[1]], [dedupe[2]], []]
        for i in (0, 3):
            assert (await client.get(dedupe[i]).result()).event_id == sent[i].id
        deliveries = await events.ingress.store.deliveries_of(sent[1].id, org_id="")
        states = {(d.workflow_type, state) for d, state in deliveries}
        assert ("tests/dedupe.run", "throttled") in states, "a skipped start is on record"
        with pytest.raises(durable.UnknownRun):
            await client.get(dedupe[1]).describe()

        # Throttle (limit 2 per hour, excess delayed): the third start for `a` waits an hour;
        # other conversations are not held up by it.
        for r, run_id in zip(receipts, delayed, strict=True):
            assert run_id in r.started
        for i in (0, 1, 3):
            assert await backoff(client, delayed[i]) == timedelta(0)
            assert (await client.get(delayed[i]).result()).event_id == sent[i].id
        held = await backoff(client, delayed[2])
        assert timedelta(minutes=59) < held <= timedelta(hours=1), held
        assert (await client.get(delayed[2]).describe()).status.is_open
        await client.get(delayed[2]).temporal.terminate("test over")


async def test_a_duplicate_event_takes_no_throttle_slot(events: Events) -> None:
    cid = f"conv-{uuid.uuid4()}"
    async with events.running() as client:
        first = conversation(cid)
        await client.send_event(first)
        again = await client.send_event(first)
        assert again.duplicate and again.throttled == []
        # The limit is two per hour: had the duplicate taken a slot, this would be delayed.
        second = await client.send_event(conversation(cid))
        run_id = f"tests/throttled.run:{second.id}"
        assert await backoff(client, run_id) == timedelta(0)
        await client.get(run_id).result()


def job(project: str, job_id: str) -> JobQueued:
    return JobQueued(data=Job(project_id=project, job_id=job_id))


def finished(project: str, job_id: str) -> JobFinished:
    return JobFinished(data=Job(project_id=project, job_id=job_id))


async def until(check: Any, what: str) -> None:
    for _ in range(150):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"never: {what}")


async def test_concurrency_limit_per_key_queues_runs_and_hands_slots_on(events: Events) -> None:
    p, q = f"proj-{uuid.uuid4()}", f"proj-{uuid.uuid4()}"
    store = events.ingress.store
    async with events.running() as client:
        runs = {}
        for name, project in [("p1", p), ("p2", p), ("p3", p), ("p4", p), ("q1", q)]:
            receipt = await client.send_event(job(project, name))
            (runs[name],) = receipt.started

        async def slots(project: str) -> dict[str, list[str]]:
            return await store.slots("tests/limited.run", project, org_id="")

        async def two_hold_two_queue() -> bool:
            s = await slots(p)
            return len(s["holding"]) == 2 and len(s["queued"]) == 2

        await until(two_hold_two_queue, "two runs of p hold slots and two queue")
        assert set((await slots(p))["holding"]) == {runs["p1"], runs["p2"]}, "first come"
        assert (await slots(q))["holding"] == [runs["q1"]], "another key is not held up"
        queued = (await slots(p))["queued"]
        for run_id in queued:
            await until(
                lambda r=run_id: _waits_for(store, r, SLOT_GRANTED), f"{run_id} waits for a slot"
            )
            desc = await client.get(run_id).describe()
            assert desc.status is durable.RunStatus.WAITING
            assert desc.waiting_on is not None and "concurrency slot" in desc.waiting_on

        # A run that finishes hands its slot to the oldest queued run.
        await client.send_event(finished(p, "p1"))
        assert (await client.get(runs["p1"]).result()).event_id
        await until(lambda: _holds(store, p, queued[0]), "the first queued run gets the slot")
        assert (await slots(p))["queued"] == [queued[1]]

        # A cancelled run gives its slot back too.
        await client.get(runs["p2"]).cancel()
        await until(lambda: _holds(store, p, queued[1]), "the second queued run gets the slot")

        for name in ("p3", "p4", "q1"):
            await client.send_event(finished(p if name != "q1" else q, name))
        for name in ("p3", "p4", "q1"):
            assert (await client.get(runs[name]).result()).event_id
        assert await slots(p) == {"holding": [], "queued": []}
        assert await slots(q) == {"holding": [], "queued": []}


async def test_a_terminated_runs_slot_is_reclaimed_by_the_dispatcher(events: Events) -> None:
    p = f"proj-{uuid.uuid4()}"
    store = events.ingress.store
    async with events.running() as client:
        runs = [(await client.send_event(job(p, f"j{i}"))).started[0] for i in range(3)]

        async def queued_one() -> bool:
            s = await store.slots("tests/limited.run", p, org_id="")
            return len(s["holding"]) == 2 and len(s["queued"]) == 1

        await until(queued_one, "two hold, one queues")
        holder = (await store.slots("tests/limited.run", p, org_id=""))["holding"][0]
        waiting = (await store.slots("tests/limited.run", p, org_id=""))["queued"][0]
        # Terminated: the run's code never runs again, so it cannot release its slot.
        await client.get(holder).temporal.terminate("operator")
        await until_closed(client, holder)
        assert holder in (await store.slots("tests/limited.run", p, org_id=""))["holding"]
        assert await events.ingress.reclaim_slots(older_than_seconds=0) >= 1
        await until(lambda: _holds(store, p, waiting), "the queued run gets the freed slot")
        for i, run_id in enumerate(runs):
            if run_id != holder:
                await client.send_event(finished(p, f"j{i}"))
                await client.get(run_id).result()
        assert await store.slots("tests/limited.run", p, org_id="") == {"holding": [], "queued": []}


async def _holds(store: Any, project: str, run_id: str) -> bool:
    return run_id in (await store.slots("tests/limited.run", project, org_id=""))["holding"]


async def _waits_for(store: Any, run_id: str, event_type: str) -> bool:
    return any(w["event_type"] == event_type for w in await store.open_waits(run_id, org_id=""))


class Other(BaseModel):
    thread: str


class OtherEvent(durable.Event[Other]):
    type: ClassVar[str] = "tests/other.happened"


def test_a_key_that_is_not_on_the_trigger_event_is_refused_at_definition() -> None:
    async def body(ctx: durable.WorkflowContext, input: OtherEvent) -> OtherEvent:
        return input

    with pytest.raises(durable.InvalidDefinition, match=r"throttle key 'data\.conversation_id'"):
        durable.workflow(
            "tests/bad.throttle", trigger=OtherEvent, throttle=("data.conversation_id", 1, "1m")
        )
    with pytest.raises(durable.InvalidDefinition, match=r"concurrency key 'data\.project'"):
        durable.workflow("tests/bad.limit", trigger=OtherEvent, concurrency=("data.project", 1))
    with pytest.raises(durable.InvalidDefinition, match="give the workflow an event trigger"):
        durable.workflow("tests/bad.limit", concurrency=("data.thread", 1))
    with pytest.raises(durable.InvalidDefinition, match="at least 1"):
        durable.workflow("tests/bad.limit", trigger=OtherEvent, concurrency=("data.thread", 0))
    with pytest.raises(durable.InvalidDuration):
        durable.workflow("tests/bad.limit", trigger=OtherEvent, throttle=("data.thread", 1, "x"))
    ok = durable.workflow("tests/ok.limit", trigger=OtherEvent, throttle=("data.thread", 1, "1m"))
    assert ok is not None

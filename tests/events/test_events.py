"""Events and waits on a real dev server and a real PostgreSQL: nothing lost, nothing twice."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import asyncpg
import pytest
from temporalio.testing import WorkflowEnvironment

import durable
from adapters.temporal import TemporalDurableClient

from .conftest import Events
from .workflows import ApprovalRequested, ApprovalResolved, Outcome, Requested, Resolved


def rid() -> str:
    return f"req-{uuid.uuid4()}"


def resolved(
    request_id: str,
    decision: str = "approve",
    event_id: str | None = None,
    tenancy: durable.Tenancy | None = None,
) -> ApprovalResolved:
    """The answer to a request; of `tenancy`'s org (none: of no org), as only an event of a
    run's own org resolves its wait."""
    event = ApprovalResolved(
        data=Resolved(request_id=request_id, decision=decision), tenancy=tenancy
    )
    return event.model_copy(update={"id": event_id}) if event_id else event


async def until_waiting(client: TemporalDurableClient, run_id: str, waits: int = 1) -> None:
    """Until the run's waits are registered in the store: only then does an event resolve
    them by signal (before, the wait claims it from the store when it registers). The waits
    are read as the run's own org, as `durable waits` reads them."""
    assert client.events is not None
    tenancy = (await client.get(run_id).describe()).tenancy
    org_id = tenancy.org_id if tenancy is not None else ""
    for _ in range(100):
        if len(await client.events.store.open_waits(run_id, org_id=org_id)) >= waits:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{run_id} never reached its wait")


async def until_closed(client: TemporalDurableClient, run_id: str) -> None:
    for _ in range(100):
        if not (await client.get(run_id).describe()).status.is_open:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{run_id} never finished")


async def test_event_after_the_wait_resolves_it(events: Events) -> None:
    request = rid()
    async with events.running() as client:
        started = await client.send_event(ApprovalRequested(data=Requested(request_id=request)))
        assert len(started.started) == 1, "the trigger started one run"
        run_id = started.started[0]
        await until_waiting(client, run_id)
        desc = await client.get(run_id).describe()
        assert desc.current_steps == ["await-approval"]
        assert desc.waiting_on is not None and "tests/approval.resolved" in desc.waiting_on
        receipt = await client.send_event(resolved(request, "approve"))
        assert receipt.delivered == [run_id]
        out: Outcome = await client.get(run_id).result()
    assert out.decisions == ["approve"]
    assert out.event_ids == [receipt.id]


async def test_event_before_the_wait_is_not_lost(events: Events) -> None:
    request = rid()
    async with events.running() as client:
        started = await client.send_event(
            ApprovalRequested(data=Requested(request_id=request, delay="2s"))
        )
        early = await client.send_event(resolved(request, "approve"))
        assert early.delivered == [], "no wait was open yet; the event waits in the store"
        out = await client.get(started.started[0]).result()
    assert out.event_ids == [early.id], "the wait claimed the event that arrived first"


async def test_duplicates_start_one_run_and_resolve_one_wait(events: Events, pool: object) -> None:
    request = rid()
    trigger = ApprovalRequested(data=Requested(request_id=request))
    async with events.running() as client:
        receipts = await asyncio.gather(*(client.send_event(trigger) for _ in range(5)))
        assert sorted(r.duplicate for r in receipts) == [False, True, True, True, True]
        runs = {run for r in receipts for run in r.started}
        assert len(runs) == 1, "five sends of one event id started one run"
        (run_id,) = runs
        await until_waiting(client, run_id)
        answer = resolved(request, "approve", event_id=f"answer-{request}")
        answers = await asyncio.gather(*(client.send_event(answer) for _ in range(5)))
        assert sum(len(a.delivered) for a in answers) == 1
        out = await client.get(run_id).result()
        late = await client.send_event(answer)
    assert late.duplicate and late.delivered == [] and late.started == []
    assert out.decisions == ["approve"]
    store = events.ingress.store
    deliveries = await store.deliveries_of(answer.id, org_id="")
    assert [(d.kind, state) for d, state in deliveries] == [("signal", "delivered")]


async def test_a_duplicate_a_minute_later_starts_and_resolves_nothing_new(
    skipping_events: Events, time_skipping: WorkflowEnvironment
) -> None:
    request = rid()
    trigger = ApprovalRequested(data=Requested(request_id=request))
    answer = resolved(request, "revise", event_id=f"answer-{request}")
    async with skipping_events.running() as client:
        review = await client.start("tests/review.run", {"request_id": request, "rounds": 2})
        await until_waiting(client, review.workflow_id)
        starts = await asyncio.gather(*(client.send_event(trigger) for _ in range(5)))
        (approval_run,) = {run for r in starts for run in r.started}
        await until_waiting(client, approval_run)
        answers = await asyncio.gather(*(client.send_event(answer) for _ in range(5)))
        # One event resolves one wait per run: the review's first round and the approval.
        assert sorted(run for a in answers for run in a.delivered) == sorted(
            [review.workflow_id, approval_run]
        )
        await until_closed(client, approval_run)
        await until_waiting(client, review.workflow_id)  # its second round

        await time_skipping.sleep(timedelta(minutes=1))
        again = await client.send_event(trigger)
        late = await client.send_event(answer)
        assert again.duplicate and again.started == []
        assert late.duplicate and late.delivered == [] and late.started == []
        still_open = await skipping_events.ingress.store.open_waits(review.workflow_id, org_id="")
        assert [w["step_id"] for w in still_open] == ["review#2"], (
            "the second round still waits: the old answer was not consumed again"
        )

        final = await client.send_event(resolved(request, "approve"))
        assert final.delivered == [review.workflow_id]
        out = await review.result()
        first = await client.get(approval_run).result()
    assert out.decisions == ["revise", "approve"]
    assert out.event_ids[0] == answer.id and out.event_ids[1] == final.id
    assert first.decisions == ["revise"]


async def test_sequential_waits_consume_different_events(events: Events) -> None:
    request = rid()
    async with events.running() as client:
        handle = await client.start("tests/review.run", {"request_id": request})
        await until_waiting(client, handle.workflow_id)
        first = await client.send_event(resolved(request, "revise"))
        again = await client.send_event(
            first_copy := resolved(request, "revise", event_id=first.id)
        )
        assert again.duplicate, f"{first_copy.id} was already stored"
        second = await client.send_event(resolved(request, "approve"))
        out = await handle.result()
    assert out.decisions == ["revise", "approve"]
    assert out.event_ids == [first.id, second.id]


async def test_event_for_a_finished_run_changes_nothing(events: Events) -> None:
    request = rid()
    async with events.running() as client:
        started = await client.send_event(ApprovalRequested(data=Requested(request_id=request)))
        await until_waiting(client, started.started[0])
        await client.send_event(resolved(request))
        await client.get(started.started[0]).result()
        late = await client.send_event(resolved(request, "reject"))
    assert late.delivered == [] and late.started == [] and not late.duplicate
    assert await events.ingress.store.get(late.id, org_id="") is not None, "it is still recorded"


async def test_a_signal_to_a_finished_run_is_recorded_undeliverable(events: Events) -> None:
    request = rid()
    async with events.running() as client:
        handle = await client.start("tests/review.run", {"request_id": request, "rounds": 1})
        await until_waiting(client, handle.workflow_id)
        store = events.ingress.store
        # Resolve the wait in the store but "crash" before the signal goes out ...
        event = resolved(request)
        pending = (await store.ingest(event.id, event.type, event.data.model_dump(), [])).pending
        assert [(d.kind, d.workflow_id) for d in pending] == [("signal", handle.workflow_id)]
        # ... the dispatcher delivers it.
        assert await events.ingress.redeliver(older_than_seconds=0) >= 1
        out = await handle.result()
        assert out.event_ids == [event.id]
        # Made again after the run finished (say the first attempt could not record its
        # success): the run's history shows it had the event.
        assert await events.ingress.deliver(pending[0]) == "delivered"

        # A delivery queued for a run that finished without it is recorded as undeliverable.
        other_request = rid()
        other = await client.start("tests/review.run", {"request_id": other_request, "rounds": 1})
        await until_waiting(client, other.workflow_id)
        late = resolved(other_request)
        queued = (await store.ingest(late.id, late.type, late.data.model_dump(), [])).pending
        await other.cancel()
        await until_closed(client, other.workflow_id)
        state = await events.ingress.deliver(queued[0])
    assert state == "undeliverable"


async def test_send_event_from_a_workflow_is_sent_once(events: Events) -> None:
    request = rid()
    async with events.running() as client:
        handle = await client.start("tests/announce.run", {"request_id": request})
        sent = await handle.result()
    assert sent.event_id.startswith(handle.workflow_id) and sent.event_id.endswith("/announce")
    stored = await events.ingress.store.get(sent.event_id, org_id="")
    assert stored is not None and stored.data["request_id"] == request


async def test_a_24h_approval_times_out_and_an_answer_a_minute_before_wins(
    skipping_events: Events, time_skipping: WorkflowEnvironment
) -> None:
    # Runs started by an event do not go through the test environment's client, whose result()
    # skips time on its own; so time is skipped by hand here.
    async with skipping_events.running() as client:
        quiet = await client.send_event(
            ApprovalRequested(data=Requested(request_id=rid(), timeout="24h"))
        )
        await until_waiting(client, quiet.started[0])
        await time_skipping.sleep(timedelta(hours=24, minutes=1))
        out = await client.get(quiet.started[0]).result()
        assert out.timed_out and out.decisions == []

        request = rid()
        started = await client.send_event(
            ApprovalRequested(data=Requested(request_id=request, timeout="24h"))
        )
        await until_waiting(client, started.started[0])
        await time_skipping.sleep(timedelta(hours=23, minutes=59))
        await client.send_event(resolved(request, "approve"))
        await until_closed(client, started.started[0])
        out = await client.get(started.started[0]).result()
    assert out.decisions == ["approve"]


def test_a_match_path_missing_on_an_event_fails_at_definition() -> None:
    from .workflows import approval

    with pytest.raises(durable.InvalidDefinition) as err:
        durable.workflow(
            "tests/bad-match.run",
            trigger=ApprovalRequested,
            waits=[durable.Wait(event=ApprovalResolved, match="data.approval_id")],
        )(approval.fn)
    message = str(err.value)
    assert "'tests/approval.resolved'" in message and "'tests/approval.requested'" in message
    assert "data.approval_id" in message


async def test_oversize_and_malformed_events_are_refused_and_nothing_is_stored(
    events: Events,
) -> None:
    big = ApprovalResolved(data=Resolved(request_id="big", decision="x" * (300 * 1024)))
    async with events.running() as client:
        with pytest.raises(durable.EventError, match="the limit is 262144 bytes"):
            await client.send_event(big)
    assert await events.ingress.store.get(big.id, org_id="") is None
    with pytest.raises(durable.EventError, match="malformed"):
        durable.parse_event(ApprovalResolved, {"data": {"request_id": "r"}, "colour": "red"})


async def test_wait_for_any_returns_the_first_and_withdraws_the_others(events: Events) -> None:
    from .workflows import CancelledData, RequestCancelled

    request = rid()
    async with events.running() as client:
        handle = await client.start("tests/first-of.run", {"request_id": request})
        await until_waiting(client, handle.workflow_id, waits=2)
        cancel = await client.send_event(RequestCancelled(data=CancelledData(request_id=request)))
        assert cancel.delivered == [handle.workflow_id]
        for _ in range(100):  # until the run has moved on to its second wait
            desc = await client.get(handle.workflow_id).describe()
            if desc.current_steps == ["answer"]:
                break
            await asyncio.sleep(0.1)
        answer = await client.send_event(resolved(request, "approve"))
        out = await handle.result()
    assert out.decisions == ["tests/request.cancelled", "tests/approval.resolved"]
    assert out.event_ids == [cancel.id, answer.id], (
        "the withdrawn wait for an answer did not take the answer meant for the later wait"
    )


async def test_waits_keep_their_guarantees_across_continue_as_new(
    events: Events, pool: asyncpg.Pool
) -> None:
    request = rid()
    store = events.ingress.store
    async with events.running() as client:
        handle = await client.start("tests/rounds.run", {"request_id": request, "rounds": 3})
        await until_waiting(client, handle.workflow_id)
        first = resolved(request, "revise")
        assert (await client.send_event(first)).delivered == [handle.workflow_id]

        async def next_execution_waits() -> None:
            for _ in range(100):
                runs = await pool.fetch(
                    "SELECT DISTINCT run_id FROM waits WHERE workflow_id = $1", handle.workflow_id
                )
                if len(runs) == 2 and await store.open_waits(handle.workflow_id, org_id=""):
                    return
                await asyncio.sleep(0.1)
            raise AssertionError("the continued execution never waited")

        await next_execution_waits()
        # A late copy of the first execution's delivery reaches the second execution, which
        # waits in a step of the same name: it must not take it.
        ((delivery, _),) = await store.deliveries_of(first.id, org_id="")
        assert delivery.run_id, "a signal names the execution it was meant for"
        assert await events.ingress.deliver(delivery) == "delivered"
        second, third = resolved(request, "revise"), resolved(request, "approve")
        assert (await client.send_event(second)).delivered == [handle.workflow_id]
        await client.send_event(third)  # resolves the third execution, or waits for it
        out = await handle.result()
        # The first execution's start is carried: every execution counts events from it.
        starts = await pool.fetch(
            "SELECT DISTINCT not_before FROM waits WHERE workflow_id = $1", handle.workflow_id
        )
        executions = await pool.fetchval(
            "SELECT count(DISTINCT run_id) FROM waits WHERE workflow_id = $1", handle.workflow_id
        )
    assert out.event_ids == [first.id, second.id, third.id]
    assert out.decisions == ["revise", "revise", "approve"]
    assert executions == 3 and len(starts) == 1

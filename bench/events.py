"""The events section: how long an event takes to resume a waiting run, and a burst of events to
as many waiting runs, with `durable` (`client.send_event`, Postgres, `ctx.step.wait_for_event`)
and with raw temporalio (a signal to a run in `workflow.wait_condition`), on one dev server.

After the burst, every durable run must have returned exactly its own event, every event must
have exactly one delivery, in state 'delivered', and no wait may still be open.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.worker import Worker

from adapters.temporal import EventIngress, TemporalDurableClient, build_worker
from durable import scoped_event_id
from store import EventStore

from .common import Row, p50_p95, pct, say
from .models import Approval, RawEvent, Received, WaitInp
from .workloads_events import REGISTRY, Approved, wait_run
from .workloads_raw import RawWait

POLL_SECONDS = 0.005  # how often to ask whether a run has reached its wait
READY_TIMEOUT = 120.0  # a run that has not reached its wait by then fails the benchmark
RESULT_TIMEOUT = 60.0  # one event's run that has not finished by then fails the benchmark


@dataclass
class Waiting:
    """A started run, raw or durable."""

    temporal: WorkflowHandle[Any, Any]
    result: Callable[[], Awaitable[Received]]

    @property
    def id(self) -> str:
        return self.temporal.id


async def task_done(handle: WorkflowHandle[Any, Any]) -> bool:
    """Whether the run has finished its first workflow task and has no other one pending: it
    is blocked in its wait. (A signal sent before that would wait for the task in flight.)"""
    described = await handle.describe()
    if described.status != WorkflowExecutionStatus.RUNNING:
        raise RuntimeError(f"run {handle.id} is {described.status} before its event was sent")
    return described.history_length > 2 and not described.raw_description.HasField(
        "pending_workflow_task"
    )


class Side(Protocol):
    """What the latency and burst measurements need of a side."""

    name: str

    async def start(self) -> Waiting: ...

    async def ready(self, run: Waiting) -> bool: ...

    async def send(self, run: Waiting, event_id: str) -> None: ...

    def stored_id(self, event_id: str) -> str:
        """The id the run returns for the event sent as `event_id`."""
        ...


def slug(name: str) -> str:
    """A side's name as it goes into event ids: "http, no auth" -> "http-no-auth"."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


class RawSide:
    name = "raw"

    def __init__(self, client: Client, task_queue: str) -> None:
        self.client = client
        self.task_queue = task_queue

    async def start(self) -> Waiting:
        handle = await self.client.start_workflow(
            RawWait.run, WaitInp(), id=f"raw-wait-{uuid.uuid4()}", task_queue=self.task_queue
        )
        return Waiting(handle, handle.result)

    async def ready(self, run: Waiting) -> bool:
        return await task_done(run.temporal)

    async def send(self, run: Waiting, event_id: str) -> None:
        await run.temporal.signal(
            RawWait.approval, RawEvent(id=event_id, data=Approval(workflow_id=run.id))
        )

    def stored_id(self, event_id: str) -> str:
        return event_id


class DurableSide:
    name = "durable"

    def __init__(self, client: TemporalDurableClient, store: EventStore) -> None:
        self.client = client
        self.store = store

    async def start(self) -> Waiting:
        handle = await self.client.start(wait_run, WaitInp())
        return Waiting(handle.temporal, handle.result)

    async def ready(self, run: Waiting) -> bool:
        """Its wait is open in the store, and the workflow task that opened it is done."""
        return bool(await self.store.open_waits(run.id, org_id="")) and await task_done(
            run.temporal
        )

    async def send(self, run: Waiting, event_id: str) -> None:
        await self.client.send_event(Approved(id=event_id, data=Approval(workflow_id=run.id)))

    def stored_id(self, event_id: str) -> str:
        return event_id


class UpdateSide(DurableSide):
    """The durable run answered through Temporal itself: the `durable.resolve` Update, whose
    call returns once the run has stored the event and handed it to its wait."""

    name = "durable.resolve Update"

    async def send(self, run: Waiting, event_id: str) -> None:
        answer = await run.temporal.execute_update(
            "durable.resolve",
            {"type": Approved.type, "id": event_id, "data": {"workflow_id": run.id}},
        )
        if answer.get("step_id") != "approval":
            raise RuntimeError(f"the Update resolved {answer!r}, not the approval wait")

    def stored_id(self, event_id: str) -> str:
        return scoped_event_id("", event_id)  # a run of no org: ids are per org


async def until_waiting(side: Side, run: Waiting) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while not await side.ready(run):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{side.name} run {run.id} did not reach its wait in time")
        await asyncio.sleep(POLL_SECONDS)


async def resume_latency(side: Side) -> tuple[float, float]:
    """Milliseconds from sending a waiting run its event to (the send call returning, having
    the run's result)."""
    run = await side.start()
    await until_waiting(side, run)
    event_id = f"bench-{slug(side.name)}-{uuid.uuid4()}"
    begin = time.perf_counter()
    await side.send(run, event_id)
    sent = time.perf_counter()
    out = await asyncio.wait_for(run.result(), RESULT_TIMEOUT)
    done = time.perf_counter()
    expected = side.stored_id(event_id)
    if out.event_id != expected:
        raise RuntimeError(f"{side.name} run {run.id} returned {out.event_id!r}, not {expected!r}")
    return (sent - begin) * 1000, (done - begin) * 1000


async def alternate_latencies(
    sides: list[Side], samples: int
) -> tuple[tuple[list[float], ...], tuple[list[float], ...]]:
    """(send ms, total ms) per side over `samples` rounds after one warm-up each; the sides
    alternate within a round, so drift hits them alike."""
    for side in sides:  # warm-up
        await resume_latency(side)
    sends: tuple[list[float], ...] = tuple([] for _ in sides)
    totals: tuple[list[float], ...] = tuple([] for _ in sides)
    for _ in range(samples):
        for i, side in enumerate(sides):
            send_ms, total_ms = await resume_latency(side)
            sends[i].append(send_ms)
            totals[i].append(total_ms)
    return sends, totals


@dataclass
class Burst:
    side: str
    seconds: float
    runs: list[Waiting]
    sent: dict[str, str]  # run id -> the id of the event sent to it, as stored
    got: dict[str, str | None]  # run id -> the event id it returned (None: no result)
    errors: list[str] = field(default_factory=list)


async def burst(side: Side, runs: int, concurrency: int) -> Burst:
    """`runs` runs all waiting, then one event each, `concurrency` sends at a time; the time
    from the first send until every result is in."""
    gate = asyncio.Semaphore(concurrency)

    async def start() -> Waiting:
        async with gate:
            return await side.start()

    async def settle(run: Waiting) -> None:
        async with gate:
            await until_waiting(side, run)

    started = await asyncio.gather(*(start() for _ in range(runs)))
    await asyncio.gather(*(settle(run) for run in started))
    say(f"  {runs} {side.name} runs are waiting; sending {runs} events ...")
    given = {run.id: f"bench-{slug(side.name)}-burst-{uuid.uuid4()}" for run in started}
    sent = {run_id: side.stored_id(event_id) for run_id, event_id in given.items()}
    out = Burst(side.name, 0.0, started, sent, {})
    deadline = time.monotonic() + RESULT_TIMEOUT + runs * 0.2

    async def send(run: Waiting) -> None:
        async with gate:
            try:
                await side.send(run, given[run.id])
            except Exception as err:
                out.errors.append(f"sending to {run.id}: {err!r}")

    async def result(run: Waiting) -> None:
        try:
            received = await asyncio.wait_for(run.result(), deadline - time.monotonic())
            out.got[run.id] = received.event_id
        except Exception as err:
            out.got[run.id] = None
            out.errors.append(f"result of {run.id}: {err!r}")

    begin = time.perf_counter()
    await asyncio.gather(*(send(run) for run in started), *(result(run) for run in started))
    out.seconds = time.perf_counter() - begin
    return out


@dataclass
class Verdict:
    side: str
    events: int
    lost: int
    duplicated: int
    checked: str
    problems: list[str]

    def line(self) -> str:
        return (
            f"{self.side}: {self.events} events to {self.events} waiting runs: "
            f"lost: {self.lost}, duplicated: {self.duplicated} ({self.checked})"
        )


def check_results(result: Burst) -> tuple[set[str], set[str], list[str]]:
    """(events lost, events duplicated, problems) judged by what the runs returned: an event is
    lost when its run did not return it, duplicated when another run returned it too."""
    owner = {event_id: run_id for run_id, event_id in result.sent.items()}
    returned = Counter(got for got in result.got.values() if got)
    lost: set[str] = set()
    duplicated: set[str] = set()
    problems = list(result.errors)
    for run_id, event_id in result.sent.items():
        got = result.got.get(run_id)
        if got != event_id:
            lost.add(event_id)
            problems.append(f"run {run_id} returned {got!r}, not its event {event_id!r}")
        if got and got != event_id and got in owner:
            duplicated.add(got)
        if returned[event_id] > 1:
            duplicated.add(event_id)
    return lost, duplicated, problems


async def verify_durable(
    result: Burst, store: EventStore, side: str = "durable", *, org_id: str = ""
) -> Verdict:
    """What the runs returned, and in Postgres (as `org_id`, the runs' org): each event has
    exactly one delivery, a signal to its own run, in state 'delivered'; no wait of these runs
    is still open."""
    lost, duplicated, problems = check_results(result)
    gate = asyncio.Semaphore(10)

    async def check(run_id: str, event_id: str) -> None:
        async with gate:
            deliveries = await store.deliveries_of(event_id, org_id=org_id)
            still_open = await store.open_waits(run_id, org_id=org_id)
        delivered = [
            d
            for d, state in deliveries
            if state == "delivered" and d.kind == "signal" and d.workflow_id == run_id
        ]
        if len(deliveries) > 1:
            duplicated.add(event_id)
            problems.append(f"event {event_id} has {len(deliveries)} deliveries: {deliveries}")
        if len(delivered) != 1:
            lost.add(event_id)
            problems.append(f"event {event_id} has no 'delivered' signal to {run_id}: {deliveries}")
        if still_open:
            lost.add(event_id)
            problems.append(f"run {run_id} still has open waits: {still_open}")

    await asyncio.gather(*(check(run_id, event_id) for run_id, event_id in result.sent.items()))
    return Verdict(
        side,
        len(result.sent),
        len(lost),
        len(duplicated),
        "each run returned its own event; in Postgres each event has exactly one delivery, "
        "'delivered', to its run; no wait left open",
        problems,
    )


def verify_raw(result: Burst) -> Verdict:
    lost, duplicated, problems = check_results(result)
    return Verdict(
        "raw temporalio",
        len(result.sent),
        len(lost),
        len(duplicated),
        "each run returned its own signal",
        problems,
    )


async def measure_events(
    client: Client, pool: asyncpg.Pool, args: Any, label: str
) -> tuple[list[Row], list[Verdict]]:
    queue = f"bench-events-{uuid.uuid4()}"
    store = EventStore(pool)
    # One pool and one ingress for the worker and the sender, as `durable dev` assembles them.
    ingress = EventIngress(client, store, REGISTRY, f"{queue}-durable")
    durable_client = TemporalDurableClient(client, REGISTRY, f"{queue}-durable", events=ingress)
    raw, ours = RawSide(client, f"{queue}-raw"), DurableSide(durable_client, store)
    update = UpdateSide(durable_client, store)
    raw_worker = Worker(client, task_queue=f"{queue}-raw", workflows=[RawWait])
    rows: list[Row] = []
    async with raw_worker, build_worker(client, REGISTRY, f"{queue}-durable", events=ingress):
        dispatcher = asyncio.create_task(ingress.run_dispatcher())  # beside the worker
        try:
            say(f"[{label}] send_event -> resume latency, {args.event_samples} runs each ...")
            sends, totals = await alternate_latencies([raw, ours, update], args.event_samples)
            rows += p50_p95(f"{label}: send_event -> resume", totals[0], totals[1])
            rows.append(
                Row(
                    f"{label}: of which the send call (signal for raw), p50",
                    pct(sends[0], 0.5),
                    pct(sends[1], 0.5),
                    "ms",
                )
            )
            rows += p50_p95(f"{label}: durable.resolve Update -> resume", totals[0], totals[2])
            rows.append(
                Row(
                    f"{label}: of which the Update call until its answer (signal for raw), p50",
                    pct(sends[0], 0.5),
                    pct(sends[2], 0.5),
                    "ms",
                )
            )
            n, c = args.burst, args.burst_concurrency
            say(f"[{label}] burst: {n} waiting runs, {n} events, {c} at a time ...")
            raw_burst = await burst(raw, n, c)
            ours_burst = await burst(ours, n, c)
            say(f"[{label}] verifying the burst ...")
            verdicts = [verify_raw(raw_burst), await verify_durable(ours_burst, store)]
        finally:
            dispatcher.cancel()
            await asyncio.gather(dispatcher, return_exceptions=True)
    figure = f"{label}: {n} events to {n} waiting runs, {c} sends at a time"
    rows += [
        Row(f"{figure}, until all results are in", raw_burst.seconds, ours_burst.seconds, "s"),
        Row(f"{figure}, events/s", n / raw_burst.seconds, n / ours_burst.seconds, "events/s"),
    ]
    return rows, verdicts

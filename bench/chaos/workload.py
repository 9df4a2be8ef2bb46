"""The mixed workload of a chaos run: shipped workflows only, run by the `durable worker`s.

- `example`: `rensei/example.run` (a short step, parallel steps, a durable sleep, a child run
  `rensei/example.summarise`, a sleep-until, a note written to Postgres), started by the client.
- `demo`: `rensei/pm.agent-demo.run` (dispatches an agent session, an event-triggered run of its
  own that runs the shipped local agent in a subprocess, and waits for its completion event).
- `triage`: the backlog-triage PM agent (`rensei/pm.backlog-triage.requested` through the
  ingress) in an org of its own in the local Linear: team and issues from Linear, an agent
  session, a review issue, a wait for `rensei/approval.resolved`, then the decision applied.
  Each is answered `approve`, `reject` or `revise` then `approve`.

What the seed decides per run besides its kind and start moment: whether its answers are sent
early (once the run exists, before it reaches its wait: the store keeps them for the wait),
and whether its trigger or its answers are sent twice with the same id (at once, or again
later, after the run may have finished). Every send that fails is retried with the same id
until it is acknowledged: that is what a client does when the store or Temporal blinks.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from pydantic import BaseModel

import durable
from store import as_org
from workflows.agents import AgentDemoInput
from workflows.events import Approval, ApprovalResolved
from workflows.example import ExampleInput
from workflows.pm.backlog_triage import BacklogTriageParams, BacklogTriageRequested

from ..common import say
from .stack import Stack

T = TypeVar("T")
KINDS = ("triage", "example", "demo")
SHARED_ORG = "chaos"  # the org of example and demo runs
DECISIONS: tuple[tuple[str, ...], ...] = (("approve",), ("reject",), ("revise", "approve"))
REVISE_NOTES = "ENG-10 priority 2"
ATTEMPT_TIMEOUT = 20.0  # one try of a call; a hung call is retried like a failed one
POLL = 0.25


def triage_org(seed: int, index: int) -> str:
    return f"chaos-s{seed}-t{index}"


@dataclass(frozen=True)
class Spec:
    seed: int
    index: int
    kind: str
    at: float  # seconds after the workload began
    org: str
    decisions: tuple[str, ...] = ()
    early: bool = False  # answers go out before the run waits: once it exists ...
    dup_trigger: bool = False
    dup_answer: str = ""  # "", "together" or "later"
    work: float = 0.0  # example: seconds each research step works; demo: the agent works
    think: float = 0.0  # triage: seconds a late answer takes after its wait opened

    @property
    def at_once(self) -> bool:
        """... or, for every other early run, right after its trigger's receipt."""
        return self.early and self.index % 2 == 1

    @property
    def trigger_id(self) -> str:
        return f"chaos-s{self.seed}-trigger-{self.index}"

    def answer_id(self, round: int) -> str:
        return f"chaos-s{self.seed}-answer-{self.index}-{round}"

    @property
    def workflow_id(self) -> str:
        if self.kind == "triage":
            return f"rensei/pm.backlog-triage.run:{self.trigger_id}"
        return f"chaos-s{self.seed}-{self.kind}-{self.index}"


def plan_runs(rng: random.Random, seed: int, runs: int, window: float) -> list[Spec]:
    kinds = [KINDS[i % len(KINDS)] for i in range(runs)]
    rng.shuffle(kinds)
    specs: list[Spec] = []
    for index, kind in enumerate(kinds):
        at = round(rng.uniform(0, window), 1)
        if kind == "triage":
            specs.append(
                Spec(
                    seed,
                    index,
                    kind,
                    at,
                    triage_org(seed, index),
                    decisions=rng.choice(DECISIONS),
                    early=rng.random() < 0.4,
                    dup_trigger=rng.random() < 0.3,
                    dup_answer=rng.choice(("", "", "together", "later")),
                    think=round(rng.uniform(0.0, 3.0), 1),
                )
            )
        else:
            work = round(rng.uniform(0.5, 4.0), 1)
            specs.append(Spec(seed, index, kind, at, SHARED_ORG, work=work))
    return sorted(specs, key=lambda s: s.at)


@dataclass
class Sent:
    """An event the harness sent (every send of one id counted together)."""

    event_id: str
    type: str
    org: str
    target: str  # the workflow id it starts or answers
    round: int  # 0: a trigger; n: the answer to await-approval#n
    sends: int = 0
    acked: int = 0  # sends that returned a receipt
    new: int = 0  # receipts that said "stored now" (duplicate=False)
    early: bool | None = None  # an answer: sent before its wait existed
    at_once: bool = False  # an answer: sent right after its trigger's receipt
    deferred: bool = False  # a trigger: a receipt said its start was left to the dispatcher


@dataclass
class Outcome:
    spec: Spec
    result: dict[str, Any] | None = None
    error: str = ""
    stuck: bool = False
    seconds: float = 0.0


@dataclass
class Workload:
    stack: Stack
    rng: random.Random
    deadline: float  # time.monotonic() after which nothing is retried and open runs are stuck
    sent: dict[str, Sent] = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list)
    tricks: Counter[str] = field(default_factory=Counter)  # duplicate sends, early answers
    later: list[asyncio.Task[None]] = field(default_factory=list)
    began: float = 0.0
    in_flight: int = 0  # runs started and not yet ended

    @property
    def client(self) -> durable.DurableClient:
        assert self.stack.client is not None
        return self.stack.client

    async def persist(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """`call()` until it returns; each failure (the store or Temporal is down, a call hung)
        waits a little and tries again, until the workload's deadline."""
        delay = 0.2
        while True:
            try:
                return await asyncio.wait_for(call(), ATTEMPT_TIMEOUT)
            except (durable.RunAlreadyStarted, durable.WorkflowFailed, durable.RunCancelled):
                raise
            except Exception as err:
                if time.monotonic() > self.deadline:
                    raise TimeoutError(f"{what}: still failing at the deadline: {err!r}") from err
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def send(self, event: durable.Event[Any], target: str, round: int) -> None:
        sent = self.sent.setdefault(
            event.id,
            Sent(
                event.id, event.type, event.tenancy.org_id if event.tenancy else "", target, round
            ),
        )
        sent.sends += 1
        receipt = await self.persist(f"send {event.id}", lambda: self.client.send_event(event))
        sent.acked += 1
        sent.new += 0 if receipt.duplicate else 1
        sent.deferred = sent.deferred or bool(receipt.pending)

    async def send_maybe_twice(
        self, event: durable.Event[Any], target: str, round: int, how: str
    ) -> None:
        if how == "together":
            self.tricks["duplicate send"] += 1
            await asyncio.gather(*(self.send(event, target, round) for _ in range(2)))
            return
        await self.send(event, target, round)
        if how == "later":
            self.tricks["duplicate send"] += 1
            pause = self.rng.uniform(1.0, 8.0)

            async def again() -> None:
                await asyncio.sleep(pause)
                await self.send(event, target, round)

            self.later.append(asyncio.create_task(again()))

    # --- the runs -----------------------------------------------------------------------------

    async def run(self, spec: Spec) -> None:
        await asyncio.sleep(max(0.0, self.began + spec.at - time.monotonic()))
        outcome = Outcome(spec)
        self.outcomes.append(outcome)
        t0 = time.monotonic()
        self.in_flight += 1
        try:
            if spec.kind == "triage":
                await self.triage(spec)
            else:
                await self.start(spec)
            outcome.result = await self.result(spec.workflow_id)
        except (durable.WorkflowFailed, durable.RunCancelled) as err:
            outcome.error = f"{type(err).__name__}: {err}"
        except TimeoutError as err:
            outcome.stuck, outcome.error = True, str(err)
        finally:
            self.in_flight -= 1
        outcome.seconds = time.monotonic() - t0

    async def start(self, spec: Spec) -> None:
        tenancy = durable.Tenancy(org_id=spec.org)
        if spec.kind == "example":
            workflow, body = (
                "rensei/example.run",
                ExampleInput(
                    topic=f"chaos run number {spec.index}",
                    work_seconds=spec.work,
                    cool_down=f"{1 + spec.index % 3}s",
                ).model_dump(),
            )
        else:
            workflow, body = (
                "rensei/pm.agent-demo.run",
                AgentDemoInput(work_seconds=spec.work, timeout="2m").model_dump(),
            )

        async def start() -> None:
            # RunAlreadyStarted: an earlier try started it, and its answer was lost.
            with contextlib.suppress(durable.RunAlreadyStarted):
                await self.client.start(workflow, body, spec.workflow_id, tenancy=tenancy)

        await self.persist(f"start {spec.workflow_id}", start)

    async def triage(self, spec: Spec) -> None:
        await self.triage_trigger(spec)
        if spec.early and not spec.at_once:
            # The answers count from the run's start on: wait until it exists.
            await self.persist(
                f"describe {spec.workflow_id}", self.client.get(spec.workflow_id).describe
            )
        for round, decision in enumerate(spec.decisions, start=1):
            step = f"await-approval#{round}"
            if not spec.early:
                await self.until_waiting(spec, step)
                await asyncio.sleep(spec.think)
            reached = await self.persist("wait check", partial(self.has_wait, spec, step))
            if not reached:
                self.tricks["answer before its wait"] += 1
            await self.answer(spec, round, decision, early=not reached)
            self.sent[spec.answer_id(round)].at_once = spec.at_once and round == 1

    async def triage_trigger(self, spec: Spec) -> None:
        trigger = BacklogTriageRequested(
            id=spec.trigger_id, data=BacklogTriageParams(), tenancy=durable.Tenancy(org_id=spec.org)
        )
        how = "together" if spec.dup_trigger else ""
        await self.send_maybe_twice(trigger, spec.workflow_id, 0, how)

    async def answer(self, spec: Spec, round: int, decision: str, *, early: bool = False) -> None:
        answer = ApprovalResolved(
            id=spec.answer_id(round),
            data=Approval(
                workflow_id=spec.workflow_id,
                decision=decision,
                notes=REVISE_NOTES if decision == "revise" else "chaos says so",
                by="chaos",
            ),
            tenancy=durable.Tenancy(org_id=spec.org),
        )
        self.sent.setdefault(
            answer.id, Sent(answer.id, answer.type, spec.org, spec.workflow_id, round)
        ).early = early
        await self.send_maybe_twice(answer, spec.workflow_id, round, spec.dup_answer)

    async def has_wait(self, spec: Spec, step: str) -> bool:
        """Whether the run has reached `step` (its wait is open, or was resolved)."""
        assert self.stack.pool is not None
        async with as_org(self.stack.pool, spec.org) as conn:
            found = await conn.fetchval(
                "SELECT count(*) FROM waits WHERE workflow_id = $1 AND step_id = $2",
                spec.workflow_id,
                step,
            )
        return bool(found)

    async def until_waiting(self, spec: Spec, step: str) -> None:
        while not await self.persist("wait check", lambda: self.has_wait(spec, step)):
            if time.monotonic() > self.deadline:
                raise TimeoutError(f"{spec.workflow_id} never reached {step}")
            await asyncio.sleep(POLL)

    async def result(self, workflow_id: str) -> dict[str, Any]:
        handle = self.client.get(workflow_id)
        out: Any = await self.persist(f"result of {workflow_id}", handle.result)
        return out.model_dump(mode="json") if isinstance(out, BaseModel) else dict(out)

    async def drive(self, specs: list[Spec], began: float) -> None:
        self.began = began
        await asyncio.gather(*(self.run(spec) for spec in specs))
        if self.later:
            say("  waiting for the duplicate sends still due ...")
            await asyncio.gather(*self.later, return_exceptions=True)

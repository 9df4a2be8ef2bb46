"""When the infrastructure faults hit, drawn from the seed, and injecting them.

Kinds: `worker-kill` (SIGKILL a `durable worker`, start another), `temporal-restart` (SIGKILL
the dev server, start it again on its port and SQLite file), `postgres-restart` (`pg_ctl stop
-m immediate`, start again on its data directory and socket), `linear-write-crash` (SIGKILL
every worker once the local Linear has made a write whose answer it holds back). The first
faults are one of each kind, in a drawn order, the rest are drawn; the moments are drawn over
the first 80% of the run's duration, at least MIN_GAP seconds apart, and injected one after
another (a restart is finished before the next fault starts), each while a run is in
flight.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from ..common import say
from .stack import Stack

KINDS = ("worker-kill", "temporal-restart", "postgres-restart", "linear-write-crash")
MIN_GAP = 4.0  # seconds between two faults' moments
BUSY_WAIT = 30.0


@dataclass(frozen=True)
class Fault:
    at: float  # seconds after the workload started
    kind: str
    down: float  # how long a restarted server stays down


@dataclass
class Injected:
    done: list[tuple[Fault, str, float]] = field(default_factory=list)  # fault, note, seconds
    failed: list[tuple[Fault, str]] = field(default_factory=list)
    missed: list[Fault] = field(default_factory=list)  # found no Linear write to hit
    skipped: list[Fault] = field(default_factory=list)  # due after the workload had ended

    def counts(self) -> Counter[str]:
        return Counter(fault.kind for fault, _, _ in self.done)


def plan_faults(rng: random.Random, count: int, duration: float) -> list[Fault]:
    kinds = [KINDS[i % len(KINDS)] if i < len(KINDS) else rng.choice(KINDS) for i in range(count)]
    rng.shuffle(kinds)
    # Over the first 80% of the duration, as the runs start: later, most runs have ended.
    start, end = min(3.0, duration / 4), max(duration * 0.8, 3.0 + MIN_GAP * count)
    moments: list[float] = []
    for _ in range(count):
        for _ in range(100):
            at = rng.uniform(start, end)
            if all(abs(at - other) >= MIN_GAP for other in moments):
                break
        moments.append(at)
    moments.sort()
    return [
        Fault(at=round(at, 1), kind=kind, down=round(rng.uniform(0.5, 3.0), 1))
        for at, kind in zip(moments, kinds, strict=True)
    ]


async def inject(
    stack: Stack,
    faults: list[Fault],
    rng: random.Random,
    began: float,
    busy: Callable[[], bool] = lambda: True,
    over: Callable[[], bool] = lambda: False,
) -> Injected:
    """Inject `faults` at their moments (seconds after `began`, a `time.monotonic()`). A fault
    whose moment finds no run in flight (`busy()` false) waits for one, BUSY_WAIT at most: a
    fault that hits nothing tests nothing. Once `over()` (the workload has ended), the faults
    still due are skipped: listed, not counted."""
    out = Injected()
    for fault in faults:
        for _ in range(int(max(0.0, began + fault.at - time.monotonic()) / 0.1)):
            if over():
                break
            await asyncio.sleep(0.1)
        for _ in range(int(BUSY_WAIT / 0.1)):
            if busy() or over():
                break
            await asyncio.sleep(0.1)
        if over():
            out.skipped.append(fault)
            continue
        t0 = time.monotonic()
        say(f"  [{t0 - began:6.1f}s] fault: {fault.kind} ...")
        try:
            if fault.kind == "worker-kill":
                note = await stack.kill_worker(rng)
            elif fault.kind == "linear-write-crash":
                note = await stack.crash_mid_linear_write(BUSY_WAIT, over)
            elif fault.kind == "temporal-restart":
                note = await stack.restart_temporal(fault.down)
            else:
                note = await stack.restart_postgres(fault.down)
        except Exception as err:  # a fault the harness could not inject is reported, not hidden
            say(f"  fault {fault.kind} failed: {err!r}")
            out.failed.append((fault, repr(err)))
            continue
        if note == "missed":  # no write came: it did not happen, and is not counted
            out.missed.append(fault)
            say(f"  fault {fault.kind} missed: no Linear write in {BUSY_WAIT:.0f}s")
            continue
        out.done.append((fault, note, time.monotonic() - t0))
        say(f"  [{time.monotonic() - began:6.1f}s] fault: {fault.kind} done ({note})")
    return out

"""One chaos run: start the stack, drive the workload while the faults hit, settle, check the
ledger, stop everything. `python -m bench.chaos` and tests/test_chaos.py call `chaos`."""

from __future__ import annotations

import asyncio
import logging
import random
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..common import pct, say
from .faults import Injected, inject, plan_faults
from .ledger import Ledger, check
from .stack import Stack
from .workload import SHARED_ORG, Outcome, Workload, plan_runs

SETTLE_SECONDS = 30.0  # after the last result: how long deliveries and waits may take to close


@dataclass
class Config:
    seed: int = 1
    runs: int = 24
    faults: int = 6
    duration: float = 60.0  # runs start in the first 80% of it; faults hit all over it
    workers: int = 2
    deadline: float = 240.0  # seconds after `duration` by which every run must have ended
    keep: bool = False  # keep the run's directory (logs, databases) for a look afterwards


@dataclass
class Report:
    config: Config
    ledger: Ledger
    injected: Injected
    tricks: Counter[str]
    kinds: Counter[str]
    seconds: float
    outcomes: list[Outcome] = field(default_factory=list)
    worker_exits: Counter[int] = field(default_factory=Counter)
    directory: str = ""

    @property
    def clean(self) -> bool:
        return self.ledger.clean and not self.injected.failed

    def table(self) -> str:
        faults = self.injected.counts()
        done = ", ".join(f"{k} {n}" for k, n in sorted(faults.items())) or "none"
        not_injected, missed = len(self.injected.failed), len(self.injected.missed)
        failed = f" ({not_injected} could not be injected)" if not_injected else ""
        failed += f" ({missed} found no Linear write to hit)" if missed else ""
        skipped = len(self.injected.skipped)
        failed += f" ({skipped} due after the workload had ended: skipped)" if skipped else ""
        tricks = ", ".join(f"{k} {n}" for k, n in sorted(self.tricks.items())) or "none"
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.kinds.items()))
        exits = ", ".join(f"exit {c}: {n}" for c, n in sorted(self.worker_exits.items()))
        checked = self.ledger.checked
        rows = [
            ("seed", str(self.config.seed)),
            ("workers", f"{self.config.workers} `durable worker` processes"),
            ("faults injected", done + failed),
            ("event faults", tricks),
            ("runs", f"{sum(self.kinds.values())} ({kinds})"),
            (
                "events checked",
                f"{checked['events']} sent by the harness, "
                f"{checked['session events']} sent by runs (agent sessions)",
            ),
            ("lost", str(self.ledger.count("lost"))),
            ("duplicated", str(self.ledger.count("duplicated"))),
            ("stuck", str(self.ledger.count("stuck"))),
            ("wrong end state", str(self.ledger.count("wrong"))),
            ("run time p50 / max, by kind", self.run_times()),
            ("workers that exited on their own", exits or "0"),
            ("time", f"{self.seconds:.1f} s"),
        ]
        lines = ["| figure | value |", "| --- | --- |", *(f"| {a} | {b} |" for a, b in rows)]
        return "\n".join(lines)

    def run_times(self) -> str:
        by_kind: dict[str, list[float]] = {}
        for outcome in self.outcomes:
            by_kind.setdefault(outcome.spec.kind, []).append(outcome.seconds)
        return ", ".join(
            f"{kind} {pct(times, 0.5):.1f} s / {max(times):.1f} s"
            for kind, times in sorted(by_kind.items())
        )

    def problems(self, limit: int = 40) -> list[str]:
        out = [f"{kind}: {line}" for kind, lines in self.ledger.problems.items() for line in lines]
        out += [f"fault not injected: {f.kind} at {f.at}s: {e}" for f, e in self.injected.failed]
        return out[:limit] + ([f"... and {len(out) - limit} more"] if len(out) > limit else [])


async def settle(stack: Stack, seconds: float) -> None:
    """Give the dispatchers a moment to finish deliveries and the runs to close their waits."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            conn = await stack.superuser()
            try:
                left = await conn.fetchval(
                    "SELECT (SELECT count(*) FROM waits WHERE state = 'open')"
                    " + (SELECT count(*) FROM deliveries WHERE state = 'pending')"
                )
            finally:
                await conn.close()
        except OSError:
            left = -1
        if left == 0:
            return
        await asyncio.sleep(1.0)


async def chaos(config: Config) -> Report:
    # The harness's own pool says so, with a traceback, each time PostgreSQL restarts.
    logging.getLogger("asyncpg.pool").setLevel(logging.CRITICAL)
    run_rng, fault_rng = random.Random(config.seed), random.Random(config.seed * 7919 + 1)
    specs = plan_runs(run_rng, config.seed, config.runs, config.duration * 0.8)
    faults = plan_faults(fault_rng, config.faults, config.duration)
    say(f"chaos seed {config.seed}: {len(specs)} runs, faults: {[(f.at, f.kind) for f in faults]}")
    orgs = {SHARED_ORG: "lin_api_chaos"}
    orgs |= {s.org: f"lin_api_{s.org}" for s in specs if s.kind == "triage"}
    root = Path(tempfile.mkdtemp(prefix=f"chaos-s{config.seed}-"))
    stack = Stack(root, orgs, config.workers)
    t0 = time.monotonic()
    try:
        await stack.start()
        for spec in specs:
            if spec.kind == "triage":
                stack.snapshot(spec.org)
        say("driving the workload ...")
        began = time.monotonic()
        workload = Workload(stack, run_rng, deadline=began + config.duration + config.deadline)
        ended = asyncio.Event()
        injector = asyncio.create_task(
            inject(stack, faults, fault_rng, began, lambda: workload.in_flight > 0, ended.is_set)
        )
        await workload.drive(specs, began)
        ended.set()
        say(f"every run has ended (or is past the deadline) at {time.monotonic() - began:.1f}s")
        injected = await injector
        say("settling ...")
        await settle(stack, SETTLE_SECONDS)
        say("checking the ledger ...")
        ledger = await check(stack, workload.sent, workload.outcomes)
        assert stack.workers is not None
        exits = stack.workers.exited
    finally:
        await stack.close()
        if not config.keep:
            shutil.rmtree(root, ignore_errors=True)
    kinds = Counter(spec.kind for spec in specs)
    seconds = time.monotonic() - t0
    report = Report(config, ledger, injected, workload.tricks, kinds, seconds, workload.outcomes)
    report.worker_exits = exits
    report.directory = str(root) if config.keep else ""
    return report

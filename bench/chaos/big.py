"""`python -m bench.chaos --big`: N waiting runs answered by N events, on the same stack.

The waiting runs are the product's own: backlog-triage PM runs (one trigger event each through
the ingress; each fetches its team and issues from the local Linear, consults the local agent
in an agent session, posts a review issue and waits for `rensei/approval.resolved`), spread
over `--orgs` orgs. Once every run waits, one approval event per run is sent, `--concurrency`
at a time, and every run's result awaited. Then the same ledger as the chaos run (each event
stored once and taken once, each run approved with its changes, no wait or delivery left) and
per org: as many review issues as runs, each Done with one "Approved" comment.

Figures: the time to start and to have all waiting, worker RSS (VmRSS of the `durable worker`
processes, /proc/<pid>/status) idle, with all waiting and per waiting run, the PostgreSQL
database size (pg_database_size) before and with all waiting, the time from the first answer
to the last result and events/s, answer-to-result latency p50/p95, and the moments 10/50/90/100%
of the runs were waiting (how the start phase degrades as runs pile up). With `--faults N`,
N faults are injected while the answers go out.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

from ..common import pct, say
from .faults import Injected, inject, plan_faults
from .ledger import Ledger, check
from .run import settle
from .stack import Stack
from .workload import SHARED_ORG, Outcome, Spec, Workload

POLL = 2.0


def mb(kb: float) -> str:
    return f"{kb / 1024:.0f} MB"


async def waiting_count(stack: Stack, seed: int) -> int:
    conn = await stack.superuser()
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM waits WHERE step_id = 'await-approval#1' AND workflow_id LIKE $1",
            f"rensei/pm.backlog-triage.run:chaos-s{seed}-trigger-%",
        )
        return count
    finally:
        await conn.close()


def worker_logs(root: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in sorted(root.glob("worker-*.log")))


def check_orgs(stack: Stack, ledger: Ledger, specs: list[Spec]) -> None:
    """Per org: one review issue per run, each Done, each with one "Approved" comment."""
    runs = Counter(spec.org for spec in specs)
    for org, n in runs.items():
        state = stack.linear.state(org)
        states = {s["id"]: s["type"] for s in state["workflowStates"]}
        reviews = [i for i in state["issues"] if i["title"].startswith("Triage proposal")]
        ledger.checked["linear orgs"] += 1
        if len(reviews) != n:
            kind = "duplicated" if len(reviews) > n else "lost"
            ledger.add(kind, f"{org}: {len(reviews)} review issues for {n} runs")
        for review in reviews:
            comments = [c["body"] for c in state["comments"] if c["issueId"] == review["id"]]
            if len(comments) != 1 or not comments[0].startswith("Approved by chaos"):
                kind = "duplicated" if len(comments) > 1 else "wrong"
                ledger.add(kind, f"{org} {review['identifier']}: comments {comments!r}")
            if states.get(review["stateId"]) != "completed":
                ledger.add("wrong", f"{org} {review['identifier']}: not Done")


async def big(args: argparse.Namespace) -> int:
    logging.getLogger("asyncpg.pool").setLevel(logging.CRITICAL)
    n, seed = args.events, args.seed
    orgs = [f"chaos-big-o{k}" for k in range(max(1, min(args.orgs, n)))]
    specs = [
        Spec(seed, i, "triage", 0.0, orgs[i % len(orgs)], decisions=("approve",)) for i in range(n)
    ]
    keys = {SHARED_ORG: "lin_api_chaos", **{org: f"lin_api_{org}" for org in orgs}}
    root = Path(tempfile.mkdtemp(prefix=f"chaos-big-s{seed}-"))
    stack = Stack(root, keys, args.workers)
    rng = random.Random(seed)
    figures: list[tuple[str, str]] = []
    injected = Injected()
    t_all = time.monotonic()
    try:
        await stack.start()
        assert stack.workers is not None
        for org in orgs:
            stack.snapshot(org)
        await asyncio.sleep(3.0)
        idle_kb = sum(stack.workers.rss_kb().values())
        db_before = await stack.database_bytes()
        workload = Workload(stack, rng, deadline=time.monotonic() + 1800 + n * 0.5)
        gate = asyncio.Semaphore(args.concurrency)

        async def trigger(spec: Spec) -> None:
            async with gate:
                await workload.triage_trigger(spec)

        say(f"[big] starting {n} backlog-triage runs over {len(orgs)} orgs ...")
        t0 = time.monotonic()
        triggers = asyncio.gather(*(trigger(s) for s in specs))
        marks: dict[int, float] = {}
        while True:
            done = await waiting_count(stack, seed)
            for q in (10, 50, 90, 100):
                if q not in marks and done * 100 >= q * n:
                    marks[q] = time.monotonic() - t0
            say(f"  [{time.monotonic() - t0:6.1f}s] {done}/{n} runs waiting")
            if done >= n or time.monotonic() > workload.deadline:
                break
            await asyncio.sleep(POLL)
        await triggers
        t_waiting = time.monotonic() - t0
        await asyncio.sleep(POLL)  # let the last workflow tasks finish before measuring
        waiting_kb = sum(stack.workers.rss_kb().values())
        db_waiting = await stack.database_bytes()
        say(f"[big] all waiting after {t_waiting:.1f}s; sending {n} answers ...")
        latencies: list[float] = []
        outcomes: list[Outcome] = []

        async def answer(spec: Spec) -> None:
            outcome = Outcome(spec)
            outcomes.append(outcome)
            async with gate:
                await workload.answer(spec, 1, "approve")
                sent = time.monotonic()
            try:
                outcome.result = await workload.result(spec.workflow_id)
                latencies.append(time.monotonic() - sent)
            except TimeoutError as err:
                outcome.stuck, outcome.error = True, str(err)
            except Exception as err:
                outcome.error = repr(err)

        faults = plan_faults(random.Random(seed * 7919 + 1), args.faults, args.duration)
        t1 = time.monotonic()
        injector = asyncio.create_task(inject(stack, faults, rng, t1))
        await asyncio.gather(*(answer(s) for s in specs))
        t_answered = time.monotonic() - t1
        injected = await injector
        say(f"[big] all answered in {t_answered:.1f}s; settling and checking ...")
        await settle(stack, 60.0)
        ledger = await check(stack, workload.sent, outcomes, linear=False)
        check_orgs(stack, ledger, specs)
        peak_kb = sum(stack.workers.peak_rss_kb.values())
        logs = await asyncio.to_thread(worker_logs, root)
        slow_tasks = logs.count("TMPRL1104")  # a workflow task took over 5 s
        lost_tasks = logs.count("Task not found when completing")  # it timed out (10 s)
        workers = len(stack.workers.live)
        exits = sum(stack.workers.exited.values())
    finally:
        await stack.close()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    per_run_kb = (waiting_kb - idle_kb) / n if n else 0.0
    at = " / ".join(f"{marks.get(q, float('nan')):.1f} s" for q in (10, 50, 90, 100))
    lat = "-"
    if latencies:
        lat = f"{pct(latencies, 0.5):.2f} s / {pct(latencies, 0.95):.2f} s"
    rss = f"{mb(idle_kb)} / {mb(waiting_kb)} / {mb(peak_kb)}"
    size = f"{db_before / 2**20:.1f} MB / {db_waiting / 2**20:.1f} MB"
    per_run_db = f"{(db_waiting - db_before) / max(n, 1) / 1024:.1f} kB"
    hit = ", ".join(f"{k} {c}" for k, c in sorted(injected.counts().items())) or "none"
    found = " / ".join(str(ledger.count(k)) for k in ("lost", "duplicated", "stuck", "wrong"))
    figures += [
        ("waiting runs / events", f"{n} / {n} (backlog triage over {len(orgs)} orgs)"),
        ("workers", f"{workers} `durable worker` processes"),
        ("start: first trigger until every run waits", f"{t_waiting:.1f} s"),
        ("start: runs/s", f"{n / t_waiting:.1f}"),
        ("start: 10/50/90/100% waiting at", at),
        ("answers: first send until last result", f"{t_answered:.1f} s"),
        ("answers: events/s", f"{n / t_answered:.1f}"),
        ("answer -> result, p50 / p95", lat),
        ("worker RSS idle / all waiting / peak (sum of workers)", rss),
        ("worker RSS per waiting run", f"{per_run_kb:.1f} kB"),
        ("PostgreSQL database size before / all waiting", size),
        ("PostgreSQL growth per waiting run", per_run_db),
        ("faults during the answers", hit),
        (
            "workflow tasks over 5 s / timed out before completing (worker logs)",
            f"{slow_tasks} / {lost_tasks}",
        ),
        ("lost / duplicated / stuck / wrong", found),
        ("workers that exited on their own", str(exits)),
        ("total time", f"{time.monotonic() - t_all:.1f} s"),
    ]
    print("| figure | value |\n| --- | --- |")
    print("\n".join(f"| {a} | {b} |" for a, b in figures))
    problems = [f"{k}: {line}" for k, lines in ledger.problems.items() for line in lines]
    if problems:
        print("\nProblems:\n")
        print("\n".join(f"- {line}" for line in problems[:40]))
    return 0 if ledger.clean and not injected.failed else 1

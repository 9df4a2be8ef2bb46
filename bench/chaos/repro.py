"""`python -m bench.chaos --repro answer-while-temporal-down`: the minimal reproduction of an
answer that is acknowledged and then never taken.

1. The stack starts (dev server, PostgreSQL, 2 `durable worker`s, the local Linear).
2. The Temporal dev server is SIGKILLed.
3. A backlog-triage trigger is sent through the ingress: it is stored and acknowledged; its
   start is left pending (`receipt.pending`) for the workers' dispatchers.
4. At once its approval is sent: stored and acknowledged too.
5. After `--repro-gap` seconds (default 8) the dev server starts again; a dispatcher starts
   the run, which reaches its wait for `rensei/approval.resolved`.
6. Does the wait take the approval that was acknowledged before it? The store only counts
   events received since the run's start minus CLOCK_SKEW_SECONDS (5 s): the run started
   `gap` seconds after the answer, so with gap > 5 s the approval is not taken, and the run
   waits for its 24 h approval timeout.

`--repro answer-before-first-task` is the same with Temporal up and no worker: the trigger's
run starts at once (the receipt says `started`), the approval is acknowledged after that, and
a worker starts `gap` seconds later. The run did start before the approval, yet its wait does
not take it: the adapter gives the store `workflow.info().start_time` as the run's start, and
in temporalio that is the time of the run's first workflow task, not of its start
(`workflow_start_time`). A first task delayed over 5 s (no worker polling, a worker SIGKILLed
holding it: 10 s task timeout, a backlog) makes every event sent in between invisible to it.

Exits 1 when the acknowledged approval was not taken within 90 s of the run reaching its wait.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import shutil
import tempfile
import time
from pathlib import Path

from ..common import say
from .stack import Stack
from .workload import SHARED_ORG, Spec, Workload


async def answer_while_temporal_down(args: argparse.Namespace) -> int:
    logging.getLogger("asyncpg.pool").setLevel(logging.CRITICAL)
    spec = Spec(args.seed, 0, "triage", 0.0, "chaos-repro", decisions=("approve",))
    root = Path(tempfile.mkdtemp(prefix="chaos-repro-"))
    first_task = args.repro == "answer-before-first-task"
    workers = 0 if first_task else 2
    stack = Stack(root, {SHARED_ORG: "lin_api_chaos", spec.org: "lin_api_repro"}, workers)
    try:
        await stack.start()
        assert stack.workers is not None
        stack.snapshot(spec.org)
        workload = Workload(stack, random.Random(args.seed), deadline=time.monotonic() + 300)
        if first_task:
            say("no worker runs; sending the trigger (its run starts now), then its approval ...")
        else:
            process = stack.temporal._process
            assert process is not None
            process.kill()
            await process.wait()
            say("the dev server is down; sending the trigger, then its approval ...")
        await workload.triage_trigger(spec)
        await workload.answer(spec, 1, "approve", early=True)
        say(f"both acknowledged; waiting {args.repro_gap}s")
        await asyncio.sleep(args.repro_gap)
        if first_task:
            await stack.workers.spawn()  # the run's first workflow task runs only now
        else:
            await stack.temporal.start()
        await workload.until_waiting(spec, "await-approval#1")
        say("the run reached its wait; waiting 90 s for it to take the approval ...")
        conn = await stack.superuser()
        try:
            taken = None
            for _ in range(90):
                taken = await conn.fetchrow(
                    "SELECT state, event_id, not_before, created_at FROM waits"
                    " WHERE workflow_id = $1 AND step_id = 'await-approval#1'",
                    spec.workflow_id,
                )
                if taken is not None and taken["state"] != "open":
                    break
                await asyncio.sleep(1.0)
            received = await conn.fetchval(
                "SELECT received_at FROM events WHERE id = $1", spec.answer_id(1)
            )
        finally:
            await conn.close()
        assert taken is not None
        ok = taken["event_id"] == spec.answer_id(1)
        print(
            f"| repro | {args.repro}, gap {args.repro_gap}s |\n| --- | --- |\n"
            f"| approval received_at | {received} |\n"
            f"| the run's wait: not_before | {taken['not_before']} |\n"
            f"| the wait, 90 s later | {taken['state']}, event {taken['event_id']} |\n"
            f"| verdict | {'taken' if ok else 'LOST: acknowledged, never taken'} |"
        )
        return 0 if ok else 1
    finally:
        await stack.close()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)

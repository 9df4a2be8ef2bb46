"""The step-audit section: what writing a `step_executions` row per step attempt costs.

The same 10-step `durable` workflow runs on two workers of one process against one dev server
and one PostgreSQL: one worker without the audit, one with it. Runs alternate between them, so
both see the same machine. Also counted: PostgreSQL write transactions per audited step
attempt, from the transaction ids used around a batch of audited runs (the goal: at most one).
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

import asyncpg
from temporalio.client import Client

import durable
from adapters.temporal import TemporalDurableClient, build_worker
from store import StepAudit

from .common import Row, say
from .models import Inp
from .workloads_durable import REGISTRY

STEPS = 10
TENANCY = durable.Tenancy(org_id="bench-org")


async def _run(client: TemporalDurableClient, fast: bool) -> float:
    began = time.perf_counter()
    handle = await client.start("bench/steps.run", Inp(steps=STEPS, fast=fast), tenancy=TENANCY)
    await handle.result()
    return (time.perf_counter() - began) * 1000


async def _xid(pool: asyncpg.Pool) -> int:
    """The next transaction id. Every write transaction takes one (this query too); read-only
    ones take none; so the difference counts the write commits in between, exactly."""
    return int(await pool.fetchval("SELECT pg_current_xact_id()::text::bigint"))


async def measure_audit(
    client: Client, pool: asyncpg.Pool, args: argparse.Namespace, label: str
) -> list[Row]:
    queue = f"bench-audit-{uuid.uuid4()}"
    off = TemporalDurableClient(client, REGISTRY, f"{queue}-off", eager_start=True)
    on = TemporalDurableClient(client, REGISTRY, f"{queue}-on", eager_start=True)
    rows: list[Row] = []
    async with (
        build_worker(client, REGISTRY, f"{queue}-off"),
        build_worker(client, REGISTRY, f"{queue}-on", audit=StepAudit(pool)),
    ):
        for fast in (False, True):
            kind = "short step (local activity)" if fast else "step (activity)"
            say(f"[{label}] per {kind} in a {STEPS}-step run, audit off / on ...")
            samples: dict[bool, list[float]] = {False: [], True: []}
            for _ in range(args.ten_samples):
                for audited, target in ((False, off), (True, on)):
                    samples[audited].append(await _run(target, fast) / STEPS)
            rows.append(
                Row(
                    f"{label}: per {kind} in a {STEPS}-step run, median",
                    statistics.median(samples[False]),
                    statistics.median(samples[True]),
                    "ms",
                )
            )
        say(f"[{label}] PostgreSQL commits per audited step attempt ...")
        runs = max(5, args.ten_samples // 2)
        before_rows = await _audit_rows(pool)
        before = await _xid(pool)
        for _ in range(runs):
            await _run(on, fast=False)
        after = await _xid(pool)
        written = await _audit_rows(pool) - before_rows
    commits = after - before - 1  # the first _xid's own transaction
    rows.append(Row(f"{label}: commits per audited step attempt", 0.0, commits / written, ""))
    say(f"[{label}] {written} audit rows, {commits} commits")
    return rows


async def _audit_rows(pool: asyncpg.Pool) -> int:
    async with StepAudit(pool).as_org(TENANCY.org_id) as conn:
        return int(await conn.fetchval("SELECT count(*) FROM step_executions"))

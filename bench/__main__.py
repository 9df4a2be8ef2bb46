"""Raw temporalio vs `durable`, same workload, same dev server, one process.

    python -m bench                 # full run (a few minutes)
    python -m bench --quick         # smaller samples
    python -m bench --events-only   # only the events section (send_event -> resume, burst)
    python -m bench --auth-only     # only events over HTTP, API-key check on vs off

Prints a markdown table to stdout (and bench/results/latest.md); progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
from temporalio.client import Client
from temporalio.worker import Worker

from adapters.temporal import TemporalDurableClient, build_worker, ensure_search_attributes
from store import create_pool, migrate
from workers.embedded import EmbeddedPostgres, EmbeddedTemporal, free_port

from .audit import measure_audit
from .auth import AuthResult, measure_auth
from .auth import report as auth_report
from .common import Row, pct, say
from .events import Verdict, measure_events
from .models import Inp
from .workloads_durable import REGISTRY
from .workloads_raw import RawSteps, raw_step

RESULTS = Path(__file__).parent / "results"
Start = Callable[[Inp], Awaitable[None]]


def starters(
    client: Client, queue: str, eager: bool, search_attributes: bool
) -> tuple[Start, Start]:
    durable = TemporalDurableClient(
        client, REGISTRY, f"{queue}-durable", eager_start=eager, search_attributes=search_attributes
    )

    async def raw(inp: Inp) -> None:
        await client.execute_workflow(
            RawSteps.run,
            inp,
            id=f"raw-{uuid.uuid4()}",
            task_queue=f"{queue}-raw",
            request_eager_start=eager,
        )

    async def ours(inp: Inp) -> None:
        await (await durable.start("bench/steps.run", inp)).result()

    return raw, ours


async def latencies(
    raw: Start, ours: Start, inp: Inp, samples: int
) -> tuple[list[float], list[float]]:
    """Alternate raw and durable runs so drift hits both alike; milliseconds."""
    for start in (raw, ours):  # warm-up
        await start(inp)
    out: tuple[list[float], list[float]] = ([], [])
    for _ in range(samples):
        for start, bucket in ((raw, out[0]), (ours, out[1])):
            begin = time.perf_counter()
            await start(inp)
            bucket.append((time.perf_counter() - begin) * 1000)
    return out


async def throughput(start: Start, inp: Inp, runs: int) -> float:
    begin = time.perf_counter()
    await asyncio.gather(*(start(inp) for _ in range(runs)))
    return runs / (time.perf_counter() - begin)


async def measure(client: Client, args: argparse.Namespace, label: str) -> list[Row]:
    queue = f"bench-{uuid.uuid4()}"
    rows: list[Row] = []
    worker = Worker(client, task_queue=f"{queue}-raw", workflows=[RawSteps], activities=[raw_step])
    async with worker, build_worker(client, REGISTRY, f"{queue}-durable"):
        for eager in (True, False):
            raw, ours = starters(client, queue, eager, search_attributes=True)
            tag = "eager start" if eager else "plain start"
            for fast in (False, True):
                kind = "short step (local activity)" if fast else "step (activity)"
                say(f"[{label}] 1-step latency, {kind}, {tag} ...")
                one = await latencies(raw, ours, Inp(steps=1, fast=fast), args.samples)
                rows += [
                    Row(f"{label}: 1 {kind}, {tag}, p50", pct(one[0], 0.5), pct(one[1], 0.5), "ms"),
                    Row(
                        f"{label}: 1 {kind}, {tag}, p95", pct(one[0], 0.95), pct(one[1], 0.95), "ms"
                    ),
                ]
                if not eager:
                    continue
                say(f"[{label}] 10-step latency, {kind} ...")
                ten = await latencies(raw, ours, Inp(steps=10, fast=fast), args.ten_samples)
                raw_step_ms, ours_step_ms = (
                    (statistics.median(ten[i]) - statistics.median(one[i])) / 9 for i in (0, 1)
                )
                rows.append(
                    Row(f"{label}: per {kind} in a 10-step run", raw_step_ms, ours_step_ms, "ms")
                )
        raw, ours = starters(client, queue, True, search_attributes=True)
        say(f"[{label}] throughput, {args.runs} concurrent 3-step runs ...")
        rate_raw = await throughput(raw, Inp(steps=3), args.runs)
        rate_ours = await throughput(ours, Inp(steps=3), args.runs)
        rows.append(
            Row(f"{label}: {args.runs} concurrent 3-step runs", rate_raw, rate_ours, "runs/s")
        )
        _, plain = starters(client, queue, True, search_attributes=False)
        rate_plain = await throughput(plain, Inp(steps=3), args.runs)
        rows.append(
            Row(
                f"{label}: same, durable without search-attribute upserts",
                rate_raw,
                rate_plain,
                "runs/s",
            )
        )
    return rows


async def main(args: argparse.Namespace) -> int:
    rows: list[Row] = []
    audit_rows: list[Row] = []
    verdicts: list[Verdict] = []
    auth: AuthResult | None = None
    variants = {"wal": True, "default": False}
    async with contextlib.AsyncExitStack() as stack:
        pool = None
        if args.events or args.audit or args.auth_only:
            pool = await stack.enter_async_context(embedded_postgres())
        for index, name in enumerate(args.sqlite):
            with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
                server = EmbeddedTemporal(
                    port=free_port(),
                    db_file=Path(tmp) / "temporal.sqlite",
                    fast_sqlite=variants[name],
                )
                say(f"starting a dev server (SQLite file, pragmas: {name}) ...")
                await server.start()
                try:
                    client = await server.connect()
                    await ensure_search_attributes(client, create=True)
                    if not args.events_only and not args.auth_only:
                        rows += await measure(client, args, f"sqlite {name}")
                    if pool is not None and index == 0:  # first server only
                        if args.events and not args.auth_only:
                            more, verdicts = await measure_events(
                                client, pool, args, f"events, sqlite {name}"
                            )
                            rows += more
                        if args.events and args.auth:
                            auth = await measure_auth(
                                client, pool, args, f"events over HTTP, sqlite {name}"
                            )
                            verdicts += auth.verdicts
                        if args.audit and not args.events_only and not args.auth_only:
                            audit_rows += await measure_audit(
                                client, pool, args, f"audit, sqlite {name}"
                            )
                finally:
                    await server.stop()
    report = ""
    if rows:
        report = "\n".join(
            [
                "| figure | raw temporalio | durable | ratio |",
                "| --- | --- | --- | --- |",
                *(row.line() for row in rows),
            ]
        )
    if auth is not None:
        report += "\n\n" if report else ""
        report += "Events over HTTP, API-key check on vs off (the same org, the same runs):\n\n"
        report += auth_report(auth)
    if audit_rows:
        report += "\n\nStep audit (baseline: the same durable workflow without the audit):\n\n"
        report += "\n".join(
            [
                "| figure | audit off | audit on | ratio |",
                "| --- | --- | --- | --- |",
                *(row.line() for row in audit_rows[:-1]),
                f"| {audit_rows[-1].figure} | - | {audit_rows[-1].durable:.2f} | - |",
            ]
        )
    if verdicts:
        report += "\n\nEvents burst, verified after the run:\n\n"
        report += "\n".join(f"- {verdict.line()}" for verdict in verdicts)
    print(report)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.md").write_text(report + "\n")
    failed = [v for v in verdicts if v.lost or v.duplicated]
    for verdict in failed:
        say(f"{verdict.side}: {len(verdict.problems)} problems, the first ones:")
        for problem in verdict.problems[:20]:
            say(f"  {problem}")
    return 1 if failed else 0


@contextlib.asynccontextmanager
async def embedded_postgres() -> AsyncIterator[asyncpg.Pool]:
    """An embedded PostgreSQL in a temporary directory, migrated, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="bench-pg-") as tmp:
        say("starting an embedded PostgreSQL ...")
        # platformdirs (under embedded-postgres) warns when XDG_RUNTIME_DIR is unset; harmless.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        postgres = EmbeddedPostgres(Path(tmp) / "pg", delete_on_stop=True)
        try:
            pool = await create_pool(await postgres.start())
            try:
                await migrate(pool)
                yield pool
            finally:
                await pool.close()
        finally:
            await postgres.stop()


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small samples, for a smoke run")
    parser.add_argument("--samples", type=int, default=80, help="1-step runs per figure")
    parser.add_argument("--ten-samples", type=int, default=25, help="10-step runs per figure")
    parser.add_argument("--runs", type=int, default=500, help="concurrent runs for throughput")
    parser.add_argument(
        "--sqlite",
        nargs="+",
        choices=["wal", "default"],
        default=["wal", "default"],
        help="dev server SQLite pragmas: wal = journal_mode=wal, synchronous=normal "
        "(the events section runs on the first one only)",
    )
    parser.add_argument(
        "--event-samples", type=int, default=500, help="send_event -> resume runs per side"
    )
    parser.add_argument(
        "--burst", type=int, default=1000, help="waiting runs and events in the burst, per side"
    )
    parser.add_argument(
        "--burst-concurrency", type=int, default=50, help="events sent at once in the burst"
    )
    parser.add_argument(
        "--auth-burst",
        type=int,
        default=250,
        help="waiting runs and events per burst, auth section",
    )
    parser.add_argument(
        "--auth-rounds",
        type=int,
        default=2,
        help="rounds of 4 bursts (no auth, key, key, no auth) in the auth section",
    )
    parser.add_argument(
        "--auth-calls", type=int, default=20000, help="Authenticator.principal calls, cached key"
    )
    parser.add_argument(
        "--auth-db-calls",
        type=int,
        default=500,
        help="Authenticator.principal calls, uncached key (one PostgreSQL lookup each)",
    )
    sections = parser.add_mutually_exclusive_group()
    sections.add_argument(
        "--no-events", dest="events", action="store_false", help="skip the events section"
    )
    sections.add_argument(
        "--events-only", action="store_true", help="only the events section (no step figures)"
    )
    sections.add_argument(
        "--auth-only",
        action="store_true",
        help="only events over HTTP with the API-key check on vs off (first --sqlite only)",
    )
    parser.add_argument(
        "--no-auth",
        dest="auth",
        action="store_false",
        help="skip events over HTTP, key check on vs off, in the events section",
    )
    parser.add_argument(
        "--no-audit", dest="audit", action="store_false", help="skip the step-audit section"
    )
    args = parser.parse_args()
    if args.quick:
        args.samples, args.ten_samples, args.runs = 15, 5, 100
        args.event_samples, args.burst = 50, 100
        args.auth_calls, args.auth_db_calls = 2000, 100
        args.auth_burst, args.auth_rounds = 100, 1
    if args.auth_only:
        if not args.auth:
            parser.error("--auth-only and --no-auth exclude each other")
        args.sqlite = args.sqlite[:1]  # the section runs on the first dev server only
    return args


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse())))

"""python -m bench.chaos: a seeded chaos run against real `durable worker` processes.

A mixed workload of shipped workflows (the example run with steps, sleeps and a child run; the
agent-session demo; the backlog-triage PM agent against the local Linear, answered by approval
events through the product's ingress) runs on N `durable worker` subprocesses, one Temporal dev
server (SQLite file) and one embedded PostgreSQL. At moments drawn from the seed a worker is
SIGKILLed (and another started), the dev server is SIGKILLed and started again on its port and
file, PostgreSQL is stopped hard and started again; events are sent twice with one id and
answers are sent before their run reaches its wait. At the end a ledger check: every
acknowledged event stored once and taken once, every run in the state its inputs call for, every
side effect (notes, agent sessions, Linear issues and comments) exactly once, nothing stuck.

Prints a markdown table to stdout (progress goes to stderr); exits 1 on any lost, duplicated,
stuck or wrong-state finding, or a fault that could not be injected.

    python -m bench.chaos                       # seed 1: 24 runs, 6 faults over 60 s
    python -m bench.chaos --seed 7 --runs 36 --faults 9 --duration 90
    python -m bench.chaos --big --events 1000   # scale: N waiting runs answered by N events
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from ..common import say
from .run import Config, chaos


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chaos",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--seed", type=int, default=1, help="what the faults and runs are drawn from"
    )
    parser.add_argument(
        "--runs", type=int, default=24, help="runs in the mixed workload, a third of each kind"
    )
    parser.add_argument(
        "--faults",
        type=int,
        default=None,
        help="infrastructure faults, the first 3 one of each kind (default 6; with --big 0, "
        "else injected while the answers go out)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=60.0,
        help="seconds the faults are spread over; runs start in the first 80%% of it",
    )
    parser.add_argument("--workers", type=int, default=2, help="`durable worker` processes")
    parser.add_argument(
        "--deadline",
        type=float,
        default=240.0,
        help="seconds after --duration by which every run must have ended (else: stuck)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the run's directory and logs")
    parser.add_argument(
        "--big",
        action="store_true",
        help="the scale setting: --events waiting runs answered by as many events",
    )
    parser.add_argument(
        "--events",
        type=int,
        default=10_000,
        help="with --big: waiting runs, and events answering them (default 10000)",
    )
    parser.add_argument(
        "--orgs", type=int, default=20, help="with --big: orgs the waiting runs are spread over"
    )
    parser.add_argument(
        "--concurrency", type=int, default=50, help="with --big: events sent at once"
    )
    parser.add_argument(
        "--repro",
        choices=["answer-while-temporal-down", "answer-before-first-task"],
        help="run one minimal reproduction of a finding instead (see bench/chaos/repro.py)",
    )
    parser.add_argument(
        "--repro-gap",
        type=float,
        default=8.0,
        help="with --repro: seconds between the acknowledged answer and the run's start",
    )
    args = parser.parse_args(argv)
    if args.faults is None:
        args.faults = 0 if args.big else 6
    if args.workers < 1 or args.runs < 0 or args.faults < 0:
        parser.error("--workers must be at least 1; --runs and --faults not negative")
    return args


async def main(args: argparse.Namespace) -> int:
    if args.repro:
        from .repro import answer_while_temporal_down

        repro: int = await answer_while_temporal_down(args)
        return repro
    if args.big:
        from .big import big

        code: int = await big(args)
        return code
    config = Config(
        seed=args.seed,
        runs=args.runs,
        faults=args.faults,
        duration=args.duration,
        workers=args.workers,
        deadline=args.deadline,
        keep=args.keep,
    )
    report = await chaos(config)
    print(report.table())
    problems = report.problems()
    if problems:
        print("\nProblems:\n")
        print("\n".join(f"- {line}" for line in problems))
    if report.directory:
        say(f"kept: {report.directory}")
    return 0 if report.clean else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse())))

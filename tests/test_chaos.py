"""The chaos run, shortened: one fixed seed, 8 runs of the shipped workflows (example runs with
a child run and sleeps, agent-session demos, backlog-triage PM runs against the local Linear
answered by approval events), on 2 `durable worker` subprocesses, while one worker is
SIGKILLed, every worker is SIGKILLed while a Linear write is made but not yet answered, the
Temporal dev server is SIGKILLed and started again, and PostgreSQL is stopped hard and started
again; triggers and answers are sent twice with one id and answers are sent
before their run waits. The ledger must be clean: nothing lost, duplicated, stuck or wrong.

Everything it starts (dev server, PostgreSQL on a Unix socket, the local Linear, the workers)
is its own, on 127.0.0.1, stopped and removed before it returns (`bench/chaos/run.py`).
`python -m bench.chaos` is the full-size run; bench/README.md ("Chaos") says what it checks.
"""

from __future__ import annotations

import pytest

from bench.chaos.run import Config, chaos

# Seed 20: three triage runs: an early answer with its trigger sent twice at once; a revise
# round with its trigger and both answers sent twice at once; a rejection sent again later.
# PostgreSQL restarts at 3.6 s; every worker is killed mid-Linear-write from 9.9 s on; one
# worker is killed at 15.6 s; Temporal restarts at 20.2 s.
SEED = 20


@pytest.mark.timeout(300)
async def test_a_short_seeded_chaos_run_leaves_a_clean_ledger() -> None:
    report = await chaos(Config(seed=SEED, runs=8, faults=4, duration=30.0, deadline=150.0))
    print(report.table())
    assert report.problems() == []
    assert report.clean
    assert report.injected.counts() == {
        "worker-kill": 1,
        "temporal-restart": 1,
        "postgres-restart": 1,
        "linear-write-crash": 1,
    }
    assert report.tricks["duplicate send"] >= 4
    assert report.tricks["answer before its wait"] >= 1, "an answer reached the store first"
    assert report.kinds == {"triage": 3, "example": 3, "demo": 2}
    assert report.ledger.checked["runs"] == 8
    assert report.ledger.checked["linear orgs"] == 3
    assert report.ledger.checked["session events"] >= 2 * 6  # a request and a completion each

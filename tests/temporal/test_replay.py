"""Replay the example workflow's recorded history: today's code must take the same path as the
code that recorded it, and a change that would break runs in flight must be caught here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHistory
from temporalio.workflow import NondeterminismError

from adapters.temporal import load_history, replay
from durable import DurableWorkflow, Registry
from workflows import registry

from . import example_variants

HISTORIES = Path(__file__).parent.parent / "histories"


def histories() -> list[WorkflowHistory]:
    index: dict[str, str] = json.loads((HISTORIES / "index.json").read_text())
    return [load_history((HISTORIES / name).read_text(), run_id) for name, run_id in index.items()]


def with_example(variant: DurableWorkflow[Any, Any]) -> Registry:
    others = [wf for wf in registry().workflows if wf.id != variant.id]
    return Registry([variant, *others])


async def test_current_code_replays_the_recorded_history() -> None:
    await replay(registry(), histories())


async def test_reordering_steps_is_caught_as_nondeterminism() -> None:
    with pytest.raises(NondeterminismError):
        await replay(with_example(example_variants.reordered), histories()[:1])


async def test_a_patched_branch_keeps_old_runs_replayable() -> None:
    await replay(with_example(example_variants.patched), histories()[:1])

"""Conformance: the semantics every provider of `durable` must keep."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

import durable
from durable import RunStatus

from .conftest import Provider
from .workflows import ATTEMPT_TIMES, CALLS, EVENTS, REGISTRY, Key, Outcome


def key() -> str:
    return str(uuid.uuid4())


async def wait_for(predicate: Any, what: str, timeout: float = 20.0) -> None:
    for _ in range(int(timeout / 0.1)):
        if predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def test_completed_steps_never_run_again_across_worker_restart(provider: Provider) -> None:
    k = key()
    async with provider.running(REGISTRY) as client:
        handle = await client.start("conformance/memo.run", Key(key=k, fail_times=1, seconds=3))
        await wait_for(lambda: CALLS[(k, "effect")] == 1, "the first step")
    # The first worker is gone while the run sleeps; a new one replays the run from history.
    async with provider.running(REGISTRY):
        out = await handle.result()
    assert out.values == [1, 2, 2], "first step ran once; second failed once then succeeded"
    assert CALLS[(k, "effect")] == 1, "a completed step ran again after the worker restarted"
    assert CALLS[(k, "flaky")] == 2


async def test_step_that_exhausts_attempts_raises_step_failed(provider: Provider) -> None:
    k = key()
    async with provider.running(REGISTRY) as client:
        handle = await client.start("conformance/catch-failure.run", Key(key=k, fail_times=99))
        out = await handle.result()
    assert out.step_id == "doomed"
    assert out.attempts == 3
    assert "boom (attempt 3)" in out.cause
    assert CALLS[(k, "flaky")] == 3, "the step was tried exactly max_attempts times"


async def test_uncaught_step_failure_fails_the_run_with_a_readable_message(
    provider: Provider,
) -> None:
    k = key()
    async with provider.running(REGISTRY) as client:
        handle = await client.start("conformance/uncaught-failure.run", Key(key=k, fail_times=99))
        with pytest.raises(durable.WorkflowFailed) as failed:
            await handle.result()
        desc = await handle.describe()
    assert "step 'doomed' failed after 2 attempts" in str(failed.value)
    assert failed.value.cause_type == "StepFailed"
    assert desc.status is RunStatus.FAILED
    assert desc.failure is not None and "doomed" in desc.failure


async def test_non_retryable_business_error_fails_the_step_at_once(provider: Provider) -> None:
    k = key()
    async with provider.running(REGISTRY) as client:
        out = await (await client.start("conformance/business-error.run", Key(key=k))).result()
    assert (out.step_id, out.attempts) == ("submit", 1)
    assert out.cause == "rejected: boom"
    assert CALLS[(k, "business-error")] == 1


async def test_a_step_told_when_to_retry_waits_that_long(provider: Provider) -> None:
    k = key()
    async with provider.running(REGISTRY) as client:
        out = await (
            await client.start("conformance/retry-after.run", Key(key=k, seconds=2))
        ).result()
    assert out.attempts == 2
    first, second = ATTEMPT_TIMES[k]
    # The policy alone would have retried after 50 ms.
    assert second - first >= 1.9, "the retry waited for the time the step was given"


async def test_long_sleeps_are_durable_timers(skipping_provider: Provider) -> None:
    async with skipping_provider.running(REGISTRY) as client:
        out: Outcome = await (await client.start("conformance/sleep.run", Key(key=key()))).result()
    # 3 days, then 1 more, as the run's own clock saw it: the timers really elapsed.
    assert out.elapsed_seconds >= 4 * 86400


async def test_invoke_runs_a_child_workflow_and_reports_its_failure(provider: Provider) -> None:
    async with provider.running(REGISTRY) as client:
        handle = await client.start("conformance/parent.run", {"key": key(), "n": 21})
        out = await handle.result()
    assert out.doubled == 42
    assert out.failed_step == "double-fails"
    assert "child said no" in out.cause
    assert out.child_ids[0].startswith(handle.workflow_id) and out.child_ids[0].endswith(":double")


async def test_parallel_steps_run_at_the_same_time(provider: Provider) -> None:
    k = key()
    async with provider.running(REGISTRY) as client:
        out = await (await client.start("conformance/parallel.run", Key(key=k))).result()
    assert out.values == [1, 2, 3]


async def test_duplicate_step_id_fails_the_run_with_a_clear_error(provider: Provider) -> None:
    k = key()
    async with provider.running(REGISTRY) as client:
        handle = await client.start("conformance/duplicate.run", Key(key=k))
        with pytest.raises(durable.WorkflowFailed) as failed:
            await handle.result()
    assert "step id 'same' was already used in this run" in str(failed.value)
    assert failed.value.cause_type == "DuplicateStepId"
    assert CALLS[(k, "effect")] == 1, "the second use of the id must not run anything"


async def test_indexed_step_ids_repeat_a_step_in_a_loop(provider: Provider) -> None:
    k = key()
    async with provider.running(REGISTRY) as client:
        out = await (await client.start("conformance/indexed.run", Key(key=k))).result()
    assert out.values == [1, 2, 3]


async def test_cancellation_reaches_the_running_step_and_cleanup_runs(provider: Provider) -> None:
    k = key()
    async with provider.running(REGISTRY) as client:
        handle = await client.start("conformance/cancellable.run", Key(key=k, seconds=60))
        await wait_for(lambda: CALLS[(k, "long-started")] == 1, "the long step to start")
        desc = await handle.describe()
        assert desc.status is RunStatus.RUNNING and desc.current_steps == ["long"]
        await handle.cancel("test says stop")
        with pytest.raises(durable.RunCancelled):
            await handle.result()
        assert (await handle.describe()).status is RunStatus.CANCELLED
    assert EVENTS[k] == ["long-started", "long-cancelled-cleanup", "cleanup"]
    assert CALLS[(k, "long-finished")] == 0


async def test_describe_shows_a_sleeping_run(provider: Provider) -> None:
    k = key()
    async with provider.running(REGISTRY) as client:
        handle = await client.start("conformance/memo.run", Key(key=k, seconds=30))
        await wait_for(lambda: CALLS[(k, "effect")] == 1, "the first step")
        for _ in range(50):
            desc = await handle.describe()
            if desc.status is RunStatus.SLEEPING:
                break
            await asyncio.sleep(0.1)
        await handle.cancel()
    assert desc.status is RunStatus.SLEEPING
    assert desc.current_steps == ["pause"]
    assert desc.waiting_on is not None and "pause" in desc.waiting_on
    assert desc.completed_steps == 1


async def test_bad_input_is_rejected_before_anything_starts(provider: Provider) -> None:
    async with provider.running(REGISTRY) as client:
        with pytest.raises(durable.InputValidationError) as bad:
            await client.start("conformance/memo.run", {"key": 5, "fail_times": "many"})
    assert "fail_times" in str(bad.value) and "valid integer" in str(bad.value)


async def test_unknown_workflow_names_the_registered_ones(provider: Provider) -> None:
    async with provider.running(REGISTRY) as client:
        with pytest.raises(durable.UnknownWorkflow) as unknown:
            await client.start("conformance/nope.run", {})
    assert "conformance/memo.run" in str(unknown.value)


async def test_unknown_run_is_a_clear_error(provider: Provider) -> None:
    async with provider.running(REGISTRY) as client:
        with pytest.raises(durable.UnknownRun):
            await client.get(f"no-such-run-{key()}").describe()


async def test_a_bad_duration_fails_the_run_saying_why(provider: Provider) -> None:
    async with provider.running(REGISTRY) as client:
        handle = await client.start("conformance/bad-duration.run", Key(key=key()))
        with pytest.raises(durable.WorkflowFailed) as failed:
            await handle.result()
    assert "cannot read '3 fortnights' as a duration" in str(failed.value)


async def test_patched_is_true_for_new_runs(provider: Provider) -> None:
    async with provider.running(REGISTRY) as client:
        out = await (await client.start("conformance/patched.run", Key(key=key()))).result()
    assert out.flag is True


async def test_starting_the_same_run_id_twice_is_refused(provider: Provider) -> None:
    run_id = f"dup-{key()}"
    async with provider.running(REGISTRY) as client:
        await client.start("conformance/memo.run", Key(key=key(), seconds=5), id=run_id)
        with pytest.raises(durable.RunAlreadyStarted):
            await client.start("conformance/memo.run", Key(key=key()), id=run_id)
        await client.get(run_id).cancel()

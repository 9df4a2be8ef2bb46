"""The Linear steps inside real workflow runs (real dev server, the local Linear server):
rate limits wait for the reset, bad credentials fail at once, and a worker killed after a
create leaves exactly one issue and one comment."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time

import pytest
from temporalio.client import Client

import durable
from activities.linear.local_server import LocalLinear
from adapters.temporal import TemporalDurableClient, build_worker
from workers.embedded import EmbeddedTemporal

from .conftest import TEST_KEY, TEST_ORG
from .worker import registry
from .workflows import FileIssue

ACME = durable.Tenancy(org_id=TEST_ORG)


async def eng_team(server: LocalLinear) -> str:
    team: str = server.state()["teams"][0]["id"]
    return team


def keys(key: str = TEST_KEY) -> str:
    return json.dumps({TEST_ORG: key})


async def test_a_rate_limited_step_retries_after_the_reset_and_succeeds(
    dev_client: Client, local_linear: LocalLinear, task_queue: str
) -> None:
    local_linear.rate_limit(
        times=1, form="ratelimited400", reset_in_seconds=2, operation="CreateIssue"
    )
    reg = registry(local_linear.url, keys())
    async with build_worker(dev_client, reg, task_queue):
        client = TemporalDurableClient(dev_client, reg, task_queue)
        began = time.monotonic()
        handle = await client.start(
            "tests/linear-file.run",
            FileIssue(team_id=await eng_team(local_linear), title="Rate limited once"),
            tenancy=ACME,
        )
        out = await handle.result()
    assert time.monotonic() - began >= 1.8, "the retry waited for Linear's reset"
    assert local_linear.calls("CreateIssue") == 2
    titles = [i["title"] for i in local_linear.state()["issues"]]
    assert titles.count("Rate limited once") == 1 and out.identifier == "ENG-11"


async def test_bad_credentials_fail_the_step_at_once_naming_the_org(
    dev_client: Client, local_linear: LocalLinear, task_queue: str
) -> None:
    local_linear.revoke(TEST_KEY)
    reg = registry(local_linear.url, keys())
    async with build_worker(dev_client, reg, task_queue):
        client = TemporalDurableClient(dev_client, reg, task_queue)
        handle = await client.start(
            "tests/linear-file.run",
            FileIssue(team_id=await eng_team(local_linear), title="Never made"),
            tenancy=ACME,
        )
        with pytest.raises(durable.WorkflowFailed) as raised:
            await handle.result()
    message = str(raised.value)
    assert "step 'create-issue' failed after 1 attempt" in message
    assert "credentials configured for org 'org-acme'" in message
    assert TEST_KEY not in message
    assert local_linear.calls("CreateIssue") == 1, "no retry"


async def test_a_run_without_an_org_is_told_why_it_has_no_credential(
    dev_client: Client, local_linear: LocalLinear, task_queue: str
) -> None:
    reg = registry(local_linear.url, keys())
    async with build_worker(dev_client, reg, task_queue):
        client = TemporalDurableClient(dev_client, reg, task_queue)
        handle = await client.start("tests/linear-file.run", FileIssue(team_id="t", title="No org"))
        with pytest.raises(durable.WorkflowFailed, match="belongs to no org"):
            await handle.result()
    assert local_linear.calls("CreateIssue") == 0


async def test_a_worker_killed_after_a_create_leaves_one_issue_and_one_comment(
    dev_server: EmbeddedTemporal, dev_client: Client, local_linear: LocalLinear, task_queue: str
) -> None:
    # Linear makes the issue, then holds its answer back; the worker dies meanwhile.
    local_linear.slow(times=1, seconds=30, operation="CreateIssue", after=True)
    env = dict(
        os.environ,
        TEMPORAL_ADDRESS=dev_server.address,
        DURABLE_TASK_QUEUE=task_queue,
        LINEAR_API_URL=local_linear.url,
        LINEAR_API_KEYS=keys(),
    )
    spawn = [sys.executable, "-m", "tests.linear.worker"]
    reg = registry(local_linear.url, keys())
    client = TemporalDurableClient(dev_client, reg, task_queue)
    first = await asyncio.create_subprocess_exec(
        *spawn, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        handle = await client.start(
            "tests/linear-file.run",
            FileIssue(team_id=await eng_team(local_linear), title="Made before the crash"),
            tenancy=ACME,
        )
        for _ in range(300):
            if len(local_linear.state()["issues"]) == 11:
                break
            await asyncio.sleep(0.1)
        assert len(local_linear.state()["issues"]) == 11, "the create reached Linear"
        first.send_signal(signal.SIGKILL)
        await first.wait()
    finally:
        if first.returncode is None:
            first.kill()
            await first.wait()
    second = await asyncio.create_subprocess_exec(
        *spawn, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        out = await asyncio.wait_for(handle.result(), 90)
    finally:
        second.send_signal(signal.SIGTERM)
        await second.wait()
    state = local_linear.state()
    titles = [i["title"] for i in state["issues"]]
    assert titles.count("Made before the crash") == 1, "the retry found the issue it had made"
    assert [c["id"] for c in state["comments"]] == [out.comment_id]
    assert local_linear.calls("CreateIssue") == 2, "the step did run twice"


def test_linear_credentials_come_from_settings_and_bad_ones_stop_the_process() -> None:
    from pydantic import ValidationError

    from workers.runtime import linear_steps
    from workers.settings import Settings

    assert linear_steps(Settings()) is None, "nothing configured: no Linear steps"
    configured = Settings(LINEAR_API_KEYS=json.dumps({"org-acme": "lin_api_secret"}))
    assert linear_steps(configured) is not None
    with pytest.raises(ValidationError) as raised:
        Settings(LINEAR_API_KEYS="lin_api_secret")
    assert "JSON object" in str(raised.value) and "lin_api_secret" not in str(raised.value)

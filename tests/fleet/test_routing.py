"""Routing agent sessions over two worker daemons (real `durable fleet worker` processes, each on
its own pool) against the dev server: what a platform engineer sees in `durable session` and
`durable fleet status` as pools fill, workers die and routes change."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from datetime import timedelta

import pytest

from durable import StepFailed, Tenancy
from workflows.agents import AgentSessionRequested, SessionRequest, session_id_for

from .conftest import Fleet

pytestmark = pytest.mark.timeout(300)


async def test_preferred_then_allowed_a_lost_worker_s_session_moves_and_forbidden_is_never_used(
    fleet: Fleet,
) -> None:
    store = fleet.store
    await store.create_pool(fleet.org, "pool-a", "local")
    await store.create_pool(fleet.org, "pool-b", "local")
    await store.set_route(fleet.org, fleet.project, preferred=["pool-a"], allowed=["pool-b"])
    async with fleet.running() as client:
        a = await fleet.daemon("pool-a")
        b = await fleet.daemon("pool-b")

        # The preferred pool has a free slot: the session goes there.
        first_run = await fleet.dispatch(work_seconds=12)
        first = await fleet.session_of(first_run)
        placed = await fleet.until(first, "running on pool pool-a")
        assert (placed.pool, placed.worker_id) == ("pool-a", a.worker_id)

        # pool-a's one slot is taken: the next session goes to the allowed pool.
        second_run = await fleet.dispatch()
        second_out = await client.get(second_run).result()
        assert second_out.status == "completed"
        second = await fleet.session(second_out.session_id)
        assert (second.pool, second.worker_id) == ("pool-b", b.worker_id)
        assert second.placement == f"ran on pool pool-b, worker {b.worker_id}"
        assert second.progress, "its progress lines came back through the API"

        # The worker running the first session dies: once Temporal sees its heartbeats stop,
        # the session is placed again, on pool-b, and completes there; the dead worker is
        # offline at once (well inside the 60 s grace period).
        a.kill()
        first_out = await client.get(first_run).result()
        assert first_out.status == "completed", first_out.error
        moved = await fleet.session(first)
        assert (moved.pool, moved.worker_id) == ("pool-b", b.worker_id)
        assert {p.attempt for p in moved.progress} == {1, 2}, "both claims' lines are kept"
        assert moved.progress[-1].line == "done" and moved.progress[-1].attempt == 2
        dead = await store.worker(a.worker_id, org_id=fleet.org)
        assert dead is not None and dead.status == "offline"

        # pool-b is now forbidden and pool-a has no live worker: the session waits, visibly,
        # and never runs on the live forbidden pool.
        await store.set_route(fleet.org, fleet.project, preferred=["pool-a"], forbidden=["pool-b"])
        third_run = await fleet.dispatch()
        third = await fleet.session_of(third_run)
        waiting = await fleet.until(third, "waiting for capacity in pools pool-a")
        await asyncio.sleep(3)
        still = await fleet.session(third)
        assert still.placement == waiting.placement and still.pool == ""
        assert still.progress == [] and still.worker_id == ""
        described = await client.get(third).describe()  # what `durable status` prints
        assert described.current_steps == ["route"]
        [retrying] = described.retrying
        assert retrying.startswith("route (attempt ")
        assert retrying.endswith("): WaitingForCapacity: waiting for capacity in pools pool-a")

        # A worker comes back on pool-a: the waiting session runs there.
        a2 = await fleet.daemon("pool-a")
        third_out = await client.get(third_run).result()
        assert third_out.status == "completed"
        assert (await fleet.session(third)).worker_id == a2.worker_id

        # The CLI's fleet status shows it all.
        status = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "from cli.main import main; main()",
            "fleet",
            "status",
            "--org",
            fleet.org,
            "--project",
            fleet.project,
            "--json",
            env={**os.environ, "DATABASE_URL": fleet.database_url},
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await status.communicate()
        shown = json.loads(out)
        by_id = {w["id"]: w for w in shown["workers"]}
        assert by_id[a.worker_id]["status"] == "offline"
        assert by_id[b.worker_id]["status"] == "online"
        assert by_id[a2.worker_id]["status"] == "online"
        assert shown["route"]["forbidden"] == ["pool-b"]

        # SIGTERM: the daemon drains, deregisters and exits 0.
        assert await b.stop() == 0
        gone = await store.worker(b.worker_id, org_id=fleet.org)
        assert gone is not None and gone.status == "deregistered"


async def test_host_session_auth_fails_pre_flight_on_a_route_with_only_cloud_pools(
    fleet: Fleet,
) -> None:
    await fleet.store.create_pool(fleet.org, "sandbox", "e2b")
    await fleet.store.set_route(fleet.org, fleet.project, preferred=["sandbox"])
    async with fleet.running() as client:
        receipt = await client.send_event(
            AgentSessionRequested(
                data=SessionRequest(
                    prompt="triage", project=fleet.project, auth_mode="host-session"
                ),
                tenancy=Tenancy(org_id=fleet.org),
            )
        )
        out = await client.get(session_id_for(receipt.id)).result()
    assert out.status == "failed"
    assert out.error == (
        "auth mode 'host-session' runs only on local pools, and project 'atlas''s route offers "
        "none (it offers: sandbox (e2b))"
    )


async def test_legacy_sandbox_settings_become_a_pool_and_a_route(fleet: Fleet) -> None:
    store = fleet.store
    await store.set_legacy_sandbox(fleet.org, "old", "docker", "on-demand", "cred-7")
    route = await store.route(fleet.org, "old")
    again = await store.route(fleet.org, "old")
    pools = await store.pools(fleet.org)
    assert [(p.name, p.provider, p.mode, p.credential_ref) for p in pools] == [
        ("legacy-docker-on-demand", "docker", "on-demand", "cred-7")
    ]
    assert route is not None and again is not None
    assert route.preferred == again.preferred == [pools[0].id] and route.legacy
    async with fleet.running() as client:
        fleet.project = "old"
        run_id = await fleet.dispatch()
        session = await fleet.session_of(run_id)
        await fleet.until(session, "waiting for capacity in pools legacy-docker-on-demand")
        await client.get(run_id).cancel()


async def test_the_daemon_refreshes_its_jwt_and_stops_when_its_registration_is_revoked(
    fleet: Fleet,
) -> None:
    fleet.jwt_ttl = timedelta(seconds=3)  # refreshed every 2 s
    await fleet.store.create_pool(fleet.org, "pool-a", "local")
    await fleet.store.set_route(fleet.org, fleet.project, preferred=["pool-a"])
    async with fleet.running() as client:
        daemon = await fleet.daemon("pool-a")
        for _ in range(100):
            if sum("runtime JWT refreshed" in line for line in daemon.log) >= 2:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"no refresh: {daemon.log[-5:]}")
        # Sessions still run on it with the refreshed token.
        out = await client.get(await fleet.dispatch()).result()
        assert out.status == "completed"
        assert (await fleet.session(out.session_id)).worker_id == daemon.worker_id

        assert await fleet.store.revoke(daemon.registration_id, org_id=fleet.org)
        gone = await fleet.store.worker(daemon.worker_id, org_id=fleet.org)
        assert gone is not None and gone.status == "deregistered"  # routing stops at once
        code = await asyncio.wait_for(daemon.process.wait(), 30)
        await asyncio.sleep(0.2)  # the last lines
    assert code == 4
    said = [line for line in daemon.log if line.startswith("error:")]
    assert len(said) == 1 and re.search("registration (was|may have been) revoked", said[0]), said


def test_a_session_whose_worker_is_lost_every_time_failed_it_did_not_time_out() -> None:
    from workflows.agents import _failed

    lost = StepFailed("run-agent#3", 1, "timed out (heartbeat)", cause_type="Timeout")
    unclaimed = StepFailed("run-agent#3", 1, "timed out (schedule-to-start)", cause_type="Timeout")
    too_long = StepFailed("run-agent", 1, "timed out (start-to-close)", cause_type="Timeout")
    assert (_failed(lost), _failed(unclaimed), _failed(too_long)) == (
        "failed",
        "failed",
        "timed_out",
    )


async def test_waiting_for_capacity_ends_with_the_sessions_own_timeout(fleet: Fleet) -> None:
    """A route whose only pool has no live worker: the session waits, visibly, but only as
    long as its own timeout, then ends with "no capacity in pools ..." (it used to retry the
    route for ever)."""
    store = fleet.store
    await store.create_pool(fleet.org, "empty-pool", "local")
    await store.set_route(fleet.org, fleet.project, preferred=["empty-pool"])
    async with fleet.running() as client:
        run = await fleet.dispatch(timeout="3s")
        session = await fleet.session_of(run)
        await fleet.until(session, "waiting for capacity in pools empty-pool")
        out = await asyncio.wait_for(client.get(run).result(), 90)
    assert out.status == "failed"
    assert out.error.startswith("no capacity in pools empty-pool within the session's timeout")
    record = await fleet.session(session)
    assert record.status == "failed" and record.error is not None
    assert record.error.startswith("no capacity in pools empty-pool")

"""The step audit on a real dev server and a real PostgreSQL: a row per step attempt, written
by the worker's interceptor, per org, under row-level security."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client

import durable
from adapters.temporal import TemporalDurableClient, build_worker, load_history, replay
from api import create_app
from api.server import ApiServer
from store import LOST_ATTEMPT, EventStore, StepAttempt, StepAudit
from tests.events.test_http import call
from tests.keys import bearer, make_key
from tests.test_cli import durable as durable_cli
from workers.embedded import EmbeddedTemporal, free_port

from .workflows import BODY_RUNS, REGISTRY


@asynccontextmanager
async def audited(
    client: Client, pool: asyncpg.Pool, task_queue: str
) -> AsyncIterator[TemporalDurableClient]:
    async with build_worker(client, REGISTRY, task_queue, audit=StepAudit(pool)):
        yield TemporalDurableClient(client, REGISTRY, task_queue)


def org() -> durable.Tenancy:
    return durable.Tenancy(
        org_id=f"org-{uuid.uuid4().hex[:8]}", workspace_id="ws-1", project_id="proj-1"
    )


def summary(rows: list[StepAttempt]) -> list[tuple[str, int, str, str]]:
    return [(r.step_id, r.attempt, r.status, r.action) for r in rows]


async def test_every_step_attempt_of_a_run_is_a_row_for_its_org(
    dev_client: Client, pool: asyncpg.Pool, task_queue: str
) -> None:
    tenancy = org()
    audit = StepAudit(pool)
    async with audited(dev_client, pool, task_queue) as client:
        handle = await client.start("tests/audit-three.run", {"key": "k"}, tenancy=tenancy)
        out = await handle.result()
        execution = (await handle.temporal.describe()).run_id
    # The tenancy reached every step through the headers.
    assert {(r.org_id, r.project_id) for r in out.results} == {("" + tenancy.org_id, "proj-1")}
    rows = await audit.steps(tenancy.org_id, handle.workflow_id)
    assert summary(rows) == [
        ("fetch", 1, "completed", "audit.work"),
        ("analyse", 1, "failed", "audit.work"),
        ("analyse", 2, "completed", "audit.work"),
        ("record", 1, "completed", "audit.work"),
    ], "a retried attempt is a row of its own; a short (local) step is audited too"
    failed = rows[1]
    assert failed.error is not None and "flaky k (attempt 1)" in failed.error
    for row in rows:
        assert (row.org_id, row.workspace_id, row.project_id) == (
            "" + tenancy.org_id,
            "ws-1",
            "proj-1",
        )
        assert row.run_id == execution and row.workflow_id == handle.workflow_id
        assert row.workflow_type == "tests/audit-three.run"
        assert row.ended_at is not None and row.ended_at >= row.started_at

    # Replaying the run's history executes no step, so it writes nothing.
    history = await handle.temporal.fetch_history()
    before = await pool.fetchval("SELECT count(*) FROM step_executions")
    await replay(REGISTRY, [load_history(history.to_json())])
    assert await pool.fetchval("SELECT count(*) FROM step_executions") == before


async def test_failed_and_cancelled_steps_are_recorded_as_such(
    dev_client: Client, pool: asyncpg.Pool, task_queue: str
) -> None:
    tenancy = org()
    audit = StepAudit(pool)
    async with audited(dev_client, pool, task_queue) as client:
        failing = await client.start("tests/audit-fail.run", {"key": "k"}, tenancy=tenancy)
        out = await failing.result()
        long = await client.start(
            "tests/audit-long.run", {"key": "k", "seconds": 60}, tenancy=tenancy
        )
        for _ in range(100):
            if (await long.describe()).current_steps == ["long-work"]:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # the attempt is running
        await long.cancel()
        with pytest.raises(durable.RunCancelled):
            await long.result()
    assert "the upstream refused k" in out.failure
    assert summary(await audit.steps(tenancy.org_id, failing.workflow_id)) == [
        ("call-upstream", 1, "failed", "audit.doomed"),
        ("call-upstream", 2, "failed", "audit.doomed"),
    ]
    assert summary(await audit.steps(tenancy.org_id, long.workflow_id)) == [
        ("long-work", 1, "cancelled", "audit.work"),
    ]


async def test_a_child_run_inherits_the_tenancy(
    dev_client: Client, pool: asyncpg.Pool, task_queue: str
) -> None:
    tenancy = org()
    async with audited(dev_client, pool, task_queue) as client:
        handle = await client.start("tests/audit-parent.run", {"key": "k"}, tenancy=tenancy)
        out = await handle.result()
        execution = (await handle.temporal.describe()).run_id
    assert out.results[0].org_id == tenancy.org_id
    child = f"{handle.workflow_id}:{execution}:child"
    assert summary(await StepAudit(pool).steps(tenancy.org_id, child)) == [
        ("long-work", 1, "completed", "audit.work")
    ]


@pytest.fixture
async def two_orgs(
    dev_client: Client, pool: asyncpg.Pool, task_queue: str
) -> tuple[str, str, str, str]:
    """Runs of two orgs, each with audited steps: (org a, run of a, org b, run of b)."""
    a, b = org(), org()
    async with audited(dev_client, pool, task_queue) as client:
        run_a = await client.start("tests/audit-long.run", {"key": "a"}, tenancy=a)
        run_b = await client.start("tests/audit-long.run", {"key": "b"}, tenancy=b)
        await run_a.result()
        await run_b.result()
    return a.org_id, run_a.workflow_id, b.org_id, run_b.workflow_id


async def test_one_org_cannot_read_another_orgs_steps(
    pool: asyncpg.Pool, two_orgs: tuple[str, str, str, str]
) -> None:
    org_a, run_a, org_b, _ = two_orgs
    audit = StepAudit(pool)
    assert len(await audit.steps(org_a, run_a)) == 1
    # Another org's run reads exactly like a run that does not exist.
    assert await audit.steps(org_b, run_a) == []
    assert await audit.steps(org_b, "no-such-run") == []
    # The org was set for the transaction only: the pooled connection keeps nothing of it.
    async with pool.acquire() as conn:
        for _ in range(3):
            assert await conn.fetchval("SELECT current_setting('app.org_id', true)") in ("", None)
            assert await conn.fetchval("SELECT current_user") == "postgres"


@pytest.fixture
async def app_login(database_url: str, pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A raw connection as a login role that is only a member of the application role."""
    name = f"app_login_{uuid.uuid4().hex[:8]}"
    await pool.execute(f"CREATE ROLE {name} LOGIN IN ROLE durable_app")
    conn = await asyncpg.connect(database_url, user=name)
    try:
        yield conn
    finally:
        await conn.close()
        await pool.execute(f"DROP ROLE {name}")


async def test_a_raw_connection_as_the_app_role_is_held_to_its_org(
    app_login: asyncpg.Connection, two_orgs: tuple[str, str, str, str]
) -> None:
    org_a, run_a, org_b, run_b = two_orgs
    conn = app_login
    attributes = await conn.fetchrow(
        "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = 'durable_app'"
    )
    assert attributes is not None and tuple(attributes) == (False, False)
    owner = await conn.fetchval(
        "SELECT tableowner FROM pg_tables WHERE tablename = 'step_executions'"
    )
    assert owner not in ("durable_app", await conn.fetchval("SELECT current_user"))
    # No org set: nothing visible at all.
    assert await conn.fetchval("SELECT count(*) FROM step_executions") == 0
    async with conn.transaction():
        await conn.execute("SELECT set_config('app.org_id', $1, true)", org_a)
        seen = await conn.fetch("SELECT DISTINCT org_id, workflow_id FROM step_executions")
        assert [tuple(r) for r in seen if r["workflow_id"] in (run_a, run_b)] == [(org_a, run_a)]
        assert {r["org_id"] for r in seen} == {org_a}

    # Writing a row for another org is refused by the policy's WITH CHECK.
    async def write_for_b_as_a() -> None:
        async with conn.transaction():
            await conn.execute("SELECT set_config('app.org_id', $1, true)", org_a)
            await conn.execute(
                "INSERT INTO step_executions (org_id, run_id, workflow_id, workflow_type,"
                " step_id, action, attempt, status, started_at)"
                " VALUES ($1, 'x', $2, 't', 's', 'a', 1, 'completed', now())",
                org_b,
                run_b,
            )

    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        await write_for_b_as_a()
    # Nor can the app role change or delete what was written.
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await conn.execute("DELETE FROM step_executions")


async def test_no_step_completes_unaudited_while_postgres_is_down(
    dev_client: Client, task_queue: str
) -> None:
    from tests.events.test_outage import own_postgres

    tenancy = org()
    key = f"patient-{uuid.uuid4().hex[:8]}"
    async with (
        own_postgres() as (postgres, own_pool),
        audited(dev_client, own_pool, task_queue) as client,
    ):
        await postgres.crash()
        handle = await client.start("tests/audit-patient.run", {"key": key}, tenancy=tenancy)
        for _ in range(100):
            if BODY_RUNS.get(key, 0) >= 2:
                break
            await asyncio.sleep(0.1)
        # The step's body ran and returned, but its attempts could not be audited: they failed.
        assert BODY_RUNS[key] >= 2
        assert (await handle.describe()).status is durable.RunStatus.RUNNING
        await postgres.start_again()
        out = await asyncio.wait_for(handle.result(), 30)
        rows = await StepAudit(own_pool).steps(tenancy.org_id, handle.workflow_id)
    last = out.results[0].attempt
    assert last == BODY_RUNS[key] and last >= 3
    assert [(r.attempt, r.status) for r in rows] == [
        *((n, "failed") for n in range(1, last)),
        (last, "completed"),
    ], "the attempts that could not be audited are on record as such"
    assert all(r.error == LOST_ATTEMPT for r in rows[:-1])


async def test_operators_read_a_runs_steps_over_http_and_cli_for_their_org_only(
    dev_client: Client,
    dev_server: EmbeddedTemporal,
    database_url: str,
    pool: asyncpg.Pool,
    two_orgs: tuple[str, str, str, str],
) -> None:
    org_a, run_a, org_b, _ = two_orgs
    keys = {org: await make_key(pool, org, "runs:read") for org in (org_a, org_b)}
    client = TemporalDurableClient(dev_client, REGISTRY, "unused")
    execution_a = (await client.get(run_a).describe()).run_id
    server = ApiServer(create_app(client, REGISTRY, EventStore(pool)), free_port())
    await server.start()
    try:

        def get(run_id: str, org_id: str | None) -> tuple[int, dict[str, Any]]:
            headers = {} if org_id is None else bearer(keys[org_id])
            return call("GET", f"{server.address}/runs/{run_id}/steps", headers=headers)

        mine = await asyncio.to_thread(get, run_a, org_a)
        theirs = await asyncio.to_thread(get, run_a, org_b)
        nothing = await asyncio.to_thread(get, "no-such-run", org_b)
        anonymous = await asyncio.to_thread(get, run_a, None)
    finally:
        await server.stop()
    assert mine[0] == 200
    assert [(s["step_id"], s["attempt"], s["status"]) for s in mine[1]["steps"]] == [
        ("long-work", 1, "completed")
    ]
    assert mine[1]["steps"][0]["duration_ms"] >= 0
    assert mine[1]["workflow_id"] == run_a
    assert {s["run_id"] for s in mine[1]["steps"]} == {execution_a}, "Temporal's run id"
    assert theirs == (200, {"workflow_id": run_a, "steps": []}), "no hint the run exists"
    assert nothing == (200, {"workflow_id": "no-such-run", "steps": []})
    assert anonymous[0] == 401 and "needs a credential" in anonymous[1]["error"]

    env = {"TEMPORAL_ADDRESS": dev_server.address, "DATABASE_URL": database_url}
    code, out, err = await durable_cli("steps", run_a, "--org", org_a, "--json", env=env)
    assert code == 0, err
    assert [s["status"] for s in json.loads(out)] == ["completed"]
    code, out, _ = await durable_cli("steps", run_a, "--org", org_b, env=env)
    assert (code, out.strip()) == (0, f"no steps recorded for workflow id {run_a} in org {org_b!r}")

"""Migrations on a real PostgreSQL, and the error a user sees when there is none."""

from __future__ import annotations

import json

import asyncpg
import pytest

from store import (
    APP_ROLE,
    MIGRATIONS,
    DatabaseUnreachable,
    applied_versions,
    as_org,
    create_pool,
    migrate,
)
from workers.embedded import free_port


async def test_migrations_apply_once_and_are_idempotent(pool: asyncpg.Pool) -> None:
    assert await migrate(pool) == [], "the session fixture already applied them"
    assert await applied_versions(pool) == [m.version for m in MIGRATIONS]
    columns = await pool.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'notes'"
    )
    assert {"idempotency_key", "workflow_id", "body"} <= {c["column_name"] for c in columns}


async def test_unreachable_database_is_a_clear_error_without_the_password() -> None:
    url = f"postgresql://app:s3cret@127.0.0.1:{free_port()}/app"
    with pytest.raises(DatabaseUnreachable) as err:
        await create_pool(url, timeout=5)
    message = str(err.value)
    assert "cannot connect to Postgres at postgresql://app:***@127.0.0.1" in message
    assert "s3cret" not in message
    assert "DATABASE_URL" in message


async def test_waits_opened_before_orgs_take_their_runs_org_or_none(
    pool: asyncpg.Pool, database_url: str
) -> None:
    """Migration 0013: a wait from before waits had an org gets the org of the event that
    started its run; one with no such event is of no org, never of any org."""
    name = f"upgrade_{free_port()}"
    await pool.execute(f"CREATE DATABASE {name}")
    url = database_url.replace("/postgres?", f"/{name}?")
    old = await create_pool(url)
    try:
        await migrate(old, [m for m in MIGRATIONS if m.version <= 12])
        await old.execute(
            "INSERT INTO events (id, type, data, tenancy) VALUES"
            " ('e1', 't/started.run', '{}', '{\"org_id\": \"acme\"}')"
        )
        await old.execute(
            "INSERT INTO deliveries (event_id, kind, workflow_id) VALUES ('e1', 'start', 'wf-1')"
        )
        for workflow_id in ("wf-1", "wf-manual"):
            await old.execute(
                "INSERT INTO waits (workflow_id, run_id, step_id, event_type, match, not_before)"
                " VALUES ($1, 'r', 's', 't/answer.sent', '{}', now())",
                workflow_id,
            )
        upgrade = [m for m in MIGRATIONS if m.version == 13]
        assert await migrate(old, upgrade) == upgrade
        rows = await old.fetch("SELECT workflow_id, org_id FROM waits ORDER BY workflow_id")
        assert [tuple(r) for r in rows] == [("wf-1", "acme"), ("wf-manual", "")]
    finally:
        await old.close()
        await pool.execute(f"DROP DATABASE {name}")


async def test_open_approval_waits_from_before_the_rename_match_the_new_approvals(
    pool: asyncpg.Pool, database_url: str
) -> None:
    """Migration 0017: an open wait for an approval that matched on data.run_id now matches on
    data.workflow_id, which approvals send; resolved waits and other types are left alone, and
    the audit's columns say run_id/workflow_id."""
    name = f"rename_{free_port()}"
    await pool.execute(f"CREATE DATABASE {name}")
    url = database_url.replace("/postgres?", f"/{name}?")
    old = await create_pool(url)
    try:
        await migrate(old, [m for m in MIGRATIONS if m.version <= 16])
        rows = [
            ("wf-open", "rensei/approval.resolved", '{"data": {"run_id": "wf-open", "item": ""}}'),
            ("wf-other", "t/answer.sent", '{"data": {"run_id": "x"}}'),
        ]
        for workflow_id, event_type, match in rows:
            await old.execute(
                "INSERT INTO waits (workflow_id, run_id, step_id, event_type, match, not_before,"
                " org_id) VALUES ($1, 'r', 's', $2, $3::jsonb, now(), 'acme')",
                workflow_id,
                event_type,
                match,
            )
        await old.execute("INSERT INTO tenant_orgs (org_id) VALUES ('acme') ON CONFLICT DO NOTHING")
        assert [m.version for m in await migrate(old)] == [m.version for m in MIGRATIONS][16:]
        found = {
            r["workflow_id"]: json.loads(r["match"])
            for r in await old.fetch("SELECT workflow_id, match FROM waits")
        }
        assert found == {
            "wf-open": {"data": {"workflow_id": "wf-open", "item": ""}},
            "wf-other": {"data": {"run_id": "x"}},
        }
        columns = await old.fetch(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_name = 'step_executions' AND column_name LIKE '%_id'"
        )
        assert {"run_id", "workflow_id"} <= {c["column_name"] for c in columns}
    finally:
        await old.close()
        await pool.execute(f"DROP DATABASE {name}")


@pytest.mark.parametrize("org", ["acme", "o'brien", "back\\slash", "'; DROP TABLE events; --", ""])
async def test_every_org_id_reaches_the_policy_as_written(database_url: str, org: str) -> None:
    """The org is sent with BEGIN as a string constant: quotes and backslashes arrive intact,
    and nothing in it runs as SQL. The transaction ends with the block, and so does the org."""
    one = await create_pool(database_url, min_size=1, max_size=1)
    try:
        async with as_org(one, org) as conn:
            assert await conn.fetchval("SELECT current_setting('app.org_id')") == org
            assert await conn.fetchval("SELECT current_user") == APP_ROLE
            assert await conn.fetchval("SELECT to_regclass('events')") is not None
        with pytest.raises(ZeroDivisionError):
            await fail_inside(one, org)
        async with one.acquire() as conn:  # the same connection, back from the pool
            assert await conn.fetchval("SELECT current_user") != APP_ROLE, "the role ended"
            assert await conn.fetchval("SELECT to_regclass('pg_temp.doomed')") is None
    finally:
        await one.close()


async def fail_inside(pool: asyncpg.Pool, org: str) -> None:
    async with as_org(pool, org) as conn:
        await conn.execute("CREATE TEMP TABLE doomed (x int)")
        raise ZeroDivisionError


async def test_an_org_id_with_a_nul_is_refused(pool: asyncpg.Pool) -> None:
    with pytest.raises(ValueError, match="NUL"):
        await use(pool, "a\x00b")


async def use(pool: asyncpg.Pool, org: str) -> None:
    async with as_org(pool, org):
        pass

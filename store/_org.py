"""Every statement on tenant data runs as one org, under PostgreSQL row-level security.

`as_org(pool, org_id)` opens a transaction that first drops to the application role
(`durable_app`: not the owner, not superuser, no BYPASSRLS) and sets `app.org_id`, both with
`set_config(..., true)` so they end with the transaction and never leak to the next user of a
pooled connection. Every tenant table's policy reads `app.org_id`: reads see that org's rows
only, and a write for another org is refused (`WITH CHECK`). '' is the org of runs that belong
to no org.

Work that spans orgs (the delivery sweep, slot checks, liveness, memory consolidation) does not
bypass the policy: it lists the orgs from `tenant_orgs` (org ids only, filled by a trigger on the
tenant tables) and acts per org, one transaction each.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import asyncpg

APP_ROLE = "durable_app"
T = TypeVar("T")


@asynccontextmanager
async def as_org(pool: asyncpg.Pool, org_id: str) -> AsyncIterator[Any]:
    """A connection in a transaction as `durable_app` with `app.org_id` = `org_id`."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "SELECT set_config('role', $1, true), set_config('app.org_id', $2, true)",
            APP_ROLE,
            org_id,
        )
        yield conn


@asynccontextmanager
async def as_platform(pool: asyncpg.Pool) -> AsyncIterator[Any]:
    """A connection in a transaction as `durable_app` with no org: for the platform-wide
    tables (signing keys), which hold no org's data."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT set_config('role', $1, true)", APP_ROLE)
        yield conn


async def known_orgs(pool: asyncpg.Pool) -> list[str]:
    """Every org that has had tenant data here ('' included), for work done per org."""
    async with as_org(pool, "") as conn:
        rows = await conn.fetch("SELECT org_id FROM tenant_orgs ORDER BY org_id")
    return [r["org_id"] for r in rows]


async def each_org(
    pool: asyncpg.Pool,
    work: Callable[[Any, str, int], Awaitable[list[T]]],
    limit: int,
) -> list[T]:
    """`work(conn, org_id, room)` for every known org until `limit` results are found, in one
    transaction as `durable_app` with `app.org_id` set to each org in turn (so each call sees
    its org's rows only). The orgs come in random order, so no org starves the others."""
    found: list[T] = []
    async with as_org(pool, "") as conn:
        orgs = await conn.fetch("SELECT org_id FROM tenant_orgs ORDER BY random()")
        for row in orgs:
            await conn.execute("SELECT set_config('app.org_id', $1, true)", row["org_id"])
            found += await work(conn, row["org_id"], limit - len(found))
            if len(found) >= limit:
                break
    return found

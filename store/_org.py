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

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

import asyncpg

from ._pool import CONNECTION_ERRORS, StoreUnavailable

APP_ROLE = "durable_app"
T = TypeVar("T")


def literal(value: str) -> str:
    """`value` as a PostgreSQL string constant. An escape string (E'...') reads the same
    whatever `standard_conforming_strings` says; text holds no NUL, so none is accepted."""
    if "\x00" in value:
        raise ValueError("an org id cannot contain a NUL character")
    return "E'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@asynccontextmanager
async def _transaction(pool: asyncpg.Pool, settings: dict[str, str]) -> AsyncIterator[Any]:
    """A connection in a transaction whose first statement sets `settings` for it alone
    (`set_config(..., true)`), sent with BEGIN in one round trip: every store call pays for
    the transaction and the org, so they cost one trip, not two."""
    assigned = ", ".join(f"set_config('{k}', {literal(v)}, true)" for k, v in settings.items())
    try:
        conn = await pool.acquire()
    except CONNECTION_ERRORS as err:
        raise StoreUnavailable(err) from err
    try:
        try:
            await conn.execute(f"BEGIN; SELECT {assigned}")
        except CONNECTION_ERRORS as err:
            raise StoreUnavailable(err) from err
        try:
            yield conn
        except BaseException as err:
            # If even this fails (the connection broke, the task was cancelled mid-query), the
            # pool rolls back or drops the connection on release: nothing is committed.
            with contextlib.suppress(Exception):
                await conn.execute("ROLLBACK")
            if isinstance(err, CONNECTION_ERRORS) and not isinstance(err, StoreUnavailable):
                raise StoreUnavailable(err) from err
            raise
        try:
            await conn.execute("COMMIT")
        except CONNECTION_ERRORS as err:
            raise StoreUnavailable(err) from err
    finally:
        await pool.release(conn)


def as_org(pool: asyncpg.Pool, org_id: str) -> AbstractAsyncContextManager[Any]:
    """A connection in a transaction as `durable_app` with `app.org_id` = `org_id`."""
    return _transaction(pool, {"role": APP_ROLE, "app.org_id": org_id})


def as_platform(pool: asyncpg.Pool) -> AbstractAsyncContextManager[Any]:
    """A connection in a transaction as `durable_app` with no org: for the platform-wide
    tables (signing keys), which hold no org's data."""
    return _transaction(pool, {"role": APP_ROLE})


def as_token_holder(pool: asyncpg.Pool, token_hash: str) -> AbstractAsyncContextManager[Any]:
    """As `durable_app` holding a registration token's hash: the one row it may read and
    count, whatever its org (the registration_tokens policies, migration 0016)."""
    return _transaction(pool, {"role": APP_ROLE, "app.org_id": "", "app.token_hash": token_hash})


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

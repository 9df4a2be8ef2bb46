"""API keys for tests that call the HTTP API: made in the real database, as `durable keys
create` makes them."""

from __future__ import annotations

import uuid

import asyncpg

from store import KeyStore

# Every scope but admin: what `durable dev`'s local key has.
MEMBER = ("events:send", "runs:start", "runs:read", "approve")


async def make_key(pool: asyncpg.Pool, org: str, *scopes: str, name: str = "") -> str:
    """A new key's secret for `org` with `scopes` (default: MEMBER)."""
    made = await KeyStore(pool).create(
        org, name or f"test-{uuid.uuid4().hex[:8]}", list(scopes or MEMBER), created_by="tests"
    )
    return made.secret


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}

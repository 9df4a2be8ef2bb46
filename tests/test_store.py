"""Migrations on a real PostgreSQL, and the error a user sees when there is none."""

from __future__ import annotations

import asyncpg
import pytest

from store import MIGRATIONS, DatabaseUnreachable, applied_versions, create_pool, migrate
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

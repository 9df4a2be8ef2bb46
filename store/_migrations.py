"""Versioned SQL migrations in `store/migrations/NNNN_name.sql`, applied once each, in order,
under an advisory lock so concurrent starters do not race."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Any constant works; it only has to be the same for every process migrating this database.
_LOCK_KEY = 0x44_55_52_41_42_4C_45


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def _load() -> list[Migration]:
    found = []
    for entry in resources.files("store").joinpath("migrations").iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a version: {versions}")
    return found


MIGRATIONS = _load()


async def applied_versions(pool: asyncpg.Pool) -> list[int]:
    async with pool.acquire() as conn:
        exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
        if not exists:
            return []
        rows = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
        return [int(r["version"]) for r in rows]


async def migrate(pool: asyncpg.Pool, migrations: list[Migration] | None = None) -> list[Migration]:
    """Apply every migration not yet applied; returns those applied now. Idempotent."""
    todo = MIGRATIONS if migrations is None else migrations
    applied: list[Migration] = []
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {
            int(r["version"]) for r in await conn.fetch("SELECT version FROM schema_migrations")
        }
        for migration in todo:
            if migration.version in done:
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
            applied.append(migration)
    return applied

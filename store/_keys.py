"""API keys: one org each, named, with scopes; stored as the SHA-256 of the whole key.

A key reads `dk_<org>_<id>_<secret>`: `dk_<org>_<id>` is its prefix, stored and shown in lists
so an operator can tell keys apart and revoke one; the 256-bit secret is shown once, when the
key is made, and never stored. Org ids cannot hold `_` (see `durable.Tenancy`), nor can the hex
parts, so a key splits without ambiguity. A fast hash is right here: the secret is random, not
a password, so there is nothing to guess from its hash.

Every statement runs as the application role with the key's org set (`app.org_id`), under the
table's row-level security: a lookup reads only rows of the org the key names.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from ._org import as_org

_KEY = re.compile(r"^dk_([A-Za-z0-9.:-]{1,200})_([0-9a-f]{8})_([0-9a-f]{64})$")
_COLUMNS = "prefix, org_id, name, scopes, created_by, created_at, expires_at, revoked_at"


class KeyRefused(ValueError):
    """A key could not be made or changed; the message says why (never holds a secret)."""


@dataclass(frozen=True)
class ApiKey:
    prefix: str
    org_id: str
    name: str
    scopes: tuple[str, ...]
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def usable_at(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


@dataclass(frozen=True)
class NewKey:
    key: ApiKey
    secret: str  # the whole key: shown once, never stored


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _row(row: asyncpg.Record) -> ApiKey:
    fields = {k: v for k, v in dict(row).items() if k != "secret_sha256"}
    return ApiKey(**{**fields, "scopes": tuple(row["scopes"])})


def org_of_key(secret: str) -> str | None:
    """The org a well-formed key names, or None for anything that is not a key."""
    match = _KEY.match(secret)
    return match.group(1) if match else None


class KeyStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    def _as_org(self, org_id: str) -> AbstractAsyncContextManager[Any]:
        return as_org(self.pool, org_id)

    async def create(
        self,
        org_id: str,
        name: str,
        scopes: list[str],
        *,
        created_by: str = "",
        expires_at: datetime | None = None,
    ) -> NewKey:
        """Make a key. Raises KeyRefused for a bad org, an empty name or scope list, or a name
        the org already uses."""
        if not re.fullmatch(r"[A-Za-z0-9.:-]{1,200}", org_id):
            raise KeyRefused(f"org id {org_id!r} must be 1-200 of A-Z a-z 0-9 . : -")
        if not name.strip() or not scopes:
            raise KeyRefused("a key needs a name and at least one scope")
        prefix = f"dk_{org_id}_{secrets.token_hex(4)}"
        secret = f"{prefix}_{secrets.token_hex(32)}"
        async with self._as_org(org_id) as conn:
            try:
                row = await conn.fetchrow(
                    "INSERT INTO api_keys (prefix, org_id, name, scopes, secret_sha256,"
                    " created_by, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                    f" RETURNING {_COLUMNS}",
                    prefix,
                    org_id,
                    name.strip(),
                    sorted(set(scopes)),
                    _digest(secret),
                    created_by,
                    expires_at,
                )
            except asyncpg.UniqueViolationError:
                taken = f"org {org_id!r} already has a key named {name.strip()!r}"
                raise KeyRefused(taken) from None
        return NewKey(_row(row), secret)

    async def list(self, org_id: str) -> list[ApiKey]:
        async with self._as_org(org_id) as conn:
            rows = await conn.fetch(f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_at, prefix")
        return [_row(r) for r in rows]

    async def revoke(self, org_id: str, name_or_prefix: str) -> ApiKey | None:
        """Revoke the org's one key with this prefix, or else with this name; None if it has
        none. Revoking a revoked key keeps its first revocation time."""
        async with self._as_org(org_id) as conn:
            for column in ("prefix", "name"):
                row = await conn.fetchrow(
                    "UPDATE api_keys SET revoked_at = coalesce(revoked_at, clock_timestamp())"
                    f" WHERE {column} = $1 RETURNING {_COLUMNS}",
                    name_or_prefix,
                )
                if row is not None:
                    return _row(row)
        return None

    async def verify(self, secret: str) -> ApiKey | None:
        """The key `secret` is, if it is one this store made (revoked or expired ones too: the
        caller decides with `usable_at`); None for anything else."""
        org_id = org_of_key(secret)
        if org_id is None:
            return None
        prefix = secret.rsplit("_", 1)[0]
        async with self._as_org(org_id) as conn:
            row = await conn.fetchrow(
                f"SELECT {_COLUMNS}, secret_sha256 FROM api_keys WHERE prefix = $1", prefix
            )
        if row is None or not hmac.compare_digest(row["secret_sha256"], _digest(secret)):
            return None
        return _row(row)

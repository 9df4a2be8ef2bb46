"""The worker fleet in Postgres (issue 7, in progress): registration tokens so far. A token is
stored as its hash only; redeeming one checks expiry and revocation and counts the use in one
statement."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
from opentelemetry.trace import TracerProvider

from ._tracing import db_spans, store_tracer

_span = db_spans("fleet")


@dataclass(frozen=True)
class Registration:
    id: str
    org_id: str
    project_id: str
    prefix: str
    expires_at: datetime
    uses: int


class RegistrationRefused(Exception):
    """Why a registration token was not accepted: for the log, never the response."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class FleetStore:
    def __init__(
        self, pool: asyncpg.Pool, *, tracer_provider: TracerProvider | None = None
    ) -> None:
        self.pool = pool
        self._tracer = store_tracer(tracer_provider)

    @_span
    async def add_registration_token(
        self, org_id: str, project_id: str, token_hash: str, prefix: str, ttl: timedelta
    ) -> str:
        token_id = str(uuid.uuid4())
        await self.pool.execute(
            "INSERT INTO registration_tokens (id, org_id, project_id, token_hash, prefix,"
            " expires_at) VALUES ($1, $2, $3, $4, $5, clock_timestamp() + $6)",
            token_id,
            org_id,
            project_id,
            token_hash,
            prefix,
            ttl,
        )
        return token_id

    @_span
    async def redeem(self, token_hash: str) -> Registration:
        """The registration a token stands for, counting this use; RegistrationRefused when
        it is unknown, expired or revoked."""
        row = await self.pool.fetchrow(
            """UPDATE registration_tokens SET uses = uses + 1, last_used_at = clock_timestamp()
               WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > clock_timestamp()
               RETURNING id::text, org_id, project_id, prefix, expires_at, uses""",
            token_hash,
        )
        if row is not None:
            return Registration(**dict(row))
        found = await self.pool.fetchrow(
            "SELECT prefix, revoked_at, expires_at FROM registration_tokens WHERE token_hash = $1",
            token_hash,
        )
        if found is None:
            raise RegistrationRefused("unknown registration token")
        if found["revoked_at"] is not None:
            raise RegistrationRefused(f"registration token {found['prefix']}… was revoked")
        raise RegistrationRefused(f"registration token {found['prefix']}… has expired")

    @_span
    async def revoke(self, token_id: str) -> bool:
        status: str = await self.pool.execute(
            "UPDATE registration_tokens SET revoked_at = clock_timestamp()"
            " WHERE id = $1 AND revoked_at IS NULL",
            token_id,
        )
        return status.endswith(" 1")

    @_span
    async def registration_valid(self, token_id: str) -> bool:
        """Whether a registration still stands (what a runtime JWT refresh re-checks)."""
        valid: bool = await self.pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM registration_tokens WHERE id = $1"
            " AND revoked_at IS NULL AND expires_at > clock_timestamp())",
            token_id,
        )
        return valid

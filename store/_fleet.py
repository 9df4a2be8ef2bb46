"""The worker fleet in Postgres: execution pools per org, each project's execution route,
registration tokens (stored as their hash only; redeeming one checks expiry and revocation and
counts the use in one statement), the workers that registered with them, and their capacity.

Every statement runs as one org under row-level security (`_org.as_org`): the org comes from
the caller's credential (an admin's API key, a runtime JWT's `org`). Redeeming a registration
token is the one lookup made before the org is known: the policy of `registration_tokens` also
lets a transaction see the row whose hash it sets as `app.token_hash`, and nothing else.

A worker is live while its heartbeats keep coming: one silent for longer than the grace period
is marked offline by the next reader that asks (`mark_offline`), and its slots stop counting."""

from __future__ import annotations

import json
import re
import secrets
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from opentelemetry.trace import TracerProvider

from ._org import as_org, as_platform, as_token_holder, each_org
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
    pool_id: str | None = None
    name: str = ""


# How long a session placed on a pool but not claimed by a worker yet counts against the pool's
# capacity: its run gives up on the pool's queue after QUEUE_TIMEOUT (workflows/agents.py) and
# places it again.
UNCLAIMED_WINDOW = timedelta(minutes=3)  # QUEUE_TIMEOUT and a margin (routing to scheduling)

# Whether a session `s` takes a slot of its pool ($4: the session being placed; $5: the window).
TAKES_A_SLOT = """s.status = 'running' AND s.session_id <> $4
    AND ((s.worker_id = '' AND s.placed_at > clock_timestamp() - $5::interval)
         OR (s.worker_id <> '' AND s.released_at IS NULL AND EXISTS (
                 SELECT 1 FROM fleet_workers fw WHERE fw.id = s.worker_id
                 AND fw.status = 'online')))"""

# A project id (as `durable.Tenancy`'s, and not empty): it is in task queue names and JWTs.
PROJECT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,200}$")
MAX_SESSIONS_LIMIT = 2**31 - 1

PROVIDERS = ("local", "docker", "kubernetes", "e2b", "daytona", "modal", "vercel")


@dataclass(frozen=True)
class Pool:
    id: str
    org_id: str
    name: str
    provider: str
    mode: str
    capacity: dict[str, Any]
    credential_ref: str | None

    @property
    def max_sessions(self) -> int | None:
        """The capacity policy's cap on sessions running in the pool at once (None: no cap
        beyond the workers' own slots)."""
        cap = self.capacity.get("max_sessions")
        return cap if isinstance(cap, int) else None


@dataclass(frozen=True)
class Route:
    org_id: str
    project_id: str
    preferred: list[str] = field(default_factory=list)  # pool ids
    allowed: list[str] = field(default_factory=list)
    forbidden: list[str] = field(default_factory=list)
    fallback: str | None = None
    legacy: bool = False  # translated from legacy sandbox settings


@dataclass(frozen=True)
class WorkerRecord:
    id: str
    org_id: str
    project_id: str
    pool_id: str
    pool_name: str
    registration_id: str
    hostname: str
    version: str
    capabilities: list[str]
    max_concurrency: int
    active: int
    status: str
    registered_at: datetime
    last_heartbeat_at: datetime
    deregistered_at: datetime | None


@dataclass(frozen=True)
class Capacity:
    """A pool's live capacity for one project: the slots of its online workers registered for
    the project less the project's sessions running there, within the pool's `max_sessions`
    (which counts every project's sessions on the pool)."""

    pool: Pool
    slots: int
    in_use: int
    workers: int
    pool_in_use: int = 0

    @property
    def free(self) -> int:
        free = self.slots - self.in_use
        if self.pool.max_sessions is not None:
            free = min(free, self.pool.max_sessions - self.pool_in_use)
        return max(0, free)


@dataclass(frozen=True)
class Placement:
    """Where a session was placed, for checking who may write to it."""

    org_id: str
    project: str
    pool_id: str | None
    worker_id: str
    status: str
    claims: int


class FleetError(Exception):
    """A fleet request that cannot be done as asked (unknown pool, a route that contradicts
    itself); the message says what to change."""


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
        self,
        org_id: str,
        project_id: str,
        token_hash: str,
        prefix: str,
        ttl: timedelta,
        *,
        pool_id: str | None = None,
        name: str = "",
    ) -> str:
        _project_id(project_id)
        token_id = str(uuid.uuid4())
        async with as_org(self.pool, org_id) as conn:
            await conn.execute(
                "INSERT INTO registration_tokens (id, org_id, project_id, token_hash, prefix,"
                " expires_at, pool_id, name)"
                " VALUES ($1, $2, $3, $4, $5, clock_timestamp() + $6, $7, $8)",
                token_id,
                org_id,
                project_id,
                token_hash,
                prefix,
                ttl,
                pool_id,
                name,
            )
        return token_id

    @_span
    async def redeem(self, token_hash: str) -> Registration:
        """The registration a token stands for, counting this use; RegistrationRefused when
        it is unknown, expired or revoked. The only read made before the org is known: it sees
        the one row whose hash it holds (`app.token_hash`), of whichever org."""
        async with as_token_holder(self.pool, token_hash) as conn:
            row = await conn.fetchrow(
                """UPDATE registration_tokens SET uses = uses + 1, last_used_at = clock_timestamp()
                   WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > clock_timestamp()
                   RETURNING id::text, org_id, project_id, prefix, expires_at, uses,
                             pool_id::text, name""",
                token_hash,
            )
            found = (
                None
                if row is not None
                else await conn.fetchrow(
                    "SELECT prefix, revoked_at, expires_at FROM registration_tokens"
                    " WHERE token_hash = $1",
                    token_hash,
                )
            )
        if row is not None:
            return Registration(**dict(row))
        if found is None:
            raise RegistrationRefused("unknown registration token")
        if found["revoked_at"] is not None:
            raise RegistrationRefused(f"registration token {found['prefix']}… was revoked")
        raise RegistrationRefused(f"registration token {found['prefix']}… has expired")

    @_span
    async def revoke(self, token_id: str, *, org_id: str) -> bool:
        """Revoke a registration token of `org_id`; the workers registered with it are
        deregistered at once (routing stops using them) and their runtime JWTs stop being
        accepted. False when the org has no such token, or it was revoked before."""
        try:
            uuid.UUID(token_id)
        except ValueError:
            return False
        async with as_org(self.pool, org_id) as conn:
            status: str = await conn.execute(
                "UPDATE registration_tokens SET revoked_at = clock_timestamp()"
                " WHERE id = $1 AND revoked_at IS NULL",
                token_id,
            )
            await conn.execute(
                "UPDATE fleet_workers SET status = 'deregistered',"
                " deregistered_at = clock_timestamp()"
                " WHERE registration_id = $1 AND status <> 'deregistered'",
                token_id,
            )
        return status.endswith(" 1")

    @_span
    async def registration_valid(self, token_id: str, *, org_id: str) -> bool:
        """Whether a registration of `org_id` still stands (what every runtime JWT call
        re-checks): only a revocation ends it. A token's expiry stops new registrations, not
        the workers that registered with it."""
        async with as_org(self.pool, org_id) as conn:
            valid: bool = await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM registration_tokens WHERE id = $1"
                " AND revoked_at IS NULL)",
                token_id,
            )
        return valid

    # --- pools and routes ---------------------------------------------------------------------

    @_span
    async def create_pool(
        self,
        org_id: str,
        name: str,
        provider: str,
        *,
        mode: str = "managed",
        capacity: dict[str, Any] | None = None,
        credential_ref: str | None = None,
    ) -> Pool:
        _known_provider(provider)
        if not name.strip():
            raise FleetError("a pool needs a name")
        cap = (capacity or {}).get("max_sessions")
        if cap is not None and (
            isinstance(cap, bool) or not isinstance(cap, int) or not 1 <= cap <= MAX_SESSIONS_LIMIT
        ):
            raise FleetError(f"max_sessions must be a whole number from 1 to {MAX_SESSIONS_LIMIT}")
        async with as_org(self.pool, org_id) as conn:
            row = await conn.fetchrow(
                """INSERT INTO execution_pools (id, org_id, name, provider, mode, capacity,
                                                credential_ref)
                   VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7)
                   ON CONFLICT (org_id, name) DO NOTHING
                   RETURNING id::text, org_id, name, provider, mode, capacity::text,
                             credential_ref""",
                str(uuid.uuid4()),
                org_id,
                name,
                provider,
                mode,
                json.dumps(capacity or {}),
                credential_ref,
            )
        if row is None:
            raise FleetError(f"org {org_id!r} already has a pool named {name!r}")
        return _pool(row)

    @_span
    async def pools(self, org_id: str) -> list[Pool]:
        async with as_org(self.pool, org_id) as conn:
            rows = await conn.fetch(
                "SELECT id::text, org_id, name, provider, mode, capacity::text, credential_ref"
                " FROM execution_pools WHERE org_id = $1 ORDER BY name",
                org_id,
            )
        return [_pool(r) for r in rows]

    async def pool_named(self, org_id: str, ref: str) -> Pool:
        """A pool of `org_id` by name or id; FleetError naming the org's pools otherwise."""
        pools = await self.pools(org_id)
        for pool in pools:
            if ref in (pool.name, pool.id):
                return pool
        known = ", ".join(p.name for p in pools) or "none"
        raise FleetError(f"org {org_id!r} has no pool {ref!r} (its pools: {known})")

    @_span
    async def set_route(
        self,
        org_id: str,
        project_id: str,
        *,
        preferred: Sequence[str] = (),
        allowed: Sequence[str] = (),
        forbidden: Sequence[str] = (),
        fallback: str | None = None,
    ) -> Route:
        """Replace a project's route. Pools are named by name or id and must be the org's; a
        pool cannot be both forbidden and used."""
        _project_id(project_id)
        ids: dict[str, list[str]] = {}
        for key, refs in (("preferred", preferred), ("allowed", allowed), ("forbidden", forbidden)):
            ids[key] = list(dict.fromkeys([(await self.pool_named(org_id, r)).id for r in refs]))
        fallback_id = (await self.pool_named(org_id, fallback)).id if fallback else None
        used = set(ids["preferred"]) | set(ids["allowed"]) | ({fallback_id} - {None})
        clash = used & set(ids["forbidden"])
        if clash:
            names = {p.id: p.name for p in await self.pools(org_id)}
            listed = ", ".join(sorted(names[c] for c in clash if c))
            raise FleetError(f"pools cannot be both forbidden and used: {listed}")
        if not used:
            raise FleetError("a route needs at least one preferred, allowed or fallback pool")
        async with as_org(self.pool, org_id) as conn:
            await conn.execute(
                """INSERT INTO execution_routes (org_id, project_id, preferred, allowed,
                                                 forbidden, fallback)
                   VALUES ($1, $2, $3::uuid[], $4::uuid[], $5::uuid[], $6::uuid)
                   ON CONFLICT (org_id, project_id) DO UPDATE
                       SET preferred = excluded.preferred, allowed = excluded.allowed,
                           forbidden = excluded.forbidden, fallback = excluded.fallback,
                           updated_at = clock_timestamp()""",
                org_id,
                project_id,
                ids["preferred"],
                ids["allowed"],
                ids["forbidden"],
                fallback_id,
            )
        return Route(
            org_id, project_id, ids["preferred"], ids["allowed"], ids["forbidden"], fallback_id
        )

    @_span
    async def route(self, org_id: str, project_id: str) -> Route | None:
        """The project's route; a project with none but legacy sandbox settings gets one now
        (a pool for its provider, preferred), once."""
        async with as_org(self.pool, org_id) as conn:
            route = await _stored_route(conn, org_id, project_id)
            if route is not None:
                return route
            legacy = await conn.fetchrow(
                "SELECT sandbox_provider, sandbox_mode, sandbox_credential_id"
                " FROM legacy_project_sandbox WHERE org_id = $1 AND project_id = $2",
                org_id,
                project_id,
            )
            if legacy is None:
                return None
            name = f"legacy-{legacy['sandbox_provider']}-{legacy['sandbox_mode']}"
            await conn.execute(
                """INSERT INTO execution_pools (id, org_id, name, provider, mode, credential_ref)
                   VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (org_id, name) DO NOTHING""",
                str(uuid.uuid4()),
                org_id,
                name,
                legacy["sandbox_provider"],
                legacy["sandbox_mode"],
                legacy["sandbox_credential_id"],
            )
            await conn.execute(
                """INSERT INTO execution_routes (org_id, project_id, preferred)
                   SELECT $1, $2, ARRAY[id] FROM execution_pools WHERE org_id = $1 AND name = $3
                   ON CONFLICT (org_id, project_id) DO NOTHING""",
                org_id,
                project_id,
                name,
            )
            route = await _stored_route(conn, org_id, project_id)
        return None if route is None else Route(**{**route.__dict__, "legacy": True})

    @_span
    async def set_legacy_sandbox(
        self,
        org_id: str,
        project_id: str,
        provider: str,
        mode: str = "managed",
        credential_id: str | None = None,
    ) -> None:
        """Write a project's legacy sandbox settings (the old model's projects.sandbox_*)."""
        _known_provider(provider)
        async with as_org(self.pool, org_id) as conn:
            await conn.execute(
                """INSERT INTO legacy_project_sandbox (org_id, project_id, sandbox_provider,
                                                       sandbox_mode, sandbox_credential_id)
                   VALUES ($1, $2, $3, $4, $5)
                   ON CONFLICT (org_id, project_id) DO UPDATE
                       SET sandbox_provider = excluded.sandbox_provider,
                           sandbox_mode = excluded.sandbox_mode,
                           sandbox_credential_id = excluded.sandbox_credential_id""",
                org_id,
                project_id,
                provider,
                mode,
                credential_id,
            )

    # --- workers --------------------------------------------------------------------------------

    @_span
    async def register_worker(
        self,
        registration: Registration,
        pool_id: str,
        *,
        max_concurrency: int,
        hostname: str = "",
        version: str = "",
        capabilities: Sequence[str] = (),
    ) -> str:
        worker_id = "wkr_" + secrets.token_hex(8)
        async with as_org(self.pool, registration.org_id) as conn:
            await conn.execute(
                """INSERT INTO fleet_workers (id, org_id, project_id, pool_id, registration_id,
                                              hostname, version, capabilities, max_concurrency)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9)""",
                worker_id,
                registration.org_id,
                registration.project_id,
                pool_id,
                registration.id,
                hostname,
                version,
                json.dumps(list(capabilities)),
                max_concurrency,
            )
        return worker_id

    @_span
    async def heartbeat(
        self,
        worker_id: str,
        running: Sequence[str] | None,
        *,
        org_id: str,
        settle: timedelta = timedelta(seconds=60),
        active: int | None = None,
    ) -> bool:
        """Record a heartbeat with the sessions the worker runs (None: it did not say); a worker
        marked offline comes back online. A session it claimed more than `settle` ago that it
        no longer lists is released: it stops taking a slot (its run ended without finishing,
        e.g. terminated), and nothing else about it changes; a later heartbeat that lists it
        again takes the slot back. False for a worker that deregistered or never was."""
        async with as_org(self.pool, org_id) as conn:
            status: str = await conn.execute(
                "UPDATE fleet_workers SET last_heartbeat_at = clock_timestamp(), active = $2,"
                " status = 'online' WHERE id = $1 AND status <> 'deregistered'",
                worker_id,
                active if active is not None else len(running or ()),
            )
            if not status.endswith(" 1"):
                return False
            if running is None:
                return True
            await conn.execute(
                """UPDATE agent_sessions
                   SET released_at = CASE WHEN session_id = ANY($2::text[]) THEN NULL
                                          ELSE clock_timestamp() END
                   WHERE worker_id = $1 AND status = 'running'
                     AND ((released_at IS NULL AND NOT (session_id = ANY($2::text[]))
                           AND claimed_at < clock_timestamp() - $3::interval)
                          OR (released_at IS NOT NULL AND session_id = ANY($2::text[])))""",
                worker_id,
                list(running),
                settle,
            )
        return True

    @_span
    async def deregister(self, worker_id: str, *, org_id: str) -> bool:
        async with as_org(self.pool, org_id) as conn:
            status: str = await conn.execute(
                "UPDATE fleet_workers SET status = 'deregistered',"
                " deregistered_at = clock_timestamp()"
                " WHERE id = $1 AND status <> 'deregistered'",
                worker_id,
            )
        return status.endswith(" 1")

    @_span
    async def mark_offline(self, grace: timedelta, *, org_id: str) -> list[str]:
        """Mark the org's workers silent for longer than `grace` offline; returns their ids."""
        async with as_org(self.pool, org_id) as conn:
            rows = await conn.fetch(
                "UPDATE fleet_workers SET status = 'offline' WHERE status = 'online'"
                " AND last_heartbeat_at < clock_timestamp() - $1::interval RETURNING id",
                grace,
            )
        return [r["id"] for r in rows]

    @_span
    async def workers(
        self, org_id: str, project_id: str | None = None, *, include_gone: bool = False
    ) -> list[WorkerRecord]:
        async with as_org(self.pool, org_id) as conn:
            rows = await conn.fetch(
                f"""{_WORKERS} WHERE w.org_id = $1 AND ($2::text IS NULL OR w.project_id = $2)
                    AND ($3 OR w.status <> 'deregistered')
                    ORDER BY p.name, w.registered_at""",
                org_id,
                project_id,
                include_gone,
            )
        return [_worker(r) for r in rows]

    @_span
    async def worker(self, worker_id: str, *, org_id: str) -> WorkerRecord | None:
        """The worker of `org_id`; None for one unknown to that org."""
        async with as_org(self.pool, org_id) as conn:
            row = await conn.fetchrow(f"{_WORKERS} WHERE w.id = $1", worker_id)
        return None if row is None else _worker(row)

    @_span
    async def capacity(self, org_id: str, project_id: str, pools: Sequence[Pool]) -> list[Capacity]:
        """Each pool's live capacity for `project_id`: its online workers registered for the
        project, the project's sessions running there, and all sessions running there (what
        the pool's `max_sessions` counts)."""
        async with as_org(self.pool, org_id) as conn:
            return await _capacity(conn, org_id, project_id, pools, "")

    @_span
    async def place(
        self,
        org_id: str,
        project_id: str,
        session_id: str,
        pools: Sequence[Pool],
        choose: Callable[[list[Capacity]], Capacity | None],
        waiting: str,
        *,
        lost: bool = False,
    ) -> Capacity | None:
        """Place a session on the pool `choose` picks from `pools`' live capacity, stamping it
        on the session; with none, stamp `waiting`. Placements in one org take turns, so two
        sessions never take the same last slot. `lost`: the worker that claimed the session
        last is gone (its heartbeats to Temporal stopped), so it is marked offline first, and
        its slots stop counting at once rather than after the grace period; its next heartbeat
        to the platform, if any, brings it back."""
        async with as_org(self.pool, org_id) as conn:
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('fleet:' || $1))", org_id)
            if lost:
                await conn.execute(
                    "UPDATE fleet_workers SET status = 'offline' WHERE status = 'online' AND id ="
                    " (SELECT worker_id FROM agent_sessions WHERE session_id = $1)",
                    session_id,
                )
            chosen = choose(await _capacity(conn, org_id, project_id, pools, session_id))
            pool = chosen.pool if chosen else None
            await conn.execute(
                "UPDATE agent_sessions SET pool_id = $2::uuid, pool_name = $3, placement = $4,"
                " placed_at = clock_timestamp(), worker_id = '', claimed_at = NULL,"
                " released_at = NULL WHERE session_id = $1",
                session_id,
                pool.id if pool else None,
                pool.name if pool else "",
                f"routed to pool {pool.name}" if pool else waiting,
            )
        return chosen

    @_span
    async def place_unrouted(self, session_id: str, placement: str, *, org_id: str) -> None:
        """Stamp a session whose project has no route: on no pool, with why."""
        async with as_org(self.pool, org_id) as conn:
            await conn.execute(
                "UPDATE agent_sessions SET pool_id = NULL, pool_name = '', placement = $2"
                " WHERE session_id = $1",
                session_id,
                placement,
            )

    @_span
    async def session_placement(self, session_id: str, *, org_id: str) -> Placement | None:
        """Where a session of `org_id` is placed; None for one unknown to that org."""
        async with as_org(self.pool, org_id) as conn:
            row = await conn.fetchrow(_PLACEMENT, session_id)
        return None if row is None else Placement(**dict(row))

    @_span
    async def session_placement_any_org(self, session_id: str) -> Placement | None:
        """Where a session is placed, looked up org by org: for the legacy shared worker key,
        which is global as it was in the old model (and so off by default)."""

        async def of_org(conn: Any, _org: str, _room: int) -> list[Placement]:
            row = await conn.fetchrow(_PLACEMENT, session_id)
            return [] if row is None else [Placement(**dict(row))]

        found = await each_org(self.pool, of_org, 1)
        return found[0] if found else None

    @_span
    async def claim_session(self, session_id: str, worker: WorkerRecord) -> int | None:
        """A fleet worker starts the session's runtime: the session must be running, placed on
        the worker's pool, and not claimed by another worker. Returns the claim's number (the
        attempt its progress and output are kept under), or None when it may not."""
        async with as_org(self.pool, worker.org_id) as conn:
            claims: int | None = await conn.fetchval(
                """UPDATE agent_sessions
                   SET worker_id = $2, claimed_at = clock_timestamp(), claims = claims + 1,
                       released_at = NULL,
                       placement = 'running on pool ' || pool_name || ', worker ' || $2
                   WHERE session_id = $1 AND status = 'running' AND pool_id = $3::uuid
                     AND worker_id IN ('', $2)
                   RETURNING claims""",
                session_id,
                worker.id,
                worker.pool_id,
            )
        return claims

    # --- signing keys ---------------------------------------------------------------------------

    @_span
    async def signing_keys(
        self, seal: Callable[[str, bytes], bytes]
    ) -> tuple[list[tuple[str, bytes]], list[str]]:
        """The runtime JWT signing keys, newest first, as `seal(kid, private scalar)` encrypted
        them, making one if there is none (every API instance then signs with the same key);
        and the ids of keys found in clear (stored before keys were encrypted), which are
        encrypted in place first, so no key stays readable in the table."""
        async with as_platform(self.pool) as conn:
            # API instances starting together take turns: one makes the key, all read it.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('fleet:signing-keys'))")
            clear = await conn.fetch(
                "SELECT kid, private_key FROM fleet_signing_keys WHERE NOT encrypted"
            )
            # The application role writes keys only through these functions (migration 0016),
            # which store encrypted keys alone.
            for row in clear:
                await conn.execute(
                    "SELECT durable_seal_signing_key($1, $2)",
                    row["kid"],
                    seal(row["kid"], bytes(row["private_key"])),
                )
            kid = secrets.token_hex(8)
            await conn.execute(
                "SELECT durable_add_signing_key($1, $2)", kid, seal(kid, secrets.token_bytes(32))
            )
            rows = await conn.fetch(
                "SELECT kid, private_key FROM fleet_signing_keys ORDER BY created_at DESC"
            )
        return [(r["kid"], bytes(r["private_key"])) for r in rows], [r["kid"] for r in clear]


_WORKERS = """SELECT w.id, w.org_id, w.project_id, w.pool_id::text, p.name AS pool_name,
                     w.registration_id::text, w.hostname, w.version, w.capabilities::text,
                     w.max_concurrency, w.active, w.status, w.registered_at,
                     w.last_heartbeat_at, w.deregistered_at
              FROM fleet_workers w JOIN execution_pools p ON p.id = w.pool_id"""


_PLACEMENT = (
    "SELECT org_id, project, pool_id::text, worker_id, status, claims FROM agent_sessions"
    " WHERE session_id = $1"
)


async def _stored_route(conn: Any, org_id: str, project_id: str) -> Route | None:
    row = await conn.fetchrow(
        "SELECT preferred::text[], allowed::text[], forbidden::text[], fallback::text"
        " FROM execution_routes WHERE org_id = $1 AND project_id = $2",
        org_id,
        project_id,
    )
    if row is None:
        return None
    return Route(
        org_id, project_id, row["preferred"], row["allowed"], row["forbidden"], row["fallback"]
    )


def _pool(row: asyncpg.Record) -> Pool:
    return Pool(
        id=row["id"],
        org_id=row["org_id"],
        name=row["name"],
        provider=row["provider"],
        mode=row["mode"],
        capacity=json.loads(row["capacity"]),
        credential_ref=row["credential_ref"],
    )


def _worker(row: asyncpg.Record) -> WorkerRecord:
    values = dict(row)
    values["capabilities"] = json.loads(values["capabilities"])
    return WorkerRecord(**values)


def _project_id(project_id: str) -> None:
    if not PROJECT_ID.match(project_id):
        raise FleetError(
            f"project id {project_id!r} is not one: 1-200 characters of A-Z a-z 0-9 . _ : -"
        )


def _known_provider(provider: str) -> None:
    if provider not in PROVIDERS:
        raise FleetError(f"unknown provider {provider!r}; one of: {', '.join(PROVIDERS)}")


def pool_task_queue(pool_id: str, project_id: str) -> str:
    """The Temporal task queue of a pool's workers for one project: a worker's runtime JWT is
    scoped to one project, so it polls only that project's sessions in its pool."""
    return f"fleet/{pool_id}/{project_id}"


async def _capacity(
    conn: asyncpg.Pool | asyncpg.Connection | PoolConnectionProxy,
    org_id: str,
    project_id: str,
    pools: Sequence[Pool],
    placing: str,
) -> list[Capacity]:
    """A session counts against a pool once placed there: claimed by a worker that is online
    and still lists it in its heartbeats, or placed within UNCLAIMED_WINDOW and not claimed yet
    (after that its run has placed it again). `placing`, the session being placed now, does not
    count."""
    rows = await conn.fetch(
        f"""SELECT p.id::text AS pool_id,
                  COALESCE((SELECT sum(max_concurrency) FROM fleet_workers w
                            WHERE w.pool_id = p.id AND w.project_id = $2
                              AND w.status = 'online'), 0)::int AS slots,
                  (SELECT count(*) FROM fleet_workers w WHERE w.pool_id = p.id
                     AND w.project_id = $2 AND w.status = 'online')::int AS workers,
                  (SELECT count(*) FROM agent_sessions s WHERE s.pool_id = p.id
                     AND s.project = $2 AND {TAKES_A_SLOT})::int AS in_use,
                  (SELECT count(*) FROM agent_sessions s WHERE s.pool_id = p.id
                     AND {TAKES_A_SLOT})::int AS pool_in_use
           FROM execution_pools p WHERE p.org_id = $1 AND p.id = ANY($3::uuid[])""",
        org_id,
        project_id,
        [p.id for p in pools],
        placing,
        UNCLAIMED_WINDOW,
    )
    found = {r["pool_id"]: r for r in rows}
    return [
        Capacity(
            pool,
            found[pool.id]["slots"],
            found[pool.id]["in_use"],
            found[pool.id]["workers"],
            found[pool.id]["pool_in_use"],
        )
        if pool.id in found
        else Capacity(pool, 0, 0, 0)
        for pool in pools
    ]

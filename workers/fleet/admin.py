"""What the API and the CLI share for the fleet: the runtime JWT keys from settings, issuing a
registration token, and a project's fleet status."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from store import FleetError, FleetStore, Pool, Route

from ..settings import Settings
from .sealing import local_encryption_key, parse_encryption_key, seal, unseal
from .tokens import IssuedToken, RuntimeKeys, issue_registration_token

log = logging.getLogger("durable.fleet")


def _kid(key: ec.EllipticCurvePrivateKey) -> str:
    raw = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return hashlib.sha256(raw).hexdigest()[:16]


def signing_key_from_pem(pem: str) -> ec.EllipticCurvePrivateKey:
    """DURABLE_FLEET_SIGNING_KEY: a P-256 private key in PEM, e.g. from
    `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`."""
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError(
            "DURABLE_FLEET_SIGNING_KEY must be an unencrypted P-256 (prime256v1) private key in "
            "PEM: openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256"
        )
    return key


NO_KEY_CONFIGURED = (
    "the fleet API needs DURABLE_FLEET_SIGNING_KEY (a P-256 private key in PEM) or "
    "DURABLE_FLEET_KEY_ENCRYPTION_KEY (base64 of 32 bytes: openssl rand -base64 32, which "
    "encrypts the signing key kept in PostgreSQL); neither is set, and without them a key kept "
    "in the database would be readable by anyone who can read the database"
)


def encryption_key(settings: Settings) -> bytes:
    """DURABLE_FLEET_KEY_ENCRYPTION_KEY; in the embedded stack (no DATABASE_URL) without it, a
    key made once and kept owner-only in DURABLE_DATA_DIR/fleet-key-encryption. With
    DATABASE_URL set and neither it nor DURABLE_FLEET_SIGNING_KEY: ValueError, naming both."""
    if settings.fleet_key_encryption_key is not None:
        return parse_encryption_key(settings.fleet_key_encryption_key.get_secret_value())
    if settings.database_url is None:
        return local_encryption_key(settings.data_dir / "fleet-key-encryption")
    raise ValueError(NO_KEY_CONFIGURED)


async def runtime_keys(settings: Settings, fleet: FleetStore) -> RuntimeKeys:
    """DURABLE_FLEET_SIGNING_KEY's key, or the ones kept in Postgres (made on first use: 32
    random bytes, the P-256 private scalar), encrypted under `encryption_key(settings)`: the
    table alone signs nothing. A key found there in clear (kept before keys were encrypted) is
    encrypted in place, with a warning: it was readable until now, so rotate it."""
    if settings.fleet_signing_key is not None:
        key = signing_key_from_pem(settings.fleet_signing_key.get_secret_value())
        keys = [(_kid(key), key)]
    else:
        secret = encryption_key(settings)
        stored, were_clear = await fleet.signing_keys(lambda kid, scalar: seal(secret, kid, scalar))
        if were_clear:
            log.warning(
                "fleet signing keys %s were stored in clear; they are encrypted now, but whoever "
                "could read fleet_signing_keys before could mint runtime JWTs with them: rotate "
                "(set DURABLE_FLEET_SIGNING_KEY, or delete those rows, then register workers "
                "again)",
                ", ".join(were_clear),
            )
        keys = [
            (
                kid,
                ec.derive_private_key(
                    int.from_bytes(unseal(secret, kid, raw), "big"), ec.SECP256R1()
                ),
            )
            for kid, raw in stored
        ]
    return RuntimeKeys(
        keys,
        issuer=settings.fleet_issuer,
        audience=settings.fleet_audience,
        ttl=timedelta(seconds=settings.fleet_jwt_ttl_seconds),
        namespace=settings.temporal_namespace,
    )


@dataclass(frozen=True)
class CreatedToken:
    id: str
    token: IssuedToken
    pool: Pool
    expires_at: datetime


async def create_registration_token(
    fleet: FleetStore,
    org: str,
    project: str,
    pool_ref: str,
    *,
    name: str = "",
    ttl: timedelta = timedelta(days=30),
) -> CreatedToken:
    """A registration token for workers of `project` on the org's pool `pool_ref` (name or
    id). The plaintext is in the result once; only its hash is kept."""
    if not project:
        raise FleetError("a registration token is for one project: name it")
    pool = await fleet.pool_named(org, pool_ref)
    route = await fleet.route(org, project)
    if route is not None and pool.id in route.forbidden:
        raise FleetError(f"pool {pool.name!r} is forbidden by project {project!r}'s route")
    issued = issue_registration_token()
    token_id = await fleet.add_registration_token(
        org, project, issued.hash, issued.prefix, ttl, pool_id=pool.id, name=name
    )
    return CreatedToken(token_id, issued, pool, datetime.now(UTC) + ttl)


def route_json(route: Route | None, pools: list[Pool]) -> dict[str, Any] | None:
    """A route with its pools by name."""
    if route is None:
        return None
    names = {p.id: p.name for p in pools}
    return {
        "project": route.project_id,
        "preferred": [names.get(i, i) for i in route.preferred],
        "allowed": [names.get(i, i) for i in route.allowed],
        "forbidden": [names.get(i, i) for i in route.forbidden],
        "fallback": names.get(route.fallback, route.fallback) if route.fallback else None,
        "legacy": route.legacy,
    }


async def fleet_status(
    fleet: FleetStore, org: str, project: str, grace: timedelta
) -> dict[str, Any]:
    """A project's route, its pools' live capacity, and its workers with their last
    heartbeat; workers silent past `grace` are marked offline first."""
    await fleet.mark_offline(grace, org_id=org)
    pools = await fleet.pools(org)
    route = await fleet.route(org, project)
    used = (
        [p for p in pools if p.id in {*route.preferred, *route.allowed, route.fallback}]
        if route
        else []
    )
    caps = await fleet.capacity(org, project, used)
    now = datetime.now(UTC)
    workers = await fleet.workers(org, project)
    return {
        "org": org,
        "project": project,
        "route": route_json(route, pools),
        "pools": [
            {
                "name": c.pool.name,
                "provider": c.pool.provider,
                "workers_online": c.workers,
                "slots": c.slots,
                "in_use": c.in_use,
            }
            for c in caps
        ],
        "workers": [
            {
                "id": w.id,
                "pool": w.pool_name,
                "status": w.status,
                "hostname": w.hostname,
                "version": w.version,
                "max_concurrency": w.max_concurrency,
                "active": w.active,
                "last_heartbeat_at": w.last_heartbeat_at.isoformat(),
                "last_heartbeat_seconds_ago": round((now - w.last_heartbeat_at).total_seconds()),
            }
            for w in workers
        ],
    }

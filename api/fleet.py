"""The worker fleet's HTTP API: registration, worker calls with the runtime JWT, the JWKS, the
session calls a fleet worker makes while it runs a session, and pool, route and token management.

Who may call what:
- `POST /api/workers/register` takes a registration token (`rsp_live_...`) and nothing else;
  a registration token is accepted nowhere else.
- The other worker and session calls take a runtime JWT, whose worker (`sub`) must be of the
  org, project and registration the token claims. A worker sees only its own project's
  workers and sessions (another project's are as absent as missing ones) and acts only as itself.
- `POST /api/sessions/{id}/progress` also takes the legacy shared worker key, when that is
  switched on (DURABLE_LEGACY_WORKER_KEY_ENABLED), with a deprecation warning in the log.
- `/api/execution/...` and `/api/projects/{id}/...` take an API key (or OIDC token) with the
  `admin` scope, and act for its org (`api/auth.py`).

A refused credential is a bare 401 `{"error": "unauthorized"}`; why it was refused is logged,
with a registration token named only by its prefix.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from store import (
    CONNECTION_ERRORS,
    PROVIDERS,
    FleetError,
    FleetStore,
    Placement,
    Pool,
    RegistrationRefused,
    SessionStore,
    WorkerRecord,
    describe_connection_error,
    pool_task_queue,
)
from workers.fleet.admin import (
    create_registration_token,
    fleet_status,
    route_json,
    runtime_keys,
)
from workers.fleet.tokens import (
    LOGGED_CHARS,
    REGISTRATION_PREFIX,
    RuntimeClaims,
    RuntimeKeys,
    TokenRejected,
    registration_token_hash,
)
from workers.settings import Settings

from .auth import ADMIN, Authenticator, Unauthenticated
from .fleet_bodies import MAX_BODY_BYTES as MAX_BODY_BYTES  # where callers read it
from .fleet_bodies import (
    Heartbeat,
    NewPool,
    NewToken,
    Output,
    Progress,
    Register,
    RouteBody,
    parse_body,
    project_refused,
)
from .oidc import IssuerUnavailable

log = logging.getLogger("durable.fleet.api")

WORKER_SCOPE = "worker"


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _unauthorized(reason: str, path: str) -> JSONResponse:
    log.warning("credential refused", extra={"reason": reason, "path": path})
    return _error(401, "unauthorized")


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


Handler = Callable[[Request], Awaitable[Response]]


class FleetApi:
    def __init__(
        self,
        fleet: FleetStore,
        sessions: SessionStore,
        keys: RuntimeKeys,
        *,
        heartbeat_grace: timedelta = timedelta(seconds=90),
        heartbeat_seconds: float = 30.0,
        admins: Authenticator | None = None,
        legacy_worker_key: SecretStr | None = None,
    ) -> None:
        self.fleet, self.sessions, self.keys = fleet, sessions, keys
        self.grace, self.heartbeat_seconds = heartbeat_grace, heartbeat_seconds
        self.admins = admins  # who may manage pools, routes and tokens (create_app sets it)
        self._legacy = legacy_worker_key  # None: the legacy key is off

    # --- credentials ----------------------------------------------------------------------------

    async def _claims(self, request: Request) -> RuntimeClaims | JSONResponse:
        path = request.url.path
        token = _bearer(request)
        if token is None:
            return _unauthorized("no bearer token", path)
        if token.startswith(REGISTRATION_PREFIX):
            return _unauthorized(
                f"registration token {token[:LOGGED_CHARS]}… used outside /api/workers/register",
                path,
            )
        try:
            claims = self.keys.verify(token)
        except TokenRejected as err:
            return _unauthorized(f"runtime JWT refused: {err.reason}", path)
        if claims.scope != WORKER_SCOPE:
            return _unauthorized(f"runtime JWT with scope {claims.scope!r}", path)
        worker = await self.fleet.worker(claims.sub, org_id=claims.org)
        if worker is None:
            return _unauthorized(
                f"runtime JWT of worker {claims.sub} claims org {claims.org!r}, project "
                f"{claims.proj!r}; that org has no such worker",
                path,
            )
        if not await self.fleet.registration_valid(claims.reg, org_id=claims.org):
            return _unauthorized(
                f"runtime JWT of worker {claims.sub}: its registration was revoked", path
            )
        if worker.status == "deregistered":
            return _unauthorized(f"runtime JWT of worker {claims.sub}: it deregistered", path)
        if (worker.org_id, worker.project_id, worker.registration_id) != (
            claims.org,
            claims.proj,
            claims.reg,
        ):
            return _unauthorized(
                f"runtime JWT of worker {claims.sub} claims org {claims.org!r}, project "
                f"{claims.proj!r}, registration {claims.reg!r}; the worker is of org "
                f"{worker.org_id!r}, project {worker.project_id!r}, registration "
                f"{worker.registration_id!r}",
                path,
            )
        return claims

    async def _admin_org(self, request: Request) -> str | JSONResponse:
        if self.admins is None:
            return _error(503, "fleet management over HTTP is off: the API has no authenticator")
        try:
            principal = await self.admins.principal(request)
        except Unauthenticated as err:
            return _unauthorized(str(err), request.url.path)
        except IssuerUnavailable as err:
            return _error(503, f"cannot check the bearer token now: {err}")
        if ADMIN not in principal.scopes:
            return _error(403, f"{principal.name} lacks the scope 'admin' fleet management needs")
        return principal.org_id

    def _legacy_key(self, request: Request) -> bool:
        token = _bearer(request)
        if self._legacy is None or token is None:
            return False
        if not hmac.compare_digest(token.encode(), self._legacy.get_secret_value().encode()):
            return False
        log.warning(
            "deprecated: the legacy shared worker key (WORKER_API_KEY) was used; register "
            "workers with a registration token and use their runtime JWT",
            extra={"path": request.url.path},
        )
        return True

    # --- workers --------------------------------------------------------------------------------

    async def register(self, request: Request) -> Response:
        token = _bearer(request)
        if token is None or not token.startswith(REGISTRATION_PREFIX):
            return _unauthorized("register needs a registration token", request.url.path)
        body = await parse_body(request, Register)
        if isinstance(body, Response):
            return body
        try:
            registration = await self.fleet.redeem(registration_token_hash(token))
        except RegistrationRefused as err:
            return _unauthorized(err.reason, request.url.path)
        if registration.pool_id is None:
            return _error(422, "this registration token names no pool; create one with --pool")
        pool = await self.fleet.pool_named(registration.org_id, registration.pool_id)
        if body.capabilities and pool.provider not in body.capabilities:
            return _error(
                422,
                f"pool {pool.name!r} is a {pool.provider} pool; this worker offers "
                f"{', '.join(body.capabilities)}",
            )
        worker_id = await self.fleet.register_worker(
            registration,
            pool.id,
            max_concurrency=body.max_concurrency,
            hostname=body.hostname,
            version=body.version,
            capabilities=body.capabilities,
        )
        jwt, claims = self.keys.mint(
            project=registration.project_id,
            org=registration.org_id,
            worker=worker_id,
            registration=registration.id,
        )
        log.info(
            "worker registered",
            extra={"worker": worker_id, "pool": pool.name, "token": registration.prefix + "…"},
        )
        return JSONResponse(
            {
                "workerId": worker_id,
                "runtimeJwt": jwt,
                "expiresAt": _at(claims.exp),
                "org": registration.org_id,
                "project": registration.project_id,
                "pool": {"id": pool.id, "name": pool.name, "provider": pool.provider},
                "taskQueue": pool_task_queue(pool.id, registration.project_id),
                "heartbeatSeconds": self.heartbeat_seconds,
            },
            status_code=201,
        )

    async def _own_worker(self, request: Request, claims: RuntimeClaims) -> Response | None:
        """None when the path names the calling worker; 404 for another project's (as absent
        as a missing one), 403 for another worker of the same project."""
        worker_id = request.path_params["worker_id"]
        found = await self.fleet.worker(worker_id, org_id=claims.org)
        if found is None or (found.org_id, found.project_id) != (claims.org, claims.proj):
            return _error(404, f"no worker {worker_id!r}")
        if worker_id != claims.sub:
            return _error(403, "a worker may act only as itself")
        return None

    async def list_workers(self, request: Request, claims: RuntimeClaims) -> Response:
        await self.fleet.mark_offline(self.grace, org_id=claims.org)
        workers = await self.fleet.workers(claims.org, claims.proj)
        return JSONResponse({"workers": [_worker_json(w) for w in workers]})

    async def describe_worker(self, request: Request, claims: RuntimeClaims) -> Response:
        await self.fleet.mark_offline(self.grace, org_id=claims.org)
        found = await self.fleet.worker(request.path_params["worker_id"], org_id=claims.org)
        if found is None or (found.org_id, found.project_id) != (claims.org, claims.proj):
            return _error(404, f"no worker {request.path_params['worker_id']!r}")
        return JSONResponse(_worker_json(found))

    async def heartbeat(self, request: Request, claims: RuntimeClaims) -> Response:
        refused = await self._own_worker(request, claims)
        if refused is not None:
            return refused
        body = await parse_body(request, Heartbeat)
        if isinstance(body, Response):
            return body
        settle = timedelta(seconds=max(10.0, 2 * self.heartbeat_seconds))
        if not await self.fleet.heartbeat(
            claims.sub, body.sessions, org_id=claims.org, settle=settle, active=body.active
        ):
            return _error(410, f"worker {claims.sub} deregistered; register again")
        return JSONResponse({"ok": True, "heartbeatSeconds": self.heartbeat_seconds})

    async def refresh(self, request: Request, claims: RuntimeClaims) -> Response:
        refused = await self._own_worker(request, claims)
        if refused is not None:
            return refused
        found = await self.fleet.worker(claims.sub, org_id=claims.org)
        if found is None or found.status == "deregistered":
            return _error(410, f"worker {claims.sub} deregistered; register again")
        jwt, fresh = self.keys.mint(
            project=claims.proj, org=claims.org, worker=claims.sub, registration=claims.reg
        )
        return JSONResponse({"runtimeJwt": jwt, "expiresAt": _at(fresh.exp)})

    async def deregister(self, request: Request, claims: RuntimeClaims) -> Response:
        refused = await self._own_worker(request, claims)
        if refused is not None:
            return refused
        await self.fleet.deregister(claims.sub, org_id=claims.org)
        log.info("worker deregistered", extra={"worker": claims.sub})
        return Response(status_code=204)

    async def jwks(self, request: Request) -> Response:
        return JSONResponse(self.keys.jwks())

    # --- sessions a fleet worker runs -----------------------------------------------------------

    async def _session(
        self, request: Request, claims: RuntimeClaims
    ) -> tuple[Placement, WorkerRecord] | Response:
        """The session in the path and the calling worker, when the session was placed on the
        worker's pool for its project: another project's (or org's) session is as absent as a
        missing one (404), another pool's is refused (403)."""
        session_id = request.path_params["session_id"]
        placed = await self.fleet.session_placement(session_id, org_id=claims.org)
        worker = await self.fleet.worker(claims.sub, org_id=claims.org)
        if placed is None or (placed.org_id, placed.project) != (claims.org, claims.proj):
            return _error(404, f"no agent session {session_id!r}")
        if worker is None or placed.pool_id != worker.pool_id:
            return _error(403, f"agent session {session_id!r} is not placed on this worker's pool")
        return placed, worker

    async def _claimed(
        self, request: Request, claims: RuntimeClaims, claim: int | None
    ) -> Placement | Response:
        """The session, when the calling worker holds its current claim (`claim`, the number
        its claim call returned) and it is still running: an attempt of an earlier claim, even
        on the same worker, writes nothing."""
        found = await self._session(request, claims)
        if isinstance(found, Response):
            return found
        placed, _ = found
        session_id = request.path_params["session_id"]
        if placed.worker_id != claims.sub or placed.status != "running":
            return _error(
                409,
                f"agent session {session_id!r} is not running on this worker (finished, or "
                "claimed by another)",
            )
        if claim != placed.claims:
            return _error(
                409, f"claim {claim} of agent session {session_id!r} is not its current claim"
            )
        return placed

    async def claim(self, request: Request, claims: RuntimeClaims) -> Response:
        found = await self._session(request, claims)
        if isinstance(found, Response):
            return found
        session_id = request.path_params["session_id"]
        attempt = await self.fleet.claim_session(session_id, found[1])
        if attempt is None:
            return _error(
                409, f"agent session {session_id!r} is finished or claimed by another worker"
            )
        return JSONResponse({"sessionId": session_id, "workerId": claims.sub, "attempt": attempt})

    async def progress(self, request: Request) -> Response:
        # The legacy shared key is global, as it was in the old model: it may write progress to
        # any session. That is why it is off by default and only accepted here.
        legacy = self._legacy_key(request)
        claims = None if legacy else await self._claims(request)
        if isinstance(claims, Response):
            return claims
        body = await parse_body(request, Progress)
        if isinstance(body, Response):
            return body
        session_id = request.path_params["session_id"]
        if claims is None:
            placement = await self.fleet.session_placement_any_org(session_id)
            if placement is None:
                return _error(404, f"no agent session {session_id!r}")
            org_id, attempt = placement.org_id, body.attempt
        else:
            placed = await self._claimed(request, claims, body.claim)
            if isinstance(placed, Response):
                return placed
            org_id, attempt = placed.org_id, placed.claims
        await self.sessions.add_progress(session_id, attempt, body.seq, body.line, org_id=org_id)
        return JSONResponse({"ok": True})

    async def output(self, request: Request, claims: RuntimeClaims) -> Response:
        body = await parse_body(request, Output)
        if isinstance(body, Response):
            return body
        placed = await self._claimed(request, claims, body.claim)
        if isinstance(placed, Response):
            return placed
        await self.sessions.save_output(
            request.path_params["session_id"],
            placed.claims,
            body.transcript,
            body.result,
            org_id=placed.org_id,
        )
        return JSONResponse({"ok": True})

    # --- management -----------------------------------------------------------------------------

    async def pools(self, request: Request, org: str) -> Response:
        if request.method == "POST":
            body = await parse_body(request, NewPool)
            if isinstance(body, Response):
                return body
            if body.provider not in PROVIDERS:
                return _error(422, f"provider must be one of: {', '.join(PROVIDERS)}")
            pool = await self.fleet.create_pool(
                org,
                body.name,
                body.provider,
                mode=body.mode,
                capacity=body.capacity.model_dump(exclude_none=True),
                credential_ref=body.credential_ref,
            )
            return JSONResponse(_pool_json(pool), status_code=201)
        return JSONResponse({"pools": [_pool_json(p) for p in await self.fleet.pools(org)]})

    async def execution_route(self, request: Request, org: str) -> Response:
        project = request.path_params["project_id"]
        if request.method == "PUT":
            body = await parse_body(request, RouteBody)
            if isinstance(body, Response):
                return body
            await self.fleet.set_route(
                org,
                project,
                preferred=body.preferred,
                allowed=body.allowed,
                forbidden=body.forbidden,
                fallback=body.fallback,
            )
        route = await self.fleet.route(org, project)
        if route is None:
            return _error(404, f"project {project!r} has no execution route")
        return JSONResponse(route_json(route, await self.fleet.pools(org)))

    async def tokens(self, request: Request, org: str) -> Response:
        body = await parse_body(request, NewToken)
        if isinstance(body, Response):
            return body
        created = await create_registration_token(
            self.fleet,
            org,
            request.path_params["project_id"],
            body.pool,
            name=body.name,
            ttl=timedelta(days=body.expires_in_days),
        )
        return JSONResponse(
            {
                "id": created.id,
                "token": created.token.plaintext,  # shown this once
                "prefix": created.token.prefix,
                "pool": created.pool.name,
                "expiresAt": created.expires_at.isoformat(),
            },
            status_code=201,
        )

    async def status(self, request: Request, org: str) -> Response:
        return JSONResponse(
            await fleet_status(self.fleet, org, request.path_params["project_id"], self.grace)
        )

    # --- wiring ---------------------------------------------------------------------------------

    def _worker_call(
        self, handler: Callable[[Request, RuntimeClaims], Awaitable[Response]]
    ) -> Handler:
        async def call(request: Request) -> Response:
            claims = await self._claims(request)
            if isinstance(claims, Response):
                return claims
            return await handler(request, claims)

        return _guarded(call)

    def _admin_call(self, handler: Callable[[Request, str], Awaitable[Response]]) -> Handler:
        async def call(request: Request) -> Response:
            org = await self._admin_org(request)
            if isinstance(org, Response):
                return org
            refused = project_refused(request)  # a project in the path must be a project id
            if refused is not None:
                return refused
            return await handler(request, org)

        return _guarded(call)

    def routes(self) -> list[Route]:
        worker = self._worker_call
        admin = self._admin_call
        return [
            Route("/.well-known/jwks.json", _guarded(self.jwks), methods=["GET"]),
            Route("/api/workers/jwks", _guarded(self.jwks), methods=["GET"]),
            Route("/api/workers/register", _guarded(self.register), methods=["POST"]),
            Route("/api/workers", worker(self.list_workers), methods=["GET"]),
            Route("/api/workers/{worker_id}", worker(self.describe_worker), methods=["GET"]),
            Route("/api/workers/{worker_id}", worker(self.deregister), methods=["DELETE"]),
            Route("/api/workers/{worker_id}/heartbeat", worker(self.heartbeat), methods=["POST"]),
            Route("/api/workers/{worker_id}/refresh", worker(self.refresh), methods=["POST"]),
            Route("/api/sessions/{session_id:path}/claim", worker(self.claim), methods=["POST"]),
            Route(
                "/api/sessions/{session_id:path}/progress",
                _guarded(self.progress),
                methods=["POST"],
            ),
            Route("/api/sessions/{session_id:path}/output", worker(self.output), methods=["POST"]),
            Route("/api/execution/pools", admin(self.pools), methods=["GET", "POST"]),
            Route(
                "/api/projects/{project_id}/execution-route",
                admin(self.execution_route),
                methods=["GET", "PUT"],
            ),
            Route("/api/projects/{project_id}/tokens", admin(self.tokens), methods=["POST"]),
            Route("/api/projects/{project_id}/fleet", admin(self.status), methods=["GET"]),
        ]


def _guarded(handler: Handler) -> Handler:
    """A fleet error is the caller's to fix (422); an unreachable store is a 503."""

    async def call(request: Request) -> Response:
        try:
            return await handler(request)
        except FleetError as err:
            return _error(422, str(err))
        except CONNECTION_ERRORS as err:  # the detail is for the log, not an unknown caller
            log.error("fleet store unreachable", extra={"error": describe_connection_error(err)})
            return _error(503, "the fleet store is unreachable; try again")

    return call


def _at(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def _worker_json(w: WorkerRecord) -> dict[str, Any]:
    return {
        "id": w.id,
        "project": w.project_id,
        "pool": w.pool_name,
        "status": w.status,
        "hostname": w.hostname,
        "version": w.version,
        "capabilities": w.capabilities,
        "maxConcurrency": w.max_concurrency,
        "active": w.active,
        "registeredAt": w.registered_at.isoformat(),
        "lastHeartbeatAt": w.last_heartbeat_at.isoformat(),
    }


def _pool_json(pool: Pool) -> dict[str, Any]:
    return {
        "id": pool.id,
        "name": pool.name,
        "provider": pool.provider,
        "mode": pool.mode,
        "capacity": pool.capacity,
        "credentialRef": pool.credential_ref,
    }


async def fleet_api(settings: Settings, pool: asyncpg.Pool) -> FleetApi:
    """The fleet API as settings configure it. ValueError when it must not start: with
    DATABASE_URL set, neither DURABLE_FLEET_SIGNING_KEY nor DURABLE_FLEET_KEY_ENCRYPTION_KEY
    (`runtime_keys`), or the legacy key switched on without one."""
    fleet = FleetStore(pool)
    legacy = settings.legacy_worker_key if settings.legacy_worker_key_enabled else None
    if settings.legacy_worker_key_enabled and legacy is None:
        raise ValueError("DURABLE_LEGACY_WORKER_KEY_ENABLED is set but WORKER_API_KEY is not")
    return FleetApi(
        fleet,
        SessionStore(pool),
        await runtime_keys(settings, fleet),
        heartbeat_grace=settings.fleet_heartbeat_grace,
        heartbeat_seconds=settings.fleet_heartbeat_seconds,
        legacy_worker_key=legacy,
    )

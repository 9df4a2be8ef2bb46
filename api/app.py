"""The HTTP API: events (`api/events.py`), reads of a run's steps and of agent sessions, the
codec endpoint, Linear's webhook and the worker fleet, in one Starlette app.

Every route needs a principal (`api/auth.py`) except the signed Linear webhook, the fleet's
JWKS and registration (a registration token is its credential), `/healthz` and `/readyz`.
Reads are of the principal's org; a run, session or event of another org answers exactly as a
missing one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from durable import DurableClient, Registry
from store import (
    CONNECTION_ERRORS,
    EventStore,
    KeyStore,
    SessionStore,
    StepAttempt,
    StepAudit,
)

from .auth import Authenticator, Principal, guarded, org_to_read
from .errors import server_error, unhandled
from .events import EventRoutes
from .fleet import FleetApi
from .guard import RequestGuard
from .health import Check, health_routes
from .oidc import OidcVerifier
from .webhooks import linear_webhook_routes


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def step_json(attempt: StepAttempt) -> dict[str, Any]:
    ended = attempt.ended_at
    return {
        "step_id": attempt.step_id,
        "action": attempt.action,
        "attempt": attempt.attempt,
        "status": attempt.status,
        "started_at": attempt.started_at.isoformat(),
        "ended_at": ended.isoformat() if ended else None,
        "duration_ms": round((ended - attempt.started_at).total_seconds() * 1000, 1)
        if ended
        else None,
        "error": attempt.error,
        "run_id": attempt.run_id,
        "workflow": attempt.workflow_type,
        "workspace_id": attempt.workspace_id,
        "project_id": attempt.project_id,
    }


def create_app(
    client: DurableClient,
    registry: Registry,
    store: EventStore,
    *,
    codec_routes: Sequence[BaseRoute] = (),  # api.codec.codec_routes_for(settings)
    linear_webhook_secrets: Sequence[SecretStr] = (),  # settings.linear_webhook_secret_list()
    fleet: FleetApi | None = None,  # api.fleet.fleet_api(settings, pool)
    oidc: OidcVerifier | None = None,  # api.oidc.OidcVerifier(config_from_env(...))
    auth: Authenticator | None = None,
    readiness: Mapping[str, Check] | None = None,  # what /readyz asks: name -> check
) -> Starlette:
    auth = auth or Authenticator(KeyStore(store.pool), oidc)
    if fleet is not None:
        fleet.admins = auth
    events = EventRoutes(client, registry, store)

    audit = StepAudit(store.pool)

    async def get_steps(request: Request, principal: Principal) -> JSONResponse:
        """The step attempts of a run of the principal's org. A run of another org answers
        exactly as a run that does not exist: no steps."""
        workflow_id = request.path_params["workflow_id"]
        org_id = org_to_read(request, principal)
        if isinstance(org_id, JSONResponse):
            return org_id
        try:
            attempts = await audit.steps(org_id, workflow_id)
        except CONNECTION_ERRORS as err:
            return server_error(request, 503, "the step audit is unreachable; try again", err)
        return JSONResponse({"workflow_id": workflow_id, "steps": [step_json(a) for a in attempts]})

    async def get_stuck(request: Request, principal: Principal) -> JSONResponse:
        """The principal's org's runs that need an operator (`durable stuck`)."""
        org_id = org_to_read(request, principal)
        if isinstance(org_id, JSONResponse):
            return org_id
        try:
            found = await client.stuck(org_id=org_id)
        except CONNECTION_ERRORS as err:
            return server_error(request, 503, "the event store is unreachable; try again", err)
        return JSONResponse({"stuck": [s.model_dump(mode="json") for s in found]})

    sessions = SessionStore(store.pool)

    async def get_session(request: Request, principal: Principal) -> JSONResponse:
        """An agent session's status and progress lines so far, of the principal's org;
        another org's session is as absent as a missing one."""
        session_id = request.path_params["session_id"]
        org_id = org_to_read(request, principal)
        if isinstance(org_id, JSONResponse):
            return org_id
        try:
            record = await sessions.get(session_id, org_id=org_id)
        except CONNECTION_ERRORS as err:
            return server_error(request, 503, "the session store is unreachable; try again", err)
        if record is None or record.org_id != org_id:
            return _error(404, f"no agent session {session_id!r}")
        return JSONResponse(
            {
                "session_id": record.session_id,
                "status": record.status,
                "runtime": record.runtime,
                "project": record.project,
                "requested_by": record.requested_by,
                "agent_id": record.agent_id,
                "pool": record.pool,
                "placement": record.placement,
                "error": record.error,
                "started_at": record.started_at.isoformat(),
                "finished_at": record.finished_at.isoformat() if record.finished_at else None,
                "progress": [line.line for line in record.progress],
                "result": record.result if record.is_terminal else None,
            }
        )

    return Starlette(
        # Any exception a route does not handle: a 500 with a request id, its text in the log.
        exception_handlers={Exception: unhandled},
        # NUL in a path or query is a 400; an answer before the body is read closes.
        middleware=[Middleware(RequestGuard)],
        routes=[
            *health_routes(readiness or {}),
            Route("/events", guarded(auth, None, events.post), methods=["POST"]),
            Route(
                "/events/{event_id:path}", guarded(auth, "runs:read", events.get), methods=["GET"]
            ),
            Route("/runs/stuck", guarded(auth, "runs:read", get_stuck), methods=["GET"]),
            Route(
                "/runs/{workflow_id:path}/steps",
                guarded(auth, "runs:read", get_steps),
                methods=["GET"],
            ),
            Route(
                "/sessions/{session_id:path}",
                guarded(auth, "runs:read", get_session),
                methods=["GET"],
            ),
            *codec_routes,
            *linear_webhook_routes(client, linear_webhook_secrets),
            *(fleet.routes() if fleet is not None else []),
        ],
    )

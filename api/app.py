"""`POST /events` (the HTTP face of `send_event`) and `GET /events/{id}`.

Every refusal is a 4xx with `{"error": "..."}` and stores nothing; 202 comes only after the
event is committed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from durable import (
    MAX_EVENT_BYTES,
    DurableClient,
    EventError,
    EventNotAcknowledged,
    Registry,
    parse_event,
)
from store import (
    CONNECTION_ERRORS,
    EventStore,
    SessionStore,
    StepAttempt,
    StepAudit,
    describe_connection_error,
)

from .fleet import FleetApi
from .webhooks import linear_webhook_routes

# The envelope ({"type", "id"}) may add a little to the event's own limit.
MAX_BODY_BYTES = MAX_EVENT_BYTES + 4096


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


ORG_HEADER = "X-Durable-Org"


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
        "execution_id": attempt.instance_id,
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
) -> Starlette:
    async def post_event(request: Request) -> JSONResponse:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            return _error(413, f"body is {declared} bytes; the limit is {MAX_BODY_BYTES}")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return _error(413, f"body is over the limit of {MAX_BODY_BYTES} bytes")
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            return _error(400, f"body is not valid JSON: {err}")
        if not isinstance(payload, dict) or not isinstance(payload.get("type"), str):
            return _error(422, 'body must be an object like {"type": "...", "data": {...}}')
        event_type = payload.pop("type")
        try:
            event = parse_event(registry.event_type(event_type), payload)
            receipt = await client.send_event(event)
        except EventError as err:
            status = 413 if "the limit is" in str(err) else 422
            return _error(status, str(err))
        except EventNotAcknowledged as err:  # the store is down: retry later, same id
            return _error(503, str(err))
        return JSONResponse(receipt.model_dump(mode="json"), status_code=202)

    audit = StepAudit(store.pool)

    async def get_steps(request: Request) -> JSONResponse:
        """The step attempts of a run, for the org in the `X-Durable-Org` header. A run of
        another org answers exactly as a run that does not exist: no steps."""
        run_id = request.path_params["run_id"]
        org_id = request.headers.get(ORG_HEADER)
        if org_id is None:
            return _error(400, f"say which org you read for in the {ORG_HEADER} header")
        try:
            attempts = await audit.steps(org_id, run_id)
        except CONNECTION_ERRORS as err:
            return _error(503, f"the step audit is unreachable: {describe_connection_error(err)}")
        return JSONResponse({"run_id": run_id, "steps": [step_json(a) for a in attempts]})

    sessions = SessionStore(store.pool)

    async def get_session(request: Request) -> JSONResponse:
        """An agent session's status and progress lines so far, for the org in the
        `X-Durable-Org` header; another org's session is as absent as a missing one."""
        session_id = request.path_params["session_id"]
        org_id = request.headers.get(ORG_HEADER)
        if org_id is None:
            return _error(400, f"say which org you read for in the {ORG_HEADER} header")
        try:
            record = await sessions.get(session_id)
        except CONNECTION_ERRORS as err:
            return _error(
                503, f"the session store is unreachable: {describe_connection_error(err)}"
            )
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

    async def get_event(request: Request) -> JSONResponse:
        event_id = request.path_params["event_id"]
        try:
            stored = await store.get(event_id)
            found = await store.deliveries_of(event_id)
        except CONNECTION_ERRORS as err:
            return _error(503, f"the event store is unreachable: {describe_connection_error(err)}")
        if stored is None:
            return _error(404, f"no event with id {event_id!r}")
        deliveries: list[dict[str, Any]] = []
        for d, state in found:
            entry: dict[str, Any] = {
                "kind": d.kind,
                "run_id": d.workflow_id,
                "step_id": d.step_id or None,
                "state": state,
            }
            if d.delay_seconds > 0:  # a throttled start that has not begun yet
                entry["starts_in_seconds"] = round(d.delay_seconds)
            deliveries.append(entry)
        return JSONResponse(
            {
                "id": stored.id,
                "type": stored.type,
                "data": stored.data,
                "received_at": stored.received_at.isoformat(),
                "deliveries": deliveries,
            }
        )

    return Starlette(
        routes=[
            Route("/events", post_event, methods=["POST"]),
            Route("/events/{event_id:path}", get_event, methods=["GET"]),
            Route("/runs/{run_id:path}/steps", get_steps, methods=["GET"]),
            Route("/sessions/{session_id:path}", get_session, methods=["GET"]),
            *codec_routes,
            *linear_webhook_routes(client, linear_webhook_secrets),
            *(fleet.routes() if fleet is not None else []),
        ]
    )
